"""Agents against the real service process: enrolment with one-time codes, refusals shown
to admins, revocation cutting the link at once, an unknown camera refused, and a link
that comes back by itself after the service is killed and restarted."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCSessionDescription

from camera_agent.config import AgentConfig
from camera_agent.identity import Identity
from camera_agent.protocol import answer_message, load_public_key, verify
from tests.agent.fake_service import BIN, new_agent, viewer_offer
from tests.conftest import Service, make_service
from tests.people import Person

BACKOFF_CAP = 2  # what Service.enrol configures


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for the module; codes it registers expire after about a second."""
    service = make_service(tmp_path_factory.mktemp("svc"), enrolment_hours="0.0003")
    service.start()
    try:
        yield service
    finally:
        service.stop()


def enroll(svc: Service, code: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "camera-agent"), "enroll", "--server", svc.url, "--code",
                           code, "--state-dir", str(state), "--source", "synthetic"],
                          capture_output=True, text=True, timeout=60)


def cameras(admin: Person) -> dict[str, dict[str, Any]]:
    reply = admin.get("/api/cameras")
    assert reply.status_code == 200, reply.text
    return {c["camera_id"]: c for c in reply.json()["cameras"]}


def wait_camera(admin: Person, camera_id: str, timeout: float = 30, **wanted: Any) -> float:
    """Poll the admins' camera list until the camera shows `wanted`; returns when."""
    deadline = time.monotonic() + timeout
    while True:
        cam = cameras(admin)[camera_id]
        if all(cam[k] == v for k, v in wanted.items()):
            return time.monotonic()
        assert time.monotonic() < deadline, f"{camera_id} never showed {wanted}: {cam}"
        time.sleep(0.1)


def open_check(staff: Person, recipient: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        found = [c for c in staff.rounds() if c["recipient"] == recipient
                 and c["state"] == "open" and c["camera_online"]]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no open check with camera for {recipient}"
        time.sleep(0.2)


def test_enroll_makes_key_pins_service_and_refuses_used_or_expired_codes(
        svc: Service, tmp_path: Path) -> None:
    cam = svc.world["cameras"][1]
    state = tmp_path / "device"
    done = enroll(svc, cam["code"], state)
    assert done.returncode == 0, done.stderr
    assert f"enrolled as camera {cam['camera_id']}" in done.stdout
    key = state / "agent.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    config = AgentConfig.load(state / "agent.toml")
    assert config.camera_id == cam["camera_id"]
    assert config.server_public_key == Identity.load(
        svc.root / "data" / "server.key").public_key_b64, "the service key is pinned"
    assert config.state_dir == state.resolve()
    key_bytes = key.read_bytes()

    used = enroll(svc, cam["code"], state)
    assert used.returncode == 2
    assert "enrolment refused: unknown or already used enrolment code" in used.stderr
    assert key.read_bytes() == key_bytes, "a refused enrolment leaves the device untouched"

    admin = Person(svc.url, "admin")
    created = admin.post("/api/cameras", {"recipient_id": cam["recipient_id"]})
    assert created.status_code == 200, created.text
    expires = datetime.fromisoformat(created.json()["expires_at"])
    time.sleep(max(0.0, expires.timestamp() - time.time()) + 0.3)
    late = enroll(svc, created.json()["enrolment_code"], tmp_path / "late")
    assert late.returncode == 2
    assert "enrolment refused: enrolment code has expired" in late.stderr
    assert not (tmp_path / "late" / "agent.key").exists()
    listed = cameras(admin)
    assert listed[cam["camera_id"]]["enrolled"] is True
    assert listed[created.json()["camera_id"]]["enrolled"] is False


def test_refusal_is_shown_to_admins_and_revocation_cuts_the_link(svc: Service) -> None:
    cam = svc.world["cameras"][0]
    camera_id = cam["camera_id"]
    svc.enrol(cam, source="synthetic:1")
    agent = svc.start_agent(camera_id)
    log = svc.agent_dir(camera_id) / "agent.log"
    admin, staff = Person(svc.url, "admin"), Person(svc.url, "natt")
    assert staff.get("/api/cameras").status_code == 403, "admins only"
    wait_camera(admin, camera_id, online=True)
    check = open_check(staff, cam["recipient"])

    # a refusal on the device reaches the admins' list with its reason
    bad = staff.post(f"/api/checks/{check['id']}/lookin", {"offer": "v=0\r\nnot an offer"})
    assert bad.status_code == 409, bad.text
    assert bad.json()["detail"]["reason"] == "bad-offer"
    listed = cameras(admin)[camera_id]
    assert [r["reason"] for r in listed["refusals"]][:1] == ["bad-offer"]
    assert listed["refusals"][0]["session"]
    assert "camera opened" not in log.read_text()
    health = listed["health"]
    assert health["camera_present"] is True and health["version"]
    assert health["free_memory_mb"] > 0 and "last_lookin" in health

    # revocation: CSRF-protected, audited, and the link is cut at once
    assert admin.post(f"/api/cameras/{camera_id}/revoke", csrf=False).status_code == 403
    cut = admin.post(f"/api/cameras/{camera_id}/revoke")
    assert cut.status_code == 200, cut.text
    assert cut.json() == {"camera_id": camera_id, "revoked": True, "link_closed": True}
    revoked_at = time.monotonic()
    while "service refused this camera (4403)" not in log.read_text():
        assert time.monotonic() - revoked_at < 2.0, "the agent's link was not cut at once"
        time.sleep(0.02)
    listed = cameras(admin)[camera_id]
    assert listed["revoked"] is True and listed["online"] is False
    # it keeps dialling (no restart needed once re-enrolled) but is refused every time
    deadline = time.monotonic() + 3 * BACKOFF_CAP + 5
    while log.read_text().count("service refused this camera (4403)") < 2:
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.1)
    assert agent.poll() is None
    assert cameras(admin)[camera_id]["online"] is False
    gone = staff.post(f"/api/checks/{check['id']}/lookin", {"offer": "v=0\r\nnot an offer"})
    assert gone.status_code in (409, 503)
    assert admin.post("/api/cameras/cam-nope/revoke").status_code == 404


def test_unknown_camera_is_refused(svc: Service, tmp_path: Path) -> None:
    stranger = new_agent(tmp_path / "stranger", camera_id="cam-ffff")
    server_key = Identity.load(svc.root / "data" / "server.key").public_key_b64
    stranger.configure(svc.url, server_key, source="synthetic")
    stranger.start()
    try:
        deadline = time.monotonic() + 20
        while "service refused this camera (4401)" not in stranger.log():
            assert time.monotonic() < deadline, stranger.log()
            time.sleep(0.1)
    finally:
        stranger.stop()


async def look(staff: Person, check_id: int) -> tuple[dict[str, Any], int]:
    """A look-in from an aiortc peer through the service; frames received in ~1.5 s."""
    pc, offer = await viewer_offer()
    tracks: asyncio.Queue[Any] = asyncio.Queue()
    pc.on("track", tracks.put_nowait)
    try:
        reply = await asyncio.to_thread(staff.post, f"/api/checks/{check_id}/lookin",
                                        {"offer": offer})
        assert reply.status_code == 200, reply.text
        data: dict[str, Any] = reply.json()
        assert verify(load_public_key(data["agent_key"]), data["signature"],
                      answer_message(data["session"], data["sdp"]))
        await pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "answer"))
        track = await asyncio.wait_for(tracks.get(), 15)
        frames = 0
        until = time.monotonic() + 1.5
        while time.monotonic() < until:
            await asyncio.wait_for(track.recv(), 10)
            frames += 1
        ended = await asyncio.to_thread(staff.post, f"/api/lookins/{data['session']}/end")
        assert ended.status_code == 204, ended.text
        return data, frames
    finally:
        await pc.close()


async def test_agent_is_back_within_the_backoff_cap_after_a_service_restart(
        svc: Service) -> None:
    cam = svc.world["cameras"][2]
    camera_id = cam["camera_id"]
    await asyncio.to_thread(svc.enrol, cam, "synthetic:3")
    agent = svc.start_agent(camera_id)
    admin = Person(svc.url, "admin")
    await asyncio.to_thread(wait_camera, admin, camera_id, 30, online=True)

    svc.kill()  # no goodbye: the agent sees a dead link and backs off
    await asyncio.sleep(BACKOFF_CAP)  # the backoff reaches its cap meanwhile
    await asyncio.to_thread(svc.start)  # returns once /healthz answers
    up = time.monotonic()
    back = await asyncio.to_thread(wait_camera, admin, camera_id, 30, online=True)
    assert back - up <= BACKOFF_CAP + 1.0, f"back after {back - up:.1f} s"
    assert agent.poll() is None, "the same agent process, never restarted"

    staff = Person(svc.url, "natt")
    check = await asyncio.to_thread(open_check, staff, cam["recipient"])
    data, frames = await look(staff, check["id"])
    assert frames >= 5, "frames flowed"
    assert data["seconds"] > 0
