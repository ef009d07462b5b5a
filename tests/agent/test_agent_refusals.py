"""The refusal matrix: a real agent process, driven by a fake service that sends what the
real one never would. Each refusal must come back with its exact reason, be logged on the
device, and leave the camera closed: no `camera` message, no "camera opened" in the
agent's log, and the camera file never among the process's open files."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from camera_agent.protocol import END, Ticket
from tests.agent.conftest import Rig, linked_agent
from tests.agent.fake_service import FakeService, eventually, plan_at, viewer_offer

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALLOWING = plan_at(0)  # a check window around now
ELSEWHERE = plan_at(180)  # the only window three hours away
_versions = iter(range(10, 10_000))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> AsyncIterator[Rig]:
    async with linked_agent(tmp_path_factory.mktemp("refusals"), clip) as rig:
        yield rig


def camera_opens(rig: Rig) -> tuple[int, int, int]:
    """Every sign of the camera opening: messages, log lines, times the file was open."""
    return (len(rig.fake.of_type("camera")), rig.agent.log().count("camera opened"),
            len(rig.watch.intervals))


async def refused(rig: Rig, ticket: Ticket, token: str) -> str:
    """Send a look-in with a real offer; return the refusal reason after checking the
    camera stayed closed (also a moment after the refusal)."""
    before = camera_opens(rig)
    pc, offer = await viewer_offer()
    mark = len(rig.fake.received)
    try:
        await rig.fake.lookin(token, ticket, offer)
        reply = await rig.fake.reply_to(ticket.session, after=mark)
        assert reply.type == "refused", reply.msg
        await asyncio.sleep(0.3)
    finally:
        await pc.close()
    assert camera_opens(rig) == before, "the camera was opened for a refused look-in"
    assert not rig.watch.is_open
    reason = str(reply.msg["reason"])
    assert f"refused look-in {ticket.session}: {reason}" in rig.agent.log(), "logged locally"
    return reason


Make = Callable[[FakeService], tuple[Ticket, str]]
OTHER_KEY = Ed25519PrivateKey.generate()

MATRIX: dict[str, tuple[Make, str]] = {
    "forged-signature": (lambda f: f.ticket(key=OTHER_KEY), "bad-signature"),
    "other-camera": (lambda f: f.ticket(camera="cam-someone-else"), "wrong-camera"),
    "expired": (lambda f: f.ticket(not_before=time.time() - 40, seconds=30), "expired"),
    "not-yet-valid": (lambda f: f.ticket(not_before=time.time() + 60), "not-yet-valid"),
}


@pytest.mark.parametrize("case", list(MATRIX))
async def test_bad_ticket_is_refused_and_camera_stays_closed(rig: Rig, case: str) -> None:
    make, reason = MATRIX[case]
    await rig.fake.push_plan(ALLOWING, next(_versions))  # only the ticket is at fault
    ticket, token = make(rig.fake)
    assert await refused(rig, ticket, token) == reason


async def test_valid_ticket_outside_the_plans_windows_is_refused(rig: Rig) -> None:
    await rig.fake.push_plan(ELSEWHERE, next(_versions))
    ticket, token = rig.fake.ticket()
    assert await refused(rig, ticket, token) == "outside-window"


async def test_plan_with_bad_signature_is_rejected_and_previous_kept(rig: Rig) -> None:
    held = next(_versions)
    await rig.fake.push_plan(ELSEWHERE, held)
    mark = len(rig.fake.received)
    forged = next(_versions)
    # a plan that would allow now, signed with a key the agent never pinned
    await rig.fake.push_plan(ALLOWING, forged, key=OTHER_KEY)
    rejected = await rig.fake.wait_for(lambda r: r.type == "refused", after=mark)
    assert rejected.msg["reason"] == "plan-bad-signature"
    beat = await rig.fake.wait_for(lambda r: r.type == "heartbeat", after=len(rig.fake.received))
    assert beat.msg["health"]["plan_version"] == held
    ticket, token = rig.fake.ticket()
    assert await refused(rig, ticket, token) == "outside-window"
    assert "plan rejected" in rig.agent.log()


async def lookin_opens(rig: Rig, ticket: Ticket, token: str) -> None:
    """A legitimate look-in up to the camera being open."""
    pc, offer = await viewer_offer()
    mark = len(rig.fake.received)
    try:
        await rig.fake.lookin(token, ticket, offer)
        reply = await rig.fake.reply_to(ticket.session, after=mark)
        assert reply.type == "answer", reply.msg
        await rig.fake.wait_for(lambda r: r.type == "camera" and r.msg["state"] == "opened"
                                and r.msg["session"] == ticket.session, after=mark)
        await eventually(lambda: rig.watch.is_open, 5, "the watcher saw the camera open")
    finally:
        await pc.close()


async def end_and_wait_released(rig: Rig, ticket: Ticket) -> None:
    mark = len(rig.fake.received)
    await rig.fake.send(END, session=ticket.session)
    await rig.fake.wait_for(lambda r: r.type == "camera" and r.msg["state"] == "released"
                            and r.msg["session"] == ticket.session, after=mark)
    await rig.fake.wait_for(lambda r: r.type == "lookin_ended"
                            and r.msg["session"] == ticket.session, after=mark)
    await eventually(lambda: not rig.watch.is_open, 5, "the watcher saw the camera closed")


async def test_replayed_nonce_is_refused(rig: Rig) -> None:
    await rig.fake.push_plan(ALLOWING, next(_versions))
    ticket, token = rig.fake.ticket(seconds=60)
    await lookin_opens(rig, ticket, token)
    await end_and_wait_released(rig, ticket)
    # the very same ticket again, still within its validity
    assert await refused(rig, ticket, token) == "replayed"
    # a new ticket that reuses the nonce (properly signed) is a replay too
    again, again_token = rig.fake.ticket(nonce=ticket.nonce)
    assert await refused(rig, again, again_token) == "replayed"


async def test_second_concurrent_lookin_is_refused(rig: Rig) -> None:
    await rig.fake.push_plan(ALLOWING, next(_versions))
    first, first_token = rig.fake.ticket(seconds=60)
    await lookin_opens(rig, first, first_token)
    opened = len(rig.watch.intervals)
    second, second_token = rig.fake.ticket()
    pc, offer = await viewer_offer()
    try:
        await rig.fake.lookin(second_token, second, offer)
        reply = await rig.fake.reply_to(second.session)
    finally:
        await pc.close()
    assert reply.type == "refused" and reply.msg["reason"] == "busy"
    assert not rig.fake.of_type("camera", second.session), "never opened for the second"
    assert len(rig.watch.intervals) == opened, "the camera was not opened a second time"
    await end_and_wait_released(rig, first)
    # once the first has ended, the second ticket (its nonce never spent) is admitted
    await lookin_opens(rig, second, second_token)
    await end_and_wait_released(rig, second)
