"""A real agent measures its clock against the service's from the heartbeat answers and
reports the offset in its health; past CLOCK_TOLERANCE_SECONDS it says so (admins and
metrics see it) while the gate still accepts the service's tickets (it refuses only past
SKEW). The service here is the test's fake, whose "clock" is 1.5 s ahead of the device."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from camera_agent.gate import SKEW
from camera_agent.protocol import CLOCK_TOLERANCE_SECONDS, HEARTBEAT_ACK
from tests.agent.conftest import clip, linked_agent
from tests.agent.fake_service import viewer_offer

__all__ = ["clip"]  # the agent tests' camera clip fixture

AHEAD = 1.5  # seconds the fake service's clock runs ahead of the device's

pytestmark = pytest.mark.asyncio


async def test_an_offset_past_the_tolerance_is_reported_before_tickets_fail(
        tmp_path: Path, clip: Path) -> None:
    assert CLOCK_TOLERANCE_SECONDS < AHEAD < SKEW
    async with linked_agent(tmp_path, clip, heartbeat_seconds=0.5) as rig:
        fake = rig.fake
        beat = await fake.wait_for(lambda r: r.type == "heartbeat", 10)
        assert beat.msg["health"]["clock_offset_seconds"] is None, "the fake's welcome has " \
            "no time: nothing measured yet"
        sent = beat.msg["sent_at"]
        assert abs(sent - time.time()) < 5, "sent_at is the device's clock"
        mark = len(fake.received)
        later = await fake.wait_for(lambda r: r.type == "heartbeat", 10, after=mark)
        await fake.send(HEARTBEAT_ACK, server_time=time.time() + AHEAD,
                        sent_at=later.msg["sent_at"])
        mark = len(fake.received)
        told = await fake.wait_for(lambda r: r.type == "heartbeat"
                                   and r.msg["health"]["clock_offset_seconds"] is not None,
                                   10, after=mark)
        health = told.msg["health"]
        # the ack answered a heartbeat sent a moment before: the round trip's half is the
        # measure's error, a fraction of a second here
        assert abs(health["clock_offset_seconds"] - AHEAD) < 0.4, health
        assert health["clock_off"] is True

        # a ticket minted by the service's clock still passes the gate
        ticket, token = fake.ticket(not_before=time.time() + AHEAD)
        pc, offer = await viewer_offer()
        try:
            await fake.lookin(token, ticket, offer)
            reply = await fake.reply_to(ticket.session)
        finally:
            await pc.close()
        assert reply.type == "answer", reply.msg
