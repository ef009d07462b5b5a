"""Look-ins from a real agent whose camera is a real RTSP server on loopback, watched by an
aiortc viewer, with what the camera saw recorded on the server's side.

The agent passes the camera's H.264 through (no mask, no enhancement). This camera makes a
keyframe of its own only every GOP_SECONDS (as a long I-frame interval or a "smart codec"
does) and takes a request for one, which the agent is configured to make
(`keyframe_command`): only as it opens the camera for a look-in (and again when a
connection's first frame is no keyframe), never at link or by doctor without --camera,
and the first frame comes within FIRST_FRAME_BOUND, long before the camera's own next
keyframe would have. The stated bounds:
the camera is connected to only during a look-in and the RTSP session is torn down within
RELEASE_BOUND of the look-in's end; a camera that refuses the credentials ends the look-in
at once (detail `camera-credentials`); one that stalls ends it within STALL_BOUND
(`read-failed`); one that drops and is back within capture.STALL_SECONDS is reconnected
and the look-in goes on. The camera's password appears nowhere the agent writes or sends.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiortc import RTCSessionDescription

from camera_agent import doctor
from camera_agent.capture import STALL_SECONDS
from camera_agent.protocol import END, Ticket
from tests.agent.fake_service import Viewer, eventually, viewer_offer
from tests.rtsp.conftest import PASSWORD, USER, Rig, keyframe_command, rtsp_agent, running_camera
from tests.rtsp.server import RtspServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

RELEASE_BOUND = 1.0                # s from the look-in's end to the camera seeing us leave
STALL_BOUND = STALL_SECONDS + 1.0  # s from the camera's last packet to the look-in's end
GOP_SECONDS = 8.0                  # the camera's own I-frame interval
FIRST_FRAME_BOUND = 2.5            # s from the look-in message to the viewer's first frame


@pytest.fixture(scope="module")
def camera() -> Iterator[RtspServer]:
    """This module's camera: a keyframe of its own every GOP_SECONDS, or on request."""
    with running_camera(gop=int(GOP_SECONDS * 10)) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory,
              camera: RtspServer) -> AsyncIterator[Rig]:
    root = tmp_path_factory.mktemp("rtsp-lookin")
    # the privacy preset: writes a line, then hangs until killed after its timeout
    preset = f"sh -c 'echo $NATTILLSYN_EVENT $NATTILLSYN_SESSION >> {root}/preset; sleep 30'"
    async with rtsp_agent(root / "agent", camera.url(USER, PASSWORD), enhance=False,
                          open_deadline_seconds=4, after_lookin_command=preset,
                          after_lookin_timeout_seconds=1,
                          keyframe_command=keyframe_command(camera, root / "camera.netrc"),
                          keyframe_timeout_seconds=3) as rig:
        yield rig




async def start(rig: Rig, seconds: float = 30) -> tuple[Ticket, Viewer, int]:
    ticket, token = rig.fake.ticket(seconds=seconds)
    pc, offer = await viewer_offer()
    viewer = Viewer(pc)
    mark = len(rig.fake.received)
    await rig.fake.lookin(token, ticket, offer)
    reply = await rig.fake.reply_to(ticket.session, after=mark)
    assert reply.type == "answer", reply.msg
    viewer.sdp = reply.msg["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(reply.msg["sdp"], "answer"))
    return ticket, viewer, mark


async def ended(rig: Rig, ticket: Ticket, mark: int, timeout: float = 10) -> tuple[dict, float]:
    got = await rig.fake.wait_for(lambda r: r.type == "lookin_ended"
                                  and r.msg["session"] == ticket.session, timeout, after=mark)
    return got.msg, time.monotonic()


def released(rig: Rig, ticket: Ticket) -> bool:
    return any(r.msg["state"] == "released" for r in rig.fake.of_type("camera", ticket.session))


def no_player_left(camera: RtspServer) -> bool:
    return not any(c.playing or (c.closed_at is None) for c in camera.clients)


async def wait_camera_free(camera: RtspServer, timeout: float) -> float:
    """Until every connection to the camera is closed; the instant it was."""
    deadline = time.monotonic() + timeout
    while not no_player_left(camera):
        assert time.monotonic() < deadline, f"the agent still holds the camera: {camera.clients}"
        await asyncio.sleep(0.02)
    return time.monotonic()


async def fresh_gop(camera: RtspServer) -> float:
    """Make the camera start a GOP now; the instant its own next keyframe is due."""
    count = len(camera.keyframes)
    camera.request_keyframe()
    await asyncio.to_thread(camera.wait, lambda: len(camera.keyframes) > count, 2,
                            "a keyframe")
    return camera.keyframes[-1][0] + GOP_SECONDS


async def test_keyframe_asked_for_only_as_a_lookin_opens_the_camera(
        rig: Rig, camera: RtspServer, tmp_path: Path) -> None:
    assert camera.clients == [], "the agent connected to the camera outside a look-in"
    assert camera.keyframe_requests == [], "asked for a keyframe at link"
    # doctor without --camera, on this agent's config (its service address made
    # unreachable, so the running agent's link is left alone): no connection, no request
    config = await asyncio.to_thread(rig.agent.config_path.read_text)
    assert rig.fake.url in config and "keyframe_command" in config
    (tmp_path / "agent.toml").write_text(config.replace(rig.fake.url, "http://127.0.0.1:9"))
    found = await doctor.run_checks(tmp_path / "agent.toml", camera=False)
    assert any(f.key == "camera-skipped" for f in found)
    assert camera.clients == [] and camera.keyframe_requests == []

    own_next = await fresh_gop(camera)
    before = time.monotonic()
    ticket, viewer, mark = await start(rig)
    try:
        await viewer.first_frame(GOP_SECONDS)
        took = viewer.frames[0] - before
        assert took <= FIRST_FRAME_BOUND, f"first frame {took:.2f} s after the look-in"
        assert viewer.frames[0] < own_next - GOP_SECONDS / 2, "the camera's own keyframe"
        player, = camera.players()
        assert any(forced and player.played_at < at < viewer.frames[0]
                   for at, forced in camera.keyframes), "the viewer got the requested one"
        await rig.fake.send(END, session=ticket.session)
        msg, _ = await ended(rig, ticket, mark)
        assert msg["reason"] == "ended"
        await wait_camera_free(camera, RELEASE_BOUND)
        # asked as the camera opened (a second time if the first frame of the connection
        # was no keyframe), and not since
        requests = list(camera.keyframe_requests)
        assert 1 <= len(requests) <= 2, requests
        assert before < requests[0] < viewer.frames[0] and requests[-1] < player.closed_at
    finally:
        await viewer.close()


async def test_passthrough_lookin_plays_and_tears_down(rig: Rig, camera: RtspServer) -> None:
    sessions = len(camera.players())
    ticket, viewer, mark = await start(rig)
    try:
        before = time.monotonic()
        await viewer.frames_after(0, 15)
        assert viewer.sizes == {(640, 480)}, "the camera's own picture, not rescaled"
        assert "H264/90000" in viewer.sdp and "VP8/90000" not in viewer.sdp
        assert len(camera.players()) == sessions + 1
        player = camera.players()[-1]
        assert player.transport.startswith("RTP/AVP/TCP"), "TCP unless configured otherwise"
        beat = await rig.fake.wait_for(lambda r: r.type == "heartbeat"
                                       and r.msg["health"]["lookin_active"], 20, after=mark)
        assert beat.msg["health"]["video_path"] == "passthrough"
        assert beat.msg["health"]["video_path_reason"] == "rtsp-h264-unprocessed"
        # about the camera's 10 fps, handed on as it came
        await asyncio.sleep(1.0)
        recent = [t for t in viewer.frames if t > time.monotonic() - 1.0]
        assert len(recent) >= 7, f"{len(recent)} frames in the last second"
        assert before < player.played_at + 5
        await rig.fake.send(END, session=ticket.session)
        end_sent = time.monotonic()
        msg, _ = await ended(rig, ticket, mark)
        assert msg["reason"] == "ended"
        left = await wait_camera_free(camera, 5)
        assert left - end_sent <= RELEASE_BOUND, f"camera held {left - end_sent:.2f} s"
        assert player.left, "the RTSP session ended with its connection"
        assert released(rig, ticket)
        # the privacy preset ran after the end (which did not wait for it), then was
        # killed at its timeout, and that was logged
        preset = rig.agent.root.parent / "preset"
        await eventually(lambda: preset.exists()
                         and f"after {ticket.session}" in preset.read_text(), 5,
                         "the after-look-in command ran")
        await eventually(lambda: "hook sh (after) killed after 1 s" in rig.agent.log(), 5,
                         "the hung command was killed and logged")
    finally:
        await viewer.close()


async def test_camera_stall_ends_the_lookin(rig: Rig, camera: RtspServer) -> None:
    ticket, viewer, mark = await start(rig)
    try:
        await viewer.frames_after(0, 5)
        camera.stalled = True
        stalled_at = time.monotonic()
        msg, at = await ended(rig, ticket, mark)
        assert (msg["reason"], msg["detail"]) == ("technical-failure", "read-failed")
        assert at - stalled_at <= STALL_BOUND, f"ended {at - stalled_at:.2f} s after the stall"
        await wait_camera_free(camera, RELEASE_BOUND)
        assert released(rig, ticket)
    finally:
        camera.stalled = False
        await viewer.close()


async def test_camera_drop_and_return_goes_on(rig: Rig, camera: RtspServer) -> None:
    sessions = len(camera.players())
    ticket, viewer, mark = await start(rig)
    try:
        await viewer.frames_after(0, 5)
        camera.drop_clients(refuse_seconds=0.5)
        dropped = time.monotonic()
        await viewer.frames_after(dropped + 0.5, 10, timeout=STALL_SECONDS + 3)
        assert len(camera.players()) == sessions + 2, "reconnected once, a new RTSP session"
        assert not rig.fake.of_type("lookin_ended", ticket.session), "the look-in went on"
        await rig.fake.send(END, session=ticket.session)
        msg, _ = await ended(rig, ticket, mark)
        assert msg["reason"] == "ended"
        await wait_camera_free(camera, RELEASE_BOUND + 0.5)
    finally:
        await viewer.close()


async def test_refused_credentials_end_at_once(rig: Rig, camera: RtspServer) -> None:
    camera.users = {USER: "changed-on-the-camera"}
    try:
        ticket, token = rig.fake.ticket(seconds=30)
        pc, offer = await viewer_offer()
        viewer = Viewer(pc)
        mark = len(rig.fake.received)
        started = time.monotonic()
        await rig.fake.lookin(token, ticket, offer)
        reply = await rig.fake.reply_to(ticket.session, after=mark)
        if reply.type == "answer":  # the camera said no after the answer went out
            await pc.setRemoteDescription(RTCSessionDescription(reply.msg["sdp"], "answer"))
        else:  # ... or before it was made: the look-in is refused with the same reason
            assert reply.type == "refused", reply.msg
            assert (reply.msg["reason"], reply.msg["detail"]) == ("technical-failure",
                                                                  "camera-credentials")
        try:
            msg, at = await ended(rig, ticket, mark)
            assert (msg["reason"], msg["detail"]) == ("technical-failure",
                                                      "camera-credentials")
            assert at - started <= 1.5
            assert camera.clients[-1].refused_auth >= 1
            await wait_camera_free(camera, RELEASE_BOUND)
            assert not viewer.frames
            beat = await rig.fake.wait_for(
                lambda r: r.type == "heartbeat"
                and r.msg["health"]["last_lookin_detail"] == "camera-credentials", 10,
                after=mark)
            assert beat.msg["health"]["last_lookin"] == "technical-failure"
        finally:
            await viewer.close()
    finally:
        camera.users = {USER: PASSWORD}


async def test_the_password_goes_nowhere(rig: Rig, camera: RtspServer,
                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    """After the look-ins above (one ended by a refused password): not in the agent's log,
    nor in anything it sent the service (heartbeats with health, reports, errors)."""
    assert len(camera.players()) >= 3, "runs after the look-ins"
    log = rig.agent.log()
    assert "127.0.0.1" in log and "***@127.0.0.1" in log, "the source is logged, redacted"
    assert PASSWORD not in log
    sent = json.dumps([r.msg for r in rig.fake.received])
    assert PASSWORD not in sent and USER not in sent
    holding = await asyncio.to_thread(
        lambda: [p.name for p in Path(rig.agent.state_dir).rglob("*")
                 if p.is_file() and PASSWORD.encode() in p.read_bytes()])
    assert holding == ["agent.toml"], "only the config holds it"
