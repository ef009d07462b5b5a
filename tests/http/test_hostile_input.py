"""Hostile input of every kind against the live service never gives a 5xx.

Property tests (Hypothesis, derandomized, bounded) against a real `supervision serve`
process, on every operation of the application's schema: JSON bodies nested deep, numbers
huge or not numbers at all, strings with NUL, lone surrogates (`"\\ud800"`), bidi
overrides, non-characters and bytes that are not UTF-8, in every field the operation's
schema names; and very long, percent-garbled paths and query strings on every GET. Each
request is sent as the role its guard lets in, so it reaches the parser and the route.
State-changing routes name rows that do not exist, except the plan's own editor routes,
which get a real recipient so the plan parser sees the input. A 4xx must be well-formed
JSON for an API call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervision.app import create_app
from supervision.web.redirects import local_path
from tests.access.routes import application_routes, guard_roles
from tests.harness import Service, make_service
from tests.http.raw import connect, wait_for_close
from tests.people import Person

LOGINS = {"staff": "natt", "patrol": "patrull", "manager": "chef", "admin": "admin"}
SCHEMA: dict[str, Any] = create_app().openapi()
GUARDS = {(e.method, e.path): guard_roles(e.route) for e in application_routes()}
OPERATIONS = sorted((method.upper(), path) for path, ops in SCHEMA["paths"].items()
                    for method in ops)
WITH_BODY = [(m, p) for m, p in OPERATIONS if m in ("POST", "PUT", "PATCH")]
READS = [(m, p) for m, p in OPERATIONS if m == "GET"]
#: routes whose body is checked by the plan parser only for a recipient that exists
REAL_ROW = {("PUT", "/api/recipients/{rid}/plan"), ("POST", "/api/recipients/{rid}/preview")}

NASTY_TEXT = ["\x00", "a\x00b", "\ud800", "\udfff", "x\ud83d", "\u202eevil\u202c", "\ufeff",
              "\uffff", "\U0010ffff", "e\u0301" * 50, "\U0001f600" * 20, "\r\n\t", "'\"<>&",
              "%00", "..\\..\\", "\u2028\u2029", "A" * 10_000]
NASTY_NUMBERS = ["1" * 5000, "-" + "9" * 400, "1e999999", "-1e-999999", "1.5e308", "NaN",
                 "Infinity", "-Infinity", "0x10", "2147483648", "9223372036854775808",
                 "-0", "1E+2"]
NOT_UTF8 = [b"\xff\xfe", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
            b"\x80"]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        return resolve(SCHEMA["components"]["schemas"][name])
    return schema


def body_fields(method: str, path: str) -> list[str]:
    """The top-level field names of the operation's JSON body, as its schema says."""
    body = SCHEMA["paths"][path][method.lower()].get("requestBody", {})
    media = body.get("content", {}).get("application/json", {})
    schema = resolve(media.get("schema", {}))
    return sorted(schema.get("properties", {}))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, dict[str, Any]]]:
    svc = make_service(Path(tmp_path_factory.mktemp("hostile")))
    svc.start()
    try:
        people = {role: Person(svc.url, username) for role, username in LOGINS.items()}
        yield svc, people
    finally:
        svc.stop()


def as_role(world: tuple[Service, dict[str, Any]], method: str, path: str) -> httpx.Client:
    svc, people = world
    roles = GUARDS.get((method, path))
    if roles is None:
        return httpx.Client(base_url=svc.url, timeout=30)
    person = people[sorted(roles)[0]]
    client = httpx.Client(base_url=svc.url, timeout=30, cookies=person.http.cookies,
                          headers={"X-CSRF-Token": person.csrf})
    return client


def fill(world: tuple[Service, dict[str, Any]], method: str, path: str) -> str:
    svc, _ = world
    real = str(svc.world["cameras"][0]["recipient_id"])
    value = real if (method, path) in REAL_ROW else "999999"
    values = {"session": "f" * 16, "camera_id": "cam-ffffffff", "code": "xx"}
    return re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), value), path)


def no_server_error(reply: httpx.Response, what: str) -> None:
    assert reply.status_code < 500, f"{what}: {reply.status_code} {reply.text[:500]}"
    # 431: the server refused an oversize head before there was a request to answer
    if reply.request.url.path.startswith("/api/") and reply.status_code not in (200, 431):
        assert reply.headers.get("content-type", "").startswith("application/json"), what
        assert "detail" in reply.json(), what


# --- strategies ----------------------------------------------------------------------------


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, allow_nan=True)  # surrogates as \ud800


scalars = st.one_of(st.sampled_from(NASTY_TEXT).map(dumps), st.sampled_from(NASTY_NUMBERS),
                    st.text(max_size=30).map(dumps), st.integers().map(str),
                    st.sampled_from(["true", "null", "[]", "{}"]))


def nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


deep = st.builds(nested, st.sampled_from([10, 100, 1000, 5000, 50_000]),
                 st.sampled_from(["list", "object"]))


@st.composite
def hostile_bodies(draw: st.DrawFn, fields: list[str]) -> bytes:
    """A JSON body naming the operation's fields with hostile values, or a hostile document
    of its own, or bytes that are not UTF-8 inside an otherwise plausible body."""
    kind = draw(st.sampled_from(["fields", "deep", "scalar", "raw"]))
    if kind == "deep":
        return draw(deep).encode()
    if kind == "scalar":
        return draw(scalars).encode()
    names = fields or ["x"]
    values = {name: draw(st.one_of(scalars, deep, scalars.map(lambda s: f"[{s}, {s}]")))
              for name in names}
    text = "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in values.items()) + "}"
    data = text.encode()
    if kind == "raw":
        bad = draw(st.sampled_from(NOT_UTF8))
        at = draw(st.integers(0, len(data)))
        data = data[:at] + bad + data[at:]
    return data


@pytest.mark.parametrize(("method", "path"), WITH_BODY, ids=[f"{m} {p}" for m, p in WITH_BODY])
def test_hostile_bodies_get_no_server_error(world: tuple[Service, dict[str, Any]], method: str,
                                            path: str) -> None:
    url = fill(world, method, path)
    fields = body_fields(method, path) or (["check_times", "timezone", "consent"]
                                           if (method, path) in REAL_ROW else [])
    with as_role(world, method, path) as client:

        @settings(max_examples=40, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(body=hostile_bodies(fields))
        def check(body: bytes) -> None:
            reply = client.request(method, url, content=body,
                                   headers={"Content-Type": "application/json"})
            no_server_error(reply, f"{method} {url} {body[:200]!r}")

        check()


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_get(port: int, target: bytes, cookie: str) -> Raw:
    """A GET exactly as written (httpx refuses to send most of these)."""
    with connect(port) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: "
                     + cookie.encode() + b"\r\nConnection: close\r\n\r\n")
        ending = wait_for_close(sock, 30)
    assert ending.closed and ending.status is not None, ending
    head = ending.data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head)}
    return Raw(ending.status, headers, ending.data.partition(b"\r\n\r\n")[2])


segments = st.one_of(
    st.sampled_from([b"%00", b"%ff", b"%ed%a0%80", b"%c0%af", b"%2e%2e%2f", b"..", b"%",
                     b"%zz", b"\xff", b"\xe2\x80\xae", b"9" * 400, b"-1", b"0", b"1e9",
                     b"%F0%9F%98%80" * 100, b"%E2%80%AE", b"\\", b"%5c"]),
    st.text(max_size=20).map(lambda t: quote(t, safe="").encode()))


@pytest.mark.parametrize(("method", "path"), READS, ids=[f"{m} {p}" for m, p in READS])
def test_hostile_paths_and_queries_get_no_server_error(
        world: tuple[Service, dict[str, Any]], method: str, path: str) -> None:
    svc, people = world
    roles = GUARDS.get((method, path))
    cookies = people[sorted(roles)[0]].http.cookies if roles else {}
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())

    @settings(max_examples=30, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(segment=segments, key=segments, value=segments,
           repeat=st.sampled_from([1, 50, 2000]))
    def check(segment: bytes, key: bytes, value: bytes, repeat: int) -> None:
        url = re.sub(rb"{(\w+)}", lambda _: segment, path.encode())
        for query in (b"start=" + value, b"nights=" + value, b"&".join([key + b"=" + value]
                                                                      * repeat)):
            reply = raw_get(svc.port, url + b"?" + query, cookie)
            what = f"GET {(url + b'?' + query)[:300]!r}: {reply.status} {reply.body[:300]!r}"
            assert reply.status < 500, what
            if 300 <= reply.status < 400:
                assert local_path(reply.headers.get("location")), what
            elif reply.status not in (200, 400, 431):  # 400/431: the HTTP parser refused
                assert reply.headers.get("content-type") == "application/json", what
                assert "detail" in json.loads(reply.body), what

    check()


def test_very_long_paths_get_no_server_error(world: tuple[Service, dict[str, Any]]) -> None:
    svc, _ = world
    for size in (1_000, 8_000, 30_000, 100_000):
        for path in (b"/" + b"a" * size, b"/api/" + b"%ff" * (size // 3),
                     b"/static/" + b"../" * (size // 3), b"/lang/" + b"%00" * (size // 3)):
            reply = raw_get(svc.port, path, "")
            assert reply.status < 500, (size, path[:20], reply.status)
