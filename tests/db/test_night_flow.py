"""The night's workflow against a real database: follow-ups, missed checks, offline cameras,
escalation. Time is driven explicitly through the sweep's `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from supervision import outcomes, planning
from supervision.checks import Outcome, State
from supervision.models import Alert, AuditEvent, Camera, Check, User
from supervision.runtime import Runtime
from supervision.sweep import sweep
from tests.evidence import seen

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def first_check(rt: Runtime) -> Check:
    async with rt.write() as db:
        await planning.plan_all(db)
    async with rt.read() as db:
        return (await db.execute(select(Check).order_by(Check.due_at).limit(1))).scalar_one()


async def staff(rt: Runtime) -> User:
    async with rt.read() as db:
        return (await db.execute(select(User).where(User.username == "natt"))).scalar_one()


async def mark_cameras_seen(rt: Runtime, when: datetime) -> None:
    async with rt.write() as db:
        for camera in (await db.execute(select(Camera))).scalars():
            camera.last_seen_at = when


async def test_not_visible_twice_follows_up_then_dispatches(rt: Runtime) -> None:
    now = datetime.now(UTC)
    check = await first_check(rt)
    await mark_cameras_seen(rt, now)
    await sweep(rt, now, started_at=LONG_AGO)
    user = await staff(rt)
    await outcomes.record(rt, user, check.id, Outcome.NOT_VISIBLE, await seen(rt, user, check.id))
    async with rt.read() as db:
        follow = (await db.execute(select(Check).where(Check.parent_id == check.id))
                  ).scalar_one()
        assert (await db.get(Check, check.id)).state == State.FOLLOW_UP  # type: ignore[union-attr]
        assert follow.follow_ups == 1 and follow.state == State.PLANNED
        assert timedelta(minutes=14) < follow.due_at - now < timedelta(minutes=16)
        assert (await db.execute(select(Alert))).first() is None
    # the follow-up's window opens (the camera still heartbeats), staff see nobody again
    later = follow.opens_at + timedelta(seconds=1)
    await mark_cameras_seen(rt, later)
    await sweep(rt, later, started_at=LONG_AGO)
    async with rt.read() as db:
        assert (await db.get(Check, follow.id)).state == State.OPEN  # type: ignore[union-attr]
    async with rt.write() as db:  # the real clock is before the follow-up window: shift it
        row = await db.get(Check, follow.id)
        assert row is not None
        row.opens_at, row.closes_at = now - timedelta(minutes=1), now + timedelta(minutes=29)
    await outcomes.record(rt, user, follow.id, Outcome.NOT_VISIBLE, await seen(rt, user, follow.id))
    async with rt.read() as db:
        assert (await db.get(Check, follow.id)).state == State.DISPATCHED  # type: ignore[union-attr]
        alert = (await db.execute(select(Alert))).scalar_one()
        assert (alert.reason, alert.check_id, alert.state) == ("not-visible", follow.id, "new")
        assert (await db.execute(select(Check).where(Check.parent_id == follow.id))
                ).first() is None, "at most one follow-up"


async def test_window_passing_without_lookin_is_missed_with_alert(rt: Runtime) -> None:
    check = await first_check(rt)
    after = check.closes_at + timedelta(seconds=1)
    await mark_cameras_seen(rt, check.opens_at)
    await sweep(rt, check.opens_at + timedelta(seconds=1), started_at=LONG_AGO)
    await sweep(rt, after, started_at=LONG_AGO)
    await sweep(rt, after + timedelta(seconds=5), started_at=LONG_AGO)  # idempotent
    async with rt.read() as db:
        stored = await db.get(Check, check.id)
        assert stored is not None and stored.state == State.MISSED
        assert stored.reason == "window-closed" and stored.actor == "sweep"
        alerts = (await db.execute(select(Alert).where(Alert.check_id == check.id))).all()
        assert len(alerts) == 1


async def test_offline_camera_dispatches_when_the_window_opens(rt: Runtime) -> None:
    check = await first_check(rt)
    opened = check.opens_at + timedelta(seconds=1)
    await mark_cameras_seen(rt, opened - timedelta(minutes=10))  # long silent
    await sweep(rt, opened, started_at=LONG_AGO)
    async with rt.read() as db:
        stored = await db.get(Check, check.id)
        assert stored is not None
        assert (stored.state, stored.reason) == (State.DISPATCHED, "camera-offline")
        alert = (await db.execute(select(Alert).where(Alert.check_id == check.id))).scalar_one()
        assert alert.reason == "camera-offline"


async def test_fresh_start_gives_agents_time_to_link(rt: Runtime) -> None:
    check = await first_check(rt)
    opened = check.opens_at + timedelta(seconds=1)
    await sweep(rt, opened, started_at=opened)  # service just started, no agent yet
    async with rt.read() as db:
        assert (await db.get(Check, check.id)).state == State.OPEN  # type: ignore[union-attr]


async def test_unacknowledged_alert_escalates_once(rt: Runtime) -> None:
    check = await first_check(rt)
    now = datetime.now(UTC)
    await mark_cameras_seen(rt, now)
    await sweep(rt, now, started_at=LONG_AGO)
    user = await staff(rt)
    await outcomes.record(rt, user, check.id, Outcome.NEEDS_HELP, await seen(rt, user, check.id))
    await sweep(rt, now + timedelta(minutes=2), started_at=LONG_AGO)
    async with rt.read() as db:
        assert (await db.execute(select(Alert))).scalar_one().escalated_at is None
    for _ in range(2):
        await sweep(rt, now + timedelta(minutes=3, seconds=5), started_at=LONG_AGO)
    async with rt.read() as db:
        assert (await db.execute(select(Alert))).scalar_one().escalated_at is not None
        kinds = [e.kind for e in (await db.execute(select(AuditEvent))).scalars()]
        assert kinds.count("alert.escalated") == 1


async def test_missed_action_is_configurable_per_unit(rt: Runtime) -> None:
    rt.settings.missed_action_by_unit = {"Demo": "alert"}
    check = await first_check(rt)
    await mark_cameras_seen(rt, check.opens_at)
    await sweep(rt, check.closes_at + timedelta(seconds=1), started_at=LONG_AGO)
    async with rt.read() as db:
        alert = (await db.execute(select(Alert).where(Alert.check_id == check.id))).scalar_one()
    assert (alert.reason, alert.priority) == ("missed-alert", 4)
