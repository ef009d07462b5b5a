"""A patrol socket lives no longer than the web session that opened it, and only a page of
the service's own origin gets one.

Against a real `supervision serve` process (see conftest.py: real alerts with door codes
are active from the start) with real WebSocket clients.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from tests.harness import BIN, Service
from tests.people import Person
from tests.sockets.conftest import RECHECK, Start

CLOSE_SESSION_ENDED = 4440
CLOSE_WRONG_ORIGIN = 4403
CLOSE_AUTH_FAILED = 4401
SLACK = 1.0  # stated tolerance on top of the re-validation interval
REDELIVER = 2.0  # the re-send of unacknowledged alerts (alert_resend_seconds), where set


def ws_url(svc: Service, path: str = "/ws/patrol") -> str:
    return svc.url.replace("http://", "ws://", 1) + path


def cookie(person: Person) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in person.http.cookies.items())}


@asynccontextmanager
async def patrol_socket(svc: Service, person: Person,
                        origin: str | None = "") -> AsyncIterator[ClientConnection]:
    """A patrol socket as the patrol page opens it (Origin: the service's own, unless
    given; None sends none)."""
    own = svc.url if origin == "" else origin
    async with connect(ws_url(svc), additional_headers=cookie(person),
                       origin=None if own is None else Origin(own), open_timeout=10) as ws:
        yield ws


async def snapshot(ws: ClientConnection) -> list[dict[str, Any]]:
    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert first["type"] == "snapshot", first
    alerts: list[dict[str, Any]] = first["alerts"]
    return alerts


async def closed_by_server(ws: ClientConnection, within: float,
                           ) -> tuple[int, str, float, list[tuple[float, dict[str, Any]]]]:
    """Read until the server closes: its code, reason, the seconds it took, and what came
    before the close frame (each with its time of receipt, ``time.monotonic()``)."""
    began = time.monotonic()
    got: list[tuple[float, dict[str, Any]]] = []
    try:
        while True:
            left = began + within + 10 - time.monotonic()  # wait past the bound, to report
            text = await asyncio.wait_for(ws.recv(), max(left, 0.01))
            got.append((time.monotonic(), json.loads(text)))
    except TimeoutError:
        pytest.fail(f"socket still open {within + 10:.0f} s later; it got {got}")
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, f"dropped without a close frame ({closed})"
        return closed.rcvd.code, closed.rcvd.reason, time.monotonic() - began, got


async def refused_before_data(svc: Service, person: Person, origin: str | None,
                              ) -> tuple[int, str]:
    """The close code and reason of a socket that must get nothing at all."""
    async with patrol_socket(svc, person, origin) as ws:
        try:
            first = await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "dropped without a close frame"
            return closed.rcvd.code, closed.rcvd.reason
    pytest.fail(f"origin {origin!r} was served: {str(first)[:200]}")


def cli(svc: Service, *args: str) -> None:
    done = subprocess.run([str(BIN / "supervision"), *args], env=svc.env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_logout_closes_that_sessions_socket_at_once(start: Start) -> None:
    svc = start()
    leaving = await asyncio.to_thread(Person, svc.url, "patrull")
    staying = await asyncio.to_thread(Person, svc.url, "patrull")  # a second session
    async with patrol_socket(svc, leaving) as ws, patrol_socket(svc, staying) as other:
        alerts = await snapshot(ws)
        assert alerts and all(a["access_info"] for a in alerts), "door codes are at stake"
        await snapshot(other)
        form = {"csrf": leaving.csrf}
        reply = await asyncio.to_thread(leaving.http.post, "/logout", data=form)
        assert reply.status_code == 303
        code, reason, took, _ = await closed_by_server(ws, within=1.0)
        assert (code, bool(reason)) == (CLOSE_SESSION_ENDED, True), (code, reason)
        assert took <= 1.0, f"closed {took:.2f} s after logout (bound 1 s)"
        # the other session's socket is untouched, and still served
        await other.send('{"type":"ping"}')
        while json.loads(await asyncio.wait_for(other.recv(), 10))["type"] != "pong":
            pass
    # and the old cookie opens nothing
    async with patrol_socket(svc, leaving) as ws:
        code, _, _, got = await closed_by_server(ws, within=1.0)
        assert (code, got) == (CLOSE_AUTH_FAILED, [])


@pytest.mark.parametrize("change", [["--disable"], ["--role", "staff"]],
                         ids=["disabled", "role-changed"])
async def test_cli_change_of_the_user_closes_its_sockets(start: Start, change: list[str],
                                                         ) -> None:
    """`supervision user set` runs in another process: it can only end the sessions in the
    database, and the service notices within its re-validation interval."""
    svc = start()
    patrol = await asyncio.to_thread(Person, svc.url, "patrull")
    async with patrol_socket(svc, patrol) as ws:
        assert await snapshot(ws)
        await asyncio.to_thread(cli, svc, "user", "set", "patrull", *change)
        code, reason, took, _ = await closed_by_server(ws, within=RECHECK + SLACK)
    assert code == CLOSE_SESSION_ENDED, (code, reason)
    assert took <= RECHECK + SLACK, f"closed {took:.2f} s after the change"


async def test_role_changed_in_the_database_alone_closes_the_socket(start: Start) -> None:
    """The session row stays (as if another node changed the role without ending
    sessions): the role itself is re-checked, not only the session's existence."""
    svc = start()
    patrol = await asyncio.to_thread(Person, svc.url, "patrull")
    async with patrol_socket(svc, patrol) as ws:
        assert await snapshot(ws)
        db = svc.env["SUPERVISION_DATABASE_URL"].split(":///", 1)[1]
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE users SET role = 'staff' WHERE username = 'patrull'")
        code, reason, took, _ = await closed_by_server(ws, within=RECHECK + SLACK)
    assert (code, reason) == (CLOSE_SESSION_ENDED, "role changed")
    assert took <= RECHECK + SLACK, f"closed {took:.2f} s after the change"


async def test_expired_session_closes_its_socket(start: Start) -> None:
    svc = start(session_hours="0.001")  # 3.6 s
    began = time.monotonic()
    patrol = await asyncio.to_thread(Person, svc.url, "patrull")
    async with patrol_socket(svc, patrol) as ws:
        assert await snapshot(ws)
        code, reason, _, _ = await closed_by_server(ws, within=3.6 + RECHECK + SLACK)
    took = time.monotonic() - began
    assert code == CLOSE_SESSION_ENDED, (code, reason)
    assert took <= 3.6 + RECHECK + SLACK, f"closed {took:.2f} s after login"


async def test_expired_session_is_never_sent_to(start: Start) -> None:
    """With re-validation far off, the next send after expiry (the re-send of
    unacknowledged alerts) closes the socket instead of carrying the door codes."""
    svc = start(session_hours="0.001", socket_recheck_seconds="60",
                alert_resend_seconds=str(REDELIVER))
    began = time.monotonic()
    patrol = await asyncio.to_thread(Person, svc.url, "patrull")
    expired = time.monotonic() + 3.6  # at the latest: the session was made before this
    async with patrol_socket(svc, patrol) as ws:
        assert await snapshot(ws)
        code, reason, _, got = await closed_by_server(ws, within=3.6 + REDELIVER + SLACK)
    took = time.monotonic() - began
    late = [m for at, m in got  # 0.2: transit
            if m["type"] in ("alert", "alerts") and at > expired + 0.2]
    assert code == CLOSE_SESSION_ENDED and not late, (code, reason, late)
    assert took <= 3.6 + REDELIVER + 2 * SLACK, f"closed {took:.2f} s after login"


async def test_other_origins_get_nothing(start: Start) -> None:
    svc = start()
    patrol = await asyncio.to_thread(Person, svc.url, "patrull")
    port = svc.port
    for origin in (f"http://127.0.0.1:{port + 1}",  # another port of the same host
                   f"http://localhost:{port}",  # another host name
                   "https://attacker.example",
                   f"https://127.0.0.1:{port}",  # another scheme
                   "null",  # a sandboxed frame or a file
                   None):  # no Origin at all: no browser does that
        code, reason = await refused_before_data(svc, patrol, origin)
        assert (code, bool(reason)) == (CLOSE_WRONG_ORIGIN, True), (origin, code, reason)
    # the page's own origin is served
    async with patrol_socket(svc, patrol, svc.url) as ws:
        assert await snapshot(ws)
    # the agent link is no browser socket: agents send no Origin and are still answered
    async with connect(ws_url(svc, "/ws/agent"), open_timeout=10) as agent:
        assert json.loads(await asyncio.wait_for(agent.recv(), 10))["type"] == "challenge"
