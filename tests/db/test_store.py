"""The same models, migrations and transactions on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from supervision import audit, outcomes, planning
from supervision.checks import Outcome, State
from supervision.models import Alert, AuditEvent, Check, User
from supervision.runtime import Runtime
from tests.evidence import seen


async def test_planning_is_idempotent(rt: Runtime) -> None:
    async with rt.write() as db:
        first = await planning.plan_all(db)
    async with rt.write() as db:
        again = await planning.plan_all(db)
    async with rt.read() as db:
        total = (await db.execute(select(func.count(Check.id)))).scalar()
    # 3 recipients x 2 times, tonight and tomorrow night
    assert first == 12 and again == 0 and total == 12
    async with rt.write() as db:
        replanned = await planning.plan_recipient(db, 1, replace=True)
    async with rt.read() as db:
        assert (await db.execute(select(func.count(Check.id)))).scalar() == 12
    assert replanned == 3  # the check due in 2 minutes has already opened: kept as it is


async def test_planning_in_parts_makes_the_same_checks(rt: Runtime,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The job plans in parts (the loop gets a turn between them): one recipient a part
    here, and every recipient's checks are made, once."""
    monkeypatch.setattr(planning, "PART", 1)
    async with rt.write() as db:
        first = await planning.plan_all(db)
    async with rt.write() as db:
        again = await planning.plan_all(db)
    async with rt.read() as db:
        per = dict((await db.execute(select(Check.recipient_id, func.count(Check.id))
                                     .group_by(Check.recipient_id))).all())
    assert first == 12 and again == 0 and sorted(per.values()) == [4, 4, 4]


async def test_times_round_trip_as_utc(rt: Runtime) -> None:
    async with rt.write() as db:
        await planning.plan_all(db)
    async with rt.read() as db:
        check = (await db.execute(select(Check).order_by(Check.due_at).limit(1))).scalar_one()
    assert check.due_at.tzinfo is UTC
    assert check.closes_at - check.opens_at == timedelta(minutes=30)
    assert abs(check.due_at - datetime.now(UTC)) < timedelta(minutes=4)


async def test_outcome_alert_and_audit_commit_together(rt: Runtime) -> None:
    async with rt.write() as db:
        await planning.plan_all(db)
        check = (await db.execute(select(Check).order_by(Check.due_at).limit(1))).scalar_one()
        check.state = State.OPEN
        staff = (await db.execute(select(User).where(User.username == "natt"))).scalar_one()
    await outcomes.record(rt, staff, check.id, Outcome.NEEDS_HELP, await seen(rt, staff, check.id))
    async with rt.read() as db:
        stored = await db.get(Check, check.id)
        alerts = (await db.execute(select(Alert))).scalars().all()
        assert stored is not None and stored.state == State.DISPATCHED
        assert [(a.reason, a.priority, a.state) for a in alerts] == [("needs-help", 1, "new")]
        assert await audit.verify(db) == []


async def test_audit_chain_finds_changed_removed_inserted(rt: Runtime) -> None:
    async with rt.write() as db:
        for i in range(5):
            await audit.append(db, "t", "test", f"n:{i}", {"i": i})
    async with rt.read() as db:
        assert await audit.verify(db) == []
        ids = [e.id for e in (await db.execute(select(AuditEvent).order_by(AuditEvent.id))
                              ).scalars()]
    async with rt.write() as db:
        await db.execute(update(AuditEvent).where(AuditEvent.id == ids[2])
                         .values(data={"i": 99}))
    async with rt.read() as db:
        problems = await audit.verify(db)
    assert [(p.entry_id, p.what) for p in problems] == [(ids[2], "entry content changed")]
