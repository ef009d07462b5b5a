"""Who may call what: every route of the application x every role (and nobody signed in),
each asked of a real service, each answer checked against the policy written down here.

The route list is taken from the application itself, so a route added without a line in
POLICY fails `test_policy_names_every_route`, and a line left behind for a route that is
gone fails it too. The policy is the intended one, written by hand; it is not read back from
the code (that would test the code against itself). `test_guards_declare_the_policy` then
also compares it with the roles the API routes' `require(...)` guards declare.

Allowed means "got past the guard": any answer but 401/403 and no 5xx (and for a guarded
GET of real rows, a 2xx); the requests are
made so that an allowed one ends in a refusal *after* the guard (422 for a body that does
not validate, 404 for an id that does not exist) wherever the route changes something, so
the shared service is the same for every case. Denied means exactly: 401 for an API call
with nobody signed in, a 303 to /login for a page, 403 for a signed-in person of another
role. State-changing requests carry the role's valid CSRF token, so what refuses them is
the role check; a separate test shows the CSRF check refuses them without it.

FastAPI order, checked here rather than assumed: dependencies (the `require` guard) are
solved before the body and path parameters are validated, so a well-formed JSON body that
fails validation gets the guard's 401/403 first and a 422 only once past it. (Bytes that are
not JSON at all are refused with 422/400 before any dependency runs; nothing here sends
those.)
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.access.routes import application_routes, guard_roles
from tests.harness import Service, eventually, make_service
from tests.people import Person

ANON = "anonymous"
ROLES = ("staff", "patrol", "manager", "admin")
IDENTITIES = (ANON, *ROLES)
LOGINS = {"staff": "natt", "patrol": "patrull", "manager": "chef", "admin": "admin"}

EVERYONE = frozenset(IDENTITIES)
#: no browser session is enough: the agent link authenticates by the camera's key
NO_SESSION = frozenset[str]()


def only(*roles: str) -> frozenset[str]:
    assert set(roles) <= set(ROLES), roles
    return frozenset(roles)


# The intended policy: (method, path) -> who may. "WS" marks a WebSocket route.
POLICY: dict[tuple[str, str], frozenset[str]] = {
    # public: signing in, the language switch, liveness, and enrolment (whose credential is
    # the one-time code in the body, not a session)
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/readyz"): EVERYONE,
    # a bearer token, not a role (a 404 for everyone while no token is set)
    ("GET", "/metrics"): EVERYONE,
    # the patrol app: its worker and manifest are public files; push for every role
    ("GET", "/sw.js"): EVERYONE,
    ("GET", "/manifest.webmanifest"): EVERYONE,
    ("GET", "/api/push/key"): frozenset(ROLES),
    ("POST", "/api/push/subscriptions"): frozenset(ROLES),
    ("POST", "/api/push/unsubscribe"): frozenset(ROLES),
    ("GET", "/api/alerts/tonight"): only("patrol", "admin"),
    ("GET", "/"): EVERYONE,
    ("GET", "/login"): EVERYONE,
    ("POST", "/login"): EVERYONE,
    ("POST", "/logout"): EVERYONE,
    ("GET", "/lang/{code}"): EVERYONE,
    ("POST", "/api/agent/enrol"): EVERYONE,
    # pages
    ("GET", "/rounds"): only("staff", "admin"),
    ("GET", "/patrol"): only("patrol", "admin"),
    ("GET", "/manage"): only("manager", "admin"),
    ("GET", "/manage/recipients/{rid}"): only("manager", "admin"),
    ("GET", "/manage/roster"): only("manager", "admin"),
    ("GET", "/audit/recipients/{recipient_id}"): only("manager", "admin"),
    ("GET", "/admin/webhook"): only("admin"),
    ("GET", "/admin/cameras"): only("admin"),
    ("GET", "/admin/users"): only("admin"),
    # everyone's own account; a one-time password link is its own credential
    ("GET", "/account"): frozenset(ROLES),
    ("POST", "/api/me/password"): frozenset(ROLES),
    ("GET", "/account/password/{token}"): EVERYONE,
    ("POST", "/api/password-links/{token}"): EVERYONE,
    # night staff: the board (admins may watch it); looking in is for night staff only
    ("GET", "/api/rounds"): only("staff", "admin"),
    ("POST", "/api/checks/{check_id}/lookin"): only("staff"),
    ("POST", "/api/checks/{check_id}/ice"): only("staff"),
    ("GET", "/api/lookins/{session}"): only("staff"),
    ("POST", "/api/lookins/{session}/end"): only("staff"),
    ("POST", "/api/lookins/{session}/picture"): only("staff"),
    ("POST", "/api/checks/{check_id}/outcome"): only("staff"),
    # the night roster: night staff take and leave a shift; shift leads (staff), managers
    # and admins also add and remove others (the service checks who is named)
    ("GET", "/api/roster"): only("staff", "manager", "admin"),
    ("POST", "/api/roster/join"): only("staff", "manager", "admin"),
    ("POST", "/api/roster/leave"): only("staff", "manager", "admin"),
    # night patrol
    ("GET", "/api/alerts"): only("patrol", "admin"),
    ("POST", "/api/alerts/{alert_id}/state"): only("patrol", "admin"),
    ("WS", "/ws/patrol"): only("patrol", "admin"),
    # care managers: recipients and their plans (admins may too)
    ("GET", "/api/recipients"): only("manager", "admin"),
    ("POST", "/api/recipients"): only("manager", "admin"),
    ("GET", "/api/recipients/{rid}"): only("manager", "admin"),
    ("PUT", "/api/recipients/{rid}/plan"): only("manager", "admin"),
    ("GET", "/api/recipients/{rid}/plan/history"): only("manager", "admin"),
    ("GET", "/api/recipients/{rid}/preview"): only("manager", "admin"),
    ("POST", "/api/recipients/{rid}/preview"): only("manager", "admin"),
    ("PATCH", "/api/recipients/{rid}"): only("manager", "admin"),
    ("POST", "/api/recipients/{rid}/archive"): only("manager", "admin"),
    ("GET", "/api/recipients/{rid}/consent"): only("manager", "admin"),
    ("POST", "/api/recipients/{rid}/consent"): only("manager", "admin"),
    ("POST", "/api/recipients/{rid}/consent/{record_id}/withdraw"): only("manager", "admin"),
    ("PUT", "/api/recipients/{rid}/cohabitants"): only("manager", "admin"),
    # reports: the night is also the morning's handover, so night staff read it too
    ("GET", "/reports/night"): only("staff", "manager", "admin"),
    ("GET", "/reports/period"): only("manager", "admin"),
    ("GET", "/api/reports/night"): only("staff", "manager", "admin"),
    ("GET", "/api/reports/night.csv"): only("staff", "manager", "admin"),
    ("GET", "/api/reports/period"): only("manager", "admin"),
    ("GET", "/api/reports/period.csv"): only("manager", "admin"),
    # cameras: admins only; the device itself enrols (public, above) and links by its key
    ("GET", "/api/cameras"): only("admin"),
    ("POST", "/api/cameras"): only("admin"),
    ("POST", "/api/cameras/{camera_id}/revoke"): only("admin"),
    ("WS", "/ws/agent"): NO_SESSION,
    # what went to the external alarm receiver
    ("GET", "/api/webhook/deliveries"): only("admin"),
    # people: admins only
    ("GET", "/api/users"): only("admin"),
    ("POST", "/api/users"): only("admin"),
    ("PATCH", "/api/users/{user_id}"): only("admin"),
    ("POST", "/api/users/{user_id}/password-link"): only("admin"),
    # log review
    ("GET", "/audit/log"): only("manager", "admin"),
    ("GET", "/audit/recipients/{recipient_id}/access-report"): only("manager", "admin"),
    ("GET", "/api/audit/log"): only("manager", "admin"),
    ("GET", "/api/audit/recipients/{recipient_id}/lookins"): only("manager", "admin"),
    ("GET", "/api/audit/verify"): only("admin"),
    ("GET", "/api/audit/export"): only("admin"),
}

#: guarded reads of rows this agent-less world cannot have (a look-in needs a camera):
#: passing the guard shows as 404, which the test accepts for these only
NO_ROWS_HERE = {("GET", "/api/lookins/{session}")}

#: path parameters that are not ids of rows: (a value that exists, one that does not)
PLAIN_PARAMS = {"code": ("en", "xx"), "session": ("0" * 16, "f" * 16),
                "token": ("0" * 43, "f" * 43)}


# --- the service ---------------------------------------------------------------------------


@dataclass
class World:
    svc: Service
    people: dict[str, Person]
    real: dict[str, str]  # path parameter -> an id that exists
    missing: dict[str, str]  # path parameter -> an id that does not

    def cookie(self, who: str) -> dict[str, str]:
        if who == ANON:
            return {}
        jar = self.people[who].http.cookies
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}

    def headers(self, who: str, *, csrf: bool = True) -> dict[str, str]:
        headers = self.cookie(who)
        if csrf and who != ANON:
            headers["X-CSRF-Token"] = self.people[who].csrf
        return headers


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    svc = make_service(Path(tmp_path_factory.mktemp("access")))
    svc.start()
    try:
        people = {role: Person(svc.url, LOGINS[role]) for role in ROLES}
        assert all(p.csrf for p in people.values()), "every role's home page has a CSRF token"
        staff = people["staff"]
        checks = wait_for(lambda: [c for c in staff.rounds() if c["state"] == "open"])
        # a real alert, so alert ids are real too (no camera is linked in this world, so
        # Technical failure is what the open check can honestly get)
        raised = staff.post(f"/api/checks/{checks[0]['id']}/outcome",
                            {"outcome": "technical-failure"})
        assert raised.status_code == 200, raised.text
        recipient = str(svc.world["cameras"][0]["recipient_id"])
        real = {"check_id": str(checks[-1]["id"]), "alert_id": str(raised.json()["alert"]),
                "recipient_id": recipient, "rid": recipient,
                "camera_id": svc.world["cameras"][0]["camera_id"],
                "user_id": "999999", "record_id": "999999"}
        missing = {"check_id": "999999", "alert_id": "999999", "recipient_id": "999999",
                   "rid": "999999", "camera_id": "cam-ffffffff", "user_id": "999999",
                   "record_id": "999999"}
        for name, (there, absent) in PLAIN_PARAMS.items():
            real[name], missing[name] = there, absent
        yield World(svc, people, real, missing)
    finally:
        svc.stop()


def wait_for(fetch: Callable[[], Any], timeout: float = 30) -> Any:
    return eventually(fetch, timeout, "an open check in the demo night")


def fill(path: str, values: dict[str, str]) -> str:
    names = re.findall(r"{(\w+)(?::\w+)?}", path)
    unknown = [n for n in names if n not in values]
    assert not unknown, f"{path}: give the access test a value for path parameter(s) {unknown}"
    for name in names:
        path = re.sub(r"{" + name + r"(?::\w+)?}", values[name], path)
    return path


def request(world: World, who: str, method: str, path: str, *,
            csrf: bool = True) -> httpx.Response:
    """GETs read real rows; state changes name rows that do not exist and send a body that
    does not validate, so that even an allowed one changes nothing."""
    reading = method in ("GET", "HEAD", "OPTIONS")
    url = fill(path, world.real if reading else world.missing)
    with httpx.Client(base_url=world.svc.url, timeout=20, follow_redirects=False) as http:
        return http.request(method, url, headers=world.headers(who, csrf=csrf),
                            json=None if reading else {})


# --- the route table and the policy --------------------------------------------------------


def test_policy_names_every_route() -> None:
    served = {(e.method, e.path) for e in application_routes()}
    unlisted = sorted(served - POLICY.keys())
    gone = sorted(POLICY.keys() - served)
    assert not unlisted, f"routes without an access policy (add them to POLICY): {unlisted}"
    assert not gone, f"POLICY names routes the application no longer has: {gone}"


def test_guards_declare_the_policy() -> None:
    """The API's `require(...)` guards say what the policy says (pages guard in the handler)."""
    api = [e for e in application_routes() if e.path.startswith("/api/")]
    assert api, "the application has an API"
    for entry in api:
        method, path = entry.method, entry.path
        allowed = POLICY[(method, path)]
        declared = guard_roles(entry.route)
        if ANON in allowed:
            assert declared is None, f"{method} {path} is public but has a guard {declared}"
        else:
            assert declared == allowed, f"{method} {path}: guard {declared}, policy {allowed}"


# --- every route x every role, against the running service ---------------------------------

HTTP_ROUTES = sorted(k for k in POLICY if k[0] != "WS")


@pytest.mark.parametrize("who", IDENTITIES)
@pytest.mark.parametrize(("method", "path"), HTTP_ROUTES, ids=[f"{m} {p}" for m, p in HTTP_ROUTES])
def test_http_route(world: World, method: str, path: str, who: str) -> None:
    reply = request(world, who, method, path)
    what = f"{who} {method} {path} -> {reply.status_code} {reply.text[:200]}"
    assert reply.status_code < 500, what
    allowed = POLICY[(method, path)]
    if who in allowed:
        assert reply.status_code not in (401, 403), what
        if (method, path) in NO_ROWS_HERE:
            assert reply.status_code == 404, what
        elif method == "GET" and ANON not in allowed:  # a guarded read of a real row: served
            assert 200 <= reply.status_code < 300, what
        return
    if who == ANON and path.startswith("/api/"):
        assert reply.status_code == 401, what
    elif who == ANON:
        assert reply.status_code == 303, what
        assert reply.headers["location"].startswith("/login"), what
    else:
        assert reply.status_code == 403, what
        if path.startswith("/api/"):
            assert "csrf" not in str(reply.json()["detail"]).lower(), f"refused for CSRF: {what}"


STATE_CHANGES = sorted(k for k, allowed in POLICY.items()
                       if k[0] not in ("GET", "WS") and k[1].startswith("/api/")
                       and ANON not in allowed)


@pytest.mark.parametrize(("method", "path"), STATE_CHANGES,
                         ids=[f"{m} {p}" for m, p in STATE_CHANGES])
def test_state_changes_need_the_csrf_token(world: World, method: str, path: str) -> None:
    """A valid session of an allowed role, without the token or with another's: 403."""
    for role in sorted(POLICY[(method, path)]):
        reply = request(world, role, method, path, csrf=False)
        assert reply.status_code == 403, (role, reply.status_code, reply.text)
        assert "csrf" in reply.text.lower(), reply.text
        other = next(r for r in ROLES if r != role)
        url = fill(path, world.missing)
        headers = world.headers(role) | {"X-CSRF-Token": world.people[other].csrf}
        with httpx.Client(base_url=world.svc.url, timeout=20) as http:
            reply = http.request(method, url, headers=headers, json={})
        assert reply.status_code == 403 and "csrf" in reply.text.lower(), (role, reply.text)


# --- WebSockets ----------------------------------------------------------------------------


async def patrol_socket(world: World, who: str) -> tuple[int | None, str]:
    """(None, the first message's type) if served, else (close code, reason)."""
    url = world.svc.url.replace("http", "ws", 1) + "/ws/patrol"
    async with websockets.connect(url, additional_headers=world.cookie(who),
                                  origin=world.svc.url, open_timeout=10) as ws:
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return None, str(first["type"])
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None, "closed without a close frame"
            return closed.rcvd.code, closed.rcvd.reason


async def agent_socket(world: World, who: str) -> tuple[int | None, str]:
    """A browser session on the agent link answering the challenge with junk, and then
    with a well-formed auth for a real camera signed by nobody: both must be refused."""
    url = world.svc.url.replace("http", "ws", 1) + "/ws/agent"
    results: list[tuple[int | None, str]] = []
    for answer in ("junk", json.dumps({"type": "auth", "camera": world.real["camera_id"],
                                       "signature": "A" * 86})):
        async with websockets.connect(url, additional_headers=world.cookie(who),
                                      open_timeout=10) as ws:
            challenge = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert challenge["type"] == "challenge"
            await ws.send(answer)
            try:
                results.append((None, str(await asyncio.wait_for(ws.recv(), 10))))
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None, "closed without a close frame"
                results.append((closed.rcvd.code, closed.rcvd.reason))
    assert results[0][0] == results[1][0], results
    return results[1]


WS_PROBES = {"/ws/patrol": patrol_socket, "/ws/agent": agent_socket}
WS_ROUTES = sorted(k[1] for k in POLICY if k[0] == "WS")


@pytest.mark.parametrize("who", IDENTITIES)
@pytest.mark.parametrize("path", WS_ROUTES)
def test_websocket_route(world: World, path: str, who: str) -> None:
    assert path in WS_PROBES, f"no probe for WebSocket route {path}: add one to WS_PROBES"
    with ThreadPoolExecutor(1) as pool:  # a loop of its own, whatever the main thread has
        code, said = pool.submit(asyncio.run, WS_PROBES[path](world, who)).result()
    if who in POLICY[("WS", path)]:
        assert code is None, f"{who} on {path}: closed {code} {said}"
        assert said == "snapshot"
    else:
        assert code == 4401, f"{who} on {path}: {code} {said!r}"
        assert said, "the close carries a reason"
