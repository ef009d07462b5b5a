"""The end of the check window is a hard limit on the device (issue 9).

A real agent process holds a signed plan whose only window closes at a whole minute just
ahead; a look-in starts a few seconds before that with a ticket that runs a minute longer
(as a service that does not cap its tickets would sign it). The agent must release the
camera and the aiortc viewer decode no frame after the window's close, within TOLERANCE.
Plan windows fall on whole minutes, so the test waits for the next one (up to a minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiortc import MediaStreamTrack, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

import schedules
from tests.agent.conftest import Rig, linked_agent
from tests.agent.fake_service import TZ, viewer_offer

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: Seconds after the window's close within which the camera is released and the last
#: frame decoded (the agent's timer, releasing the camera, frames already in flight).
TOLERANCE = 1.0
#: The look-in starts this many seconds before the window closes.
LEAD = 6.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> AsyncIterator[Rig]:
    async with linked_agent(tmp_path_factory.mktemp("window-end"), clip) as rig:
        yield rig


def plan_closing_at(closes: datetime) -> schedules.Plan:
    """One check whose window closes at ``closes`` (a whole minute): due a minute before,
    1 minute after it, opened 15 minutes before; look-ins of up to 120 s."""
    local = closes.astimezone(ZoneInfo(TZ))
    boundary = (local - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    return schedules.Plan(
        check_times=(schedules.CheckTime(at=(local - timedelta(minutes=1)).time()),),
        timezone=TZ, window_before_minutes=15, window_after_minutes=1,
        max_lookin_seconds=120,
        consent=schedules.Consent(given_on=date.today() - timedelta(days=30)),
        night_boundary=boundary.time())


async def test_lookin_stops_at_the_window_end_whatever_the_ticket_says(rig: Rig) -> None:
    now = datetime.now(UTC)
    closes = (now + timedelta(seconds=LEAD + 4, minutes=1)).replace(second=0, microsecond=0)
    plan = plan_closing_at(closes)
    decision = schedules.authorise(plan, now)
    assert decision.allowed and decision.until == closes, "the plan's window ends there"
    await rig.fake.push_plan(plan, 500)
    await asyncio.sleep(max(0.0, closes.timestamp() - LEAD - time.time()))

    ticket, token = rig.fake.ticket(seconds=60)  # uncapped: runs 54 s past the close
    assert ticket.not_after > closes.timestamp() + 50
    pc, offer = await viewer_offer()
    frames: list[float] = []
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    pc.on("track", tracks.put_nowait)
    mark = len(rig.fake.received)

    async def collect(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                frames.append(time.time())

    collector: asyncio.Task[None] | None = None
    try:
        await rig.fake.lookin(token, ticket, offer)
        reply = await rig.fake.reply_to(ticket.session, after=mark)
        assert reply.type == "answer", reply.msg
        await pc.setRemoteDescription(RTCSessionDescription(reply.msg["sdp"], "answer"))
        collector = asyncio.ensure_future(collect(await asyncio.wait_for(tracks.get(), 10)))
        ended = await rig.fake.wait_for(
            lambda r: r.type == "lookin_ended" and r.msg["session"] == ticket.session,
            timeout=LEAD + 15, after=mark)
        await asyncio.sleep(TOLERANCE + 1.0)  # frames still in flight would arrive now
    finally:
        if collector is not None:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        await pc.close()

    end = closes.timestamp()
    assert (ended.msg["reason"], ended.msg["detail"]) == ("expired", "window-closed")
    assert frames and frames[0] < end, "the picture was there before the window closed"
    assert max(frames) - end <= TOLERANCE, f"a frame {max(frames) - end:.2f} s after the close"
    released = [r for r in rig.fake.of_type("camera", ticket.session)
                if r.msg["state"] == "released"]
    assert len(released) == 1 and released[0].msg["at"] - end <= TOLERANCE
    opened, closed = rig.watch.intervals[-1]  # the camera file, seen from outside
    assert opened < end and closed - end <= TOLERANCE, f"held {closed - end:.2f} s past"
    assert float(ended.msg["seconds"]) <= LEAD + TOLERANCE + 1
