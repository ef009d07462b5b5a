"""A real agent process streams to an aiortc peer (standing in for the browser) through the
real service; the stream stops at ticket expiry and the agent reports the camera released."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from camera_agent.protocol import answer_message, load_public_key, verify
from tests.conftest import Service
from tests.people import Person


async def offer_sdp(pc: RTCPeerConnection) -> str:
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


async def look(svc: Service, staff: Person, check_id: int, seconds_to_watch: float | None):
    pc = RTCPeerConnection()
    frames: list[tuple[float, int, int]] = []
    got_track: asyncio.Future = asyncio.get_running_loop().create_future()
    pc.on("track", lambda track: got_track.set_result(track))
    sdp = await offer_sdp(pc)
    reply = await asyncio.to_thread(staff.post, f"/api/checks/{check_id}/lookin", {"offer": sdp})
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert verify(load_public_key(data["agent_key"]), data["signature"],
                  answer_message(data["session"], data["sdp"]))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="answer"))
    track = await asyncio.wait_for(got_track, 10)
    started = time.monotonic()
    try:
        while seconds_to_watch is None or time.monotonic() - started < seconds_to_watch:
            frame = await asyncio.wait_for(track.recv(), 5)
            frames.append((time.monotonic(), frame.width, frame.height))
    except (MediaStreamError, TimeoutError):
        pass
    return pc, data, frames


async def test_stream_decodes_and_stops_at_expiry(service: Service) -> None:
    staff = Person(service.url, "natt")
    check = staff.wait_open_checks(1)[0]
    pc, data, frames = await look(service, staff, check["id"], None)
    await pc.close()
    assert data["seconds"] == 30
    assert len(frames) > 100, "about 10 fps for 30 s"
    assert {(w, h) for _, w, h in frames} == {(640, 480)}
    last = frames[-1][0]
    first = frames[0][0]
    assert last - first <= 30.5, "no frame after the ticket expired"
    # the agent reports the camera released; the service records the visit's end
    deadline = time.monotonic() + 5
    rows: list[tuple[str, str]] = []
    visit = None
    while time.monotonic() < deadline:
        db = sqlite3.connect(service.root / "test.db")
        rows = db.execute("SELECT kind, subject FROM audit_events WHERE subject = ?",
                          (f"visit:{data['session']}",)).fetchall()
        visit = db.execute("SELECT end_reason, seconds FROM visits WHERE id = ?",
                           (data["session"],)).fetchone()
        db.close()
        if ("camera.released", f"visit:{data['session']}") in rows and visit[0]:
            break
        await asyncio.sleep(0.2)
    kinds = [kind for kind, _ in rows]
    assert kinds.index("camera.opened") < kinds.index("camera.released")
    assert visit is not None and visit[0] == "expired"
    assert 29 <= visit[1] <= 31
