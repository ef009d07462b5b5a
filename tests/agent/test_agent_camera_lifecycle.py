"""The camera's lifecycle in a real agent process, observed from outside it.

The camera is a video file, so "open" is visible in /proc/<pid>/fd: a watcher thread
records the instants the agent held it. The agent's own `camera` reports (with its
timestamps), the hooks it runs and the frames the viewer receives are checked against
those instants, and the ticket's expiry is the reference for "released within 1 s".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiortc import RTCSessionDescription

from camera_agent.protocol import END, Ticket
from tests.agent.conftest import Rig, linked_agent
from tests.agent.fake_service import (
    Viewer,
    eventually,
    open_files,
    snapshot,
    viewer_offer,
    writable,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

RELEASE_BOUND = 1.0  # seconds after expiry or an end message (the bound)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> AsyncIterator[Rig]:
    root = tmp_path_factory.mktemp("lifecycle")
    hooks = root / "hooks"
    hooks.mkdir()
    async with linked_agent(
            root / "agent", clip,
            on_lookin_start=f'sh -c "date +%s.%N >> {hooks}/start"',
            on_lookin_end=f'sh -c "date +%s.%N >> {hooks}/end"') as rig:
        yield rig




async def start_lookin(rig: Rig, ticket: Ticket, token: str) -> Viewer:
    pc, offer = await viewer_offer()
    viewer = Viewer(pc, clock=time.time)
    mark = len(rig.fake.received)
    await rig.fake.lookin(token, ticket, offer)
    reply = await rig.fake.reply_to(ticket.session, after=mark)
    assert reply.type == "answer", reply.msg
    await pc.setRemoteDescription(RTCSessionDescription(reply.msg["sdp"], "answer"))
    await rig.fake.wait_for(lambda r: r.type == "camera" and r.msg["state"] == "opened"
                            and r.msg["session"] == ticket.session, after=mark)
    return viewer


def reported(rig: Rig, session: str, state: str) -> float:
    found = [r for r in rig.fake.of_type("camera", session) if r.msg["state"] == state]
    assert len(found) == 1, f"one '{state}' report for {session}"
    return float(found[0].msg["at"])


def stamps(path: Path) -> list[float]:
    return [float(line) for line in path.read_text().split()] if path.exists() else []


async def test_released_within_1s_of_expiry_with_the_link_cut(rig: Rig) -> None:
    intervals_before = len(rig.watch.intervals)
    ticket, token = rig.fake.ticket(seconds=4)
    sent = time.time()
    viewer = await start_lookin(rig, ticket, token)
    try:
        await viewer.first_frame()
        assert viewer.sizes == {(640, 480)}
        await rig.fake.cut()  # the service is gone: no end message can come now
        cut_at = time.time()
        assert cut_at < ticket.not_after - 1.0, "the link was cut during the look-in"
        await asyncio.sleep(max(0.0, ticket.not_after + RELEASE_BOUND + 0.5 - time.time()))
        assert rig.fake.conn is None

        # seen from outside the process: open once, only inside the look-in
        assert len(rig.watch.intervals) == intervals_before + 1
        opened, closed = rig.watch.intervals[-1]
        assert sent <= opened < ticket.not_after
        assert closed - ticket.not_after <= RELEASE_BOUND, \
            f"camera held {closed - ticket.not_after:.2f} s past expiry"
        assert max(viewer.frames) - ticket.not_after <= RELEASE_BOUND, "no frame after expiry"
    finally:
        await viewer.close()

    # the service comes back: the agent relinks and delivers what happened meanwhile
    await rig.fake.start()
    await rig.fake.wait_linked(15)
    ended = await rig.fake.wait_for(lambda r: r.type == "lookin_ended"
                                    and r.msg["session"] == ticket.session)
    assert ended.msg["reason"] == "expired"
    assert ended.at > cut_at, "reported through the outbox after the relink"
    released = reported(rig, ticket.session, "released")
    assert released - ticket.not_after <= RELEASE_BOUND
    assert reported(rig, ticket.session, "opened") >= sent

    # the hooks followed the camera, link or no link
    hooks = rig.agent.root.parent / "hooks"
    await eventually(lambda: bool(stamps(hooks / "end")), 5, "the end hook ran")
    (start,), (end,) = stamps(hooks / "start"), stamps(hooks / "end")
    assert sent <= start <= ticket.not_after
    assert released - 0.01 <= end <= released + 5


async def test_released_within_1s_of_an_end_message(rig: Rig) -> None:
    await rig.fake.wait_linked(15)
    ticket, token = rig.fake.ticket(seconds=30)
    viewer = await start_lookin(rig, ticket, token)
    try:
        await viewer.first_frame()
        await asyncio.sleep(0.5)
        end_sent = time.time()
        await rig.fake.send(END, session=ticket.session)
        await rig.fake.wait_for(lambda r: r.type == "lookin_ended"
                                and r.msg["session"] == ticket.session)
        await eventually(lambda: not rig.watch.is_open, 5, "the watcher saw it closed")
    finally:
        await viewer.close()
    assert reported(rig, ticket.session, "released") - end_sent <= RELEASE_BOUND
    opened, closed = rig.watch.intervals[-1]
    assert opened < end_sent
    assert closed - end_sent <= RELEASE_BOUND
    ended = rig.fake.of_type("lookin_ended", ticket.session)[0]
    assert ended.msg["reason"] == "ended"
    assert ended.msg["detail"] == ""  # a plain end has no detail


async def test_revocation_during_a_lookin_releases_the_camera_at_once(rig: Rig) -> None:
    await rig.fake.wait_linked(15)
    ticket, token = rig.fake.ticket(seconds=30)
    viewer = await start_lookin(rig, ticket, token)
    try:
        await viewer.first_frame()
        revoked_at = time.time()
        await rig.fake.revoke()
        await eventually(lambda: "service refused this camera (4403)" in rig.agent.log(), 5,
                         "the agent saw the revocation")
        await asyncio.sleep(RELEASE_BOUND + 0.2)
    finally:
        await viewer.close()
    opened, closed = rig.watch.intervals[-1]
    assert opened < revoked_at and closed - revoked_at <= RELEASE_BOUND
    await rig.fake.wait_linked(15)  # this fake takes it back; the real one would not
    ended = await rig.fake.wait_for(lambda r: r.type == "lookin_ended"
                                    and r.msg["session"] == ticket.session)
    assert ended.msg["reason"] == "revoked"


async def test_no_file_is_created_or_written_during_a_lookin(rig: Rig) -> None:
    """Checked three ways: the state and working directories are unchanged, and no file
    was open for writing in the process during the look-in except its log (stdout)."""
    await rig.fake.wait_linked(15)
    agent = rig.agent
    dirs = (agent.state_dir, agent.work_dir)
    before = snapshot(*dirs)
    log_fds = {f.target for f in open_files(agent.pid).values()
               if writable(f.flags) and f.target.startswith("/") and not
               f.target.startswith(("/dev/", "/proc/"))}
    assert log_fds == {str(agent.log_path)}, log_fds
    ticket, token = rig.fake.ticket(seconds=4)
    rig.watch.seen.clear()
    viewer = await start_lookin(rig, ticket, token)
    try:
        await viewer.first_frame()
        await asyncio.sleep(max(0.0, ticket.not_after + RELEASE_BOUND - time.time()))
    finally:
        await viewer.close()
    assert len(viewer.frames) >= 10, "frames were encoded and sent meanwhile"
    await rig.fake.wait_for(lambda r: r.type == "lookin_ended"
                            and r.msg["session"] == ticket.session)
    written = {path for path, flags in rig.watch.seen.items() if writable(flags)}
    assert written <= log_fds, f"files opened for writing during the look-in: {written}"
    assert set(rig.watch.seen) <= log_fds | {str(rig.clip)}, rig.watch.seen
    assert snapshot(*dirs) == before, "the state or working directory changed"


async def test_source_that_fails_to_open_ends_with_technical_failure(tmp_path: Path) -> None:
    missing = tmp_path / "unplugged.avi"  # the camera is not there
    async with linked_agent(tmp_path / "agent", missing, open_deadline_seconds=2) as rig:
        ticket, token = rig.fake.ticket(seconds=30)
        pc, offer = await viewer_offer()
        try:
            sent = time.time()
            await rig.fake.lookin(token, ticket, offer)
            reply = await rig.fake.reply_to(ticket.session)
            if reply.type == "answer":  # the failure came after the answer was made
                await pc.setRemoteDescription(RTCSessionDescription(reply.msg["sdp"], "answer"))
            else:  # the failure came first: the service hears it as the reply
                assert reply.msg["reason"] == "technical-failure", reply.msg
                assert reply.msg["detail"] == "open-failed", reply.msg
            ended = await rig.fake.wait_for(lambda r: r.type == "lookin_ended")
        finally:
            await pc.close()
        assert ended.msg["reason"] == "technical-failure"
        assert ended.msg["detail"] == "open-failed"
        assert ended.at - sent < 2 + RELEASE_BOUND + 1, "ended at once, not at expiry"
        assert not rig.fake.of_type("camera"), "never reported open"
        beat = await rig.fake.wait_for(lambda r: r.type == "heartbeat", after=rig.fake.received
                                       .index(ended))
        assert beat.msg["health"]["last_lookin"] == "technical-failure"
        assert beat.msg["health"]["last_lookin_detail"] == "open-failed"
        assert beat.msg["health"]["camera_present"] is False
