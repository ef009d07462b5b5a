"""Oversize and garbled WebSocket messages, from a browser or from something posing as an
agent, close that one connection with a code and a reason, and harm nothing else: the
other patrol phones still get alerts, the real agents stay linked, a look-in still works.

Against the real service with three real agent processes (the `service` fixture). The
async bodies run on an event loop of their own thread (`in_own_loop`), so they do not
depend on what other tests left on the main thread's loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from camera_agent.identity import Identity
from camera_agent.protocol import (
    CLOSE_AUTH_FAILED,
    CLOSE_GARBLED,
    CLOSE_TOO_BIG,
    link_challenge_message,
)
from tests.conftest import Service
from tests.people import Person
from tests.viewer import see

TIMEOUT = 15  # generous: a loaded 2-core machine also runs three agents and the service


def in_own_loop(coro: Coroutine[Any, Any, None]) -> None:
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


def ws_url(svc: Service, path: str) -> str:
    return svc.url.replace("http://", "ws://", 1) + path


def cookies(person: Person | None) -> dict[str, str]:
    if person is None:
        return {}
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in person.http.cookies.items())}


async def closed_by_server(ws: ClientConnection) -> tuple[int, str]:
    """Read until the server closes; its close code and reason (it must send a close frame)."""
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, f"dropped without a close frame ({closed})"
        return closed.rcvd.code, closed.rcvd.reason


async def next_message(ws: ClientConnection, kind: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if msg["type"] == kind:
            return dict(msg)


def assert_no_crash(svc: Service) -> None:
    log = svc.log.read_text()
    at = log.find("Traceback")
    assert at < 0, f"a handler crashed:\n{log[at:at + 3000]}"


# --- browsers on /ws/patrol ----------------------------------------------------------------

PATROL_ABUSE: list[tuple[str, str | bytes, int]] = [
    ("oversize text", "x" * 5000, CLOSE_TOO_BIG),
    ("oversize JSON", json.dumps({"type": "ping", "pad": "y" * 4200}), CLOSE_TOO_BIG),
    ("oversize multibyte", "å" * 2100, CLOSE_TOO_BIG),  # 4200 bytes in 2100 characters
    ("not JSON", "{this is not json", CLOSE_GARBLED),
    ("deeply nested", "[" * 4000, CLOSE_GARBLED),
    ("binary", b"\x00\x01\x02\xff", CLOSE_GARBLED),
    ("binary JSON", b'{"type":"ping"}', CLOSE_GARBLED),
]


def test_patrol_socket_abuse_closes_only_that_socket(service: Service) -> None:
    in_own_loop(patrol_abuse(service))


async def patrol_abuse(service: Service) -> None:
    staff = Person(service.url, "natt")
    patrol = Person(service.url, "patrull")
    url = ws_url(service, "/ws/patrol")
    check = (await asyncio.to_thread(staff.wait_open_checks, 1))[0]

    async with connect(url, additional_headers=cookies(patrol),
                       origin=service.url) as bystander:
        assert (await next_message(bystander, "snapshot"))["alerts"] == []
        for name, payload, code in PATROL_ABUSE:
            async with connect(url, additional_headers=cookies(patrol),
                               origin=service.url, max_size=None) as abuser:
                await next_message(abuser, "snapshot")
                await abuser.send(payload)
                got, reason = await closed_by_server(abuser)
            assert (got, bool(reason)) == (code, True), (name, got, reason)

        # the other phone is still connected and still served
        await bystander.send(json.dumps({"type": "ping"}))
        await next_message(bystander, "pong")
        session = await see(staff, check["id"])
        reply = await asyncio.to_thread(staff.post, f"/api/checks/{check['id']}/outcome",
                                        {"outcome": "needs-help", "session": session})
        assert reply.status_code == 200, reply.text
        alert = await next_message(bystander, "alert")
        assert alert["alert"]["id"] == reply.json()["alert"]
        assert alert["alert"]["check"] == check["id"]
    assert_no_crash(service)


# --- things posing as agents on /ws/agent --------------------------------------------------

AGENT_ABUSE_BEFORE_AUTH: list[tuple[str, str | bytes]] = [
    ("not JSON", "junk"),
    ("binary", b"\x00\x01"),
    ("oversize", "x" * (100 * 1024)),  # over the 64 KiB message cap, under the frame cap
    ("wrong type", json.dumps({"type": "heartbeat", "health": {}})),
    ("service type", json.dumps({"type": "plan"})),
    ("not an object", json.dumps(["auth"])),
    ("deeply nested", "[" * 20000),
    ("long non-ASCII type", json.dumps({"type": "ö" * 100}, ensure_ascii=False)),
    ("auth without signature", json.dumps({"type": "auth", "camera": "cam-0001"})),
]

AGENT_ABUSE_AFTER_AUTH: list[tuple[str, str | bytes, int]] = [
    ("oversize", "x" * (100 * 1024), CLOSE_TOO_BIG),
    ("binary", b"\x00\x01", CLOSE_GARBLED),
    ("not JSON", "junk", CLOSE_GARBLED),
    ("wrong type", json.dumps({"type": "lookin"}), CLOSE_GARBLED),
    ("untyped", json.dumps({"health": {}}), CLOSE_GARBLED),
    ("deeply nested", "[" * 20000, CLOSE_GARBLED),
    ("long non-ASCII type", json.dumps({"type": "ö" * 100}, ensure_ascii=False),
     CLOSE_GARBLED),
]


def recipients_online(staff: Person) -> dict[str, bool]:
    online: dict[str, bool] = {}
    for check in staff.rounds():
        online[check["recipient"]] = online.get(check["recipient"], False) or check[
            "camera_online"]
    return online


def wait_all_online(svc: Service, staff: Person) -> None:
    names = {cam["recipient"] for cam in svc.world["cameras"]}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        online = recipients_online(staff)
        if all(online.get(name) for name in names):
            return
        time.sleep(0.3)
    raise TimeoutError(f"agents not all linked: {recipients_online(staff)}")


async def enrolled_impostor(svc: Service, admin: Person, recipient_id: int) -> tuple[str, Identity]:
    """A camera of our own, enrolled with our own key: it authenticates, then misbehaves."""
    reply = await asyncio.to_thread(admin.post, "/api/cameras", {"recipient_id": recipient_id})
    assert reply.status_code == 200, reply.text
    camera = reply.json()
    identity = Identity.generate()
    enrolled = await asyncio.to_thread(httpx.post, svc.url + "/api/agent/enrol", json={
        "code": camera["enrolment_code"], "public_key": identity.public_key_b64})
    assert enrolled.status_code == 200, enrolled.text
    return str(camera["camera_id"]), identity


async def linked(svc: Service, camera_id: str, identity: Identity) -> ClientConnection:
    ws = await connect(ws_url(svc, "/ws/agent"), max_size=None)
    challenge = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    await ws.send(json.dumps({"type": "auth", "camera": camera_id, "signature": identity.sign(
        link_challenge_message(camera_id, challenge["nonce"]))}))
    await next_message(ws, "welcome")
    return ws


async def look_in(svc: Service, staff: Person, check_id: int) -> int:
    """An aiortc look-in standing in for the browser; the number of frames decoded."""
    pc = RTCPeerConnection()
    got_track: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    pc.on("track", lambda track: got_track.set_result(track))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    try:
        reply = await asyncio.to_thread(staff.post, f"/api/checks/{check_id}/lookin",
                                        {"offer": pc.localDescription.sdp})
        assert reply.status_code == 200, reply.text
        data = reply.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="answer"))
        track = await asyncio.wait_for(got_track, TIMEOUT)
        frames = 0
        while frames < 5:
            await asyncio.wait_for(track.recv(), TIMEOUT)
            frames += 1
        ended = await asyncio.to_thread(staff.post, f"/api/lookins/{data['session']}/end")
        assert ended.status_code == 204, ended.text
        return frames
    finally:
        await pc.close()


def test_agent_link_abuse_closes_only_that_link(service: Service) -> None:
    in_own_loop(agent_abuse(service))


async def agent_abuse(service: Service) -> None:
    staff = Person(service.url, "natt")
    admin = Person(service.url, "admin")
    await asyncio.to_thread(wait_all_online, service, staff)
    url = ws_url(service, "/ws/agent")

    # before authentication: everything is an authentication failure, with a reason,
    # whatever the browser session it comes with
    for who in (None, admin):
        for name, payload in AGENT_ABUSE_BEFORE_AUTH:
            async with connect(url, additional_headers=cookies(who), max_size=None) as ws:
                assert json.loads(await ws.recv())["type"] == "challenge"
                await ws.send(payload)
                code, reason = await closed_by_server(ws)
            assert (code, bool(reason)) == (CLOSE_AUTH_FAILED, True), (name, code, reason)
    # a real camera's id with a signature made by someone else
    real = service.world["cameras"][0]["camera_id"]
    async with connect(url) as ws:
        json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "auth", "camera": real,
                                  "signature": Identity.generate().sign(b"anything")}))
        code, reason = await closed_by_server(ws)
    assert (code, bool(reason)) == (CLOSE_AUTH_FAILED, True), (code, reason)
    # a frame over the server's frame cap is refused by the WebSocket layer, with a reason
    async with connect(url, max_size=None) as ws:
        json.loads(await ws.recv())
        await ws.send("z" * (1024 * 1024))
        code, reason = await closed_by_server(ws)
    assert (code, bool(reason)) == (1009, True), (code, reason)

    # after authentication, as a camera of its own (on the third recipient; we look in on
    # the first): each kind of garbage closes its link with the matching code and a reason
    third = service.world["cameras"][2]
    camera_id, identity = await enrolled_impostor(service, admin, third["recipient_id"])
    for name, payload, expected in AGENT_ABUSE_AFTER_AUTH:
        ws = await linked(service, camera_id, identity)
        try:
            await ws.send(payload)
            code, reason = await closed_by_server(ws)
        finally:
            await ws.close()
        assert (code, bool(reason)) == (expected, True), (name, code, reason)

    # nothing else was harmed: the real agents never left, a look-in works
    online = await asyncio.to_thread(recipients_online, staff)
    assert all(online.get(cam["recipient"]) for cam in service.world["cameras"]), online
    log = service.log.read_text()
    for cam in service.world["cameras"]:
        assert f"agent {cam['camera_id']} unlinked" not in log, f"{cam['camera_id']} dropped"
        assert service.agents[cam["camera_id"]].poll() is None, "agent process alive"
    first = service.world["cameras"][0]["recipient"]
    checks = await asyncio.to_thread(staff.wait_open_checks, 3)
    target = next(c for c in checks if c["recipient"] == first)
    assert await look_in(service, staff, target["id"]) == 5
    assert_no_crash(service)
