"""The agent says what it did with each plan (issue 9: never report a push that did not
arrive): ``plan_ack {version}`` once it verified and holds it, ``refused`` with the plan's
version otherwise. The largest plan ``schedules`` accepts reaches a real agent process over
its link without closing it. Driven by the fake service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from camera_agent.identity import Identity
from camera_agent.protocol import (
    MAX_MESSAGE_BYTES,
    PLAN,
    PLAN_ACK,
    encode_message,
    plan_message,
)
from schedules import canonical, plan_to_dict
from schedules.plan import MAX_ITEMS
from tests.agent.conftest import Rig, linked_agent
from tests.agent.fake_service import Received, plan_at
from tests.schedules.strategies import largest_plan

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> AsyncIterator[Rig]:
    async with linked_agent(tmp_path_factory.mktemp("plan-ack"), clip) as rig:
        yield rig


async def answer(rig: Rig, mark: int, version: int) -> Received:
    """The agent's word on that plan version: its acknowledgement or its refusal."""
    return await rig.fake.wait_for(
        lambda r: r.type in (PLAN_ACK, "refused") and r.msg.get("version") == version,
        after=mark)


async def test_the_largest_valid_plan_reaches_the_agent_and_is_acknowledged(rig: Rig) -> None:
    links = rig.fake.links
    plan = largest_plan("😀", first_night=date.today())
    fields = rig.fake.signed_plan(plan, 41)
    size = len(encode_message(PLAN, **fields).encode("utf-8"))
    assert size < MAX_MESSAGE_BYTES, size
    mark = len(rig.fake.received)
    await rig.fake.send(PLAN, **fields)
    reply = await answer(rig, mark, 41)
    assert reply.type == PLAN_ACK, reply.msg
    assert "plan version 41 accepted" in rig.agent.log()
    beat = await rig.fake.wait_for(lambda r: r.type == "heartbeat", after=mark)
    assert beat.msg["health"]["plan_version"] == 41
    assert rig.fake.links == links and rig.fake.conn is not None, "the link stayed up"


async def test_an_unchanged_plan_is_acknowledged_again(rig: Rig) -> None:
    plan = plan_at(0)
    await rig.fake.push_plan(plan, 42)  # waits for its plan_ack
    mark = len(rig.fake.received)
    await rig.fake.send(PLAN, **rig.fake.signed_plan(plan, 42))
    assert (await answer(rig, mark, 42)).type == PLAN_ACK


async def test_a_plan_over_the_limits_is_refused_with_its_version(rig: Rig) -> None:
    """Signed by the right key but one skip night too many (what a service without the
    bound would send): the agent parses every plan by the service's rules, refuses it and
    keeps the one it holds."""
    await rig.fake.push_plan(plan_at(0), 43)
    data = plan_to_dict(largest_plan("x", first_night=date.today()))
    skips = data["skip_nights"]
    assert isinstance(skips, list)
    skips.append({"night": (date.today() + timedelta(days=300)).isoformat(), "reason": "x"})
    raw = canonical(data)
    mark = len(rig.fake.received)
    await rig.fake.send(PLAN, plan_json=raw.decode(), version=44, signature=Identity(
        rig.fake.key).sign(plan_message(rig.fake.camera_id, raw)))
    reply = await answer(rig, mark, 44)
    assert reply.type == "refused" and reply.msg["reason"] == "plan-invalid", reply.msg
    assert reply.msg["session"] == ""
    assert f"at most {MAX_ITEMS['skip_nights']} entries" in reply.msg["detail"]
    beat = await rig.fake.wait_for(lambda r: r.type == "heartbeat",
                                   after=len(rig.fake.received))
    assert beat.msg["health"]["plan_version"] == 43, "the plan held is kept"


async def test_a_forged_plan_is_refused_with_its_version(rig: Rig) -> None:
    mark = len(rig.fake.received)
    await rig.fake.send(PLAN, **rig.fake.signed_plan(plan_at(0), 45,
                                                     key=Ed25519PrivateKey.generate()))
    reply = await answer(rig, mark, 45)
    assert reply.type == "refused" and reply.msg["reason"] == "plan-bad-signature"
    assert not [r for r in rig.fake.received[mark:] if r.type == PLAN_ACK]
