"""No redirect leaves the service's origin: the login's `next` and the language switch's
way back, against a real service, and the rule itself as a property."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervision.web.redirects import local_path
from tests.harness import Service, make_service

#: each leads a browser to another host (backslash reads as slash; tab and newline are
#: dropped), or is not a path at all
OFF_SITE = ["/\\evil.example", "\\\\evil.example", "//evil.example", "///evil.example",
            "https://evil.example", "http:/evil.example", "/\t/evil.example",
            "/\n/evil.example", "\\/evil.example", "/\\/evil.example", "javascript:alert(1)",
            " /rounds", "evil.example", ""]


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = make_service(Path(tmp_path_factory.mktemp("redirects")))
    service.start()
    try:
        yield service
    finally:
        service.stop()


def login(svc: Service, username: str, next_: str) -> str:
    with httpx.Client(base_url=svc.url, follow_redirects=False) as http:
        page = http.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        reply = http.post("/login", data={"username": username, "password": username,
                                          "csrf": token.group(1), "next": next_})
    assert reply.status_code == 303, reply.text
    return reply.headers["location"]


@pytest.mark.parametrize("target", OFF_SITE, ids=repr)
def test_login_never_sends_a_person_off_site(svc: Service, target: str) -> None:
    assert login(svc, "natt", target) == "/rounds", "the role's own page instead"


def test_login_returns_to_a_page_of_the_service(svc: Service) -> None:
    assert login(svc, "chef", "/manage?tab=2") == "/manage?tab=2"


def switch(svc: Service, code: str, referer: str | None) -> str:
    headers = {"Referer": referer} if referer is not None else {}
    reply = httpx.get(f"{svc.url}/lang/{code}", headers=headers, follow_redirects=False)
    assert reply.status_code == 303
    return str(reply.headers["location"])


def test_language_switch_goes_back_only_to_this_service(svc: Service) -> None:
    other_port = svc.url.rsplit(":", 1)[0] + f":{svc.port + 1}"
    assert switch(svc, "en", f"{svc.url}/manage?x=1") == "/manage?x=1"
    assert switch(svc, "en", None) == "/"
    for referer in ("https://evil.example/manage", f"{other_port}/manage",
                    f"{svc.url}/\\evil.example", f"{svc.url}//evil.example/x",
                    "/\\evil.example", "http://[::1", "not a url"):
        assert switch(svc, "en", referer) == "/", referer
    assert switch(svc, "xx", f"{svc.url}/manage") == "/", "an unknown language: home"


@given(st.text(max_size=40) | st.from_regex(r"\A[/\\\t\n ]{0,3}[a-z.:/\\%]{0,20}\Z"))
def test_a_local_path_has_no_host_for_any_input(target: str) -> None:
    found = local_path(target)
    if found is None:
        return
    assert found == target and found.startswith("/") and not found.startswith("//")
    assert "\\" not in found and not any(ord(c) <= 0x20 or c == "\x7f" for c in found)
    parts = urlsplit(found)
    assert not parts.scheme and not parts.netloc


def test_no_redirect_is_built_from_a_made_up_host(svc: Service) -> None:
    """Starlette's trailing-slash redirect wrote the Host header into its Location."""
    for path in ("/api/rounds/", "/manage/", "/api/recipients/1/"):
        reply = httpx.get(svc.url + path, headers={"Host": "evil.example"},
                          follow_redirects=False)
        location = reply.headers.get("location")
        assert location is None or local_path(location), (path, location)
