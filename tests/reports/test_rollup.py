"""The nightly roll-up (supervision/rollup.py) gives the period report the same figures as
the live rows, on SQLite and PostgreSQL: six generated nights in two units (every category,
skips with and without a reason, dispatches the patrol worked through at odd fractions of a
second, technical failures) are compared table by table, median and 90th percentile too,
with no night, some and every night rolled up; a night that had not ended for good waits
for its grace; a late record, a correction, a purge and a move of unit after the roll-up
mark the night dirty in their own transaction and the report stays true; the job is
idempotent, and two runs at once do not double anything. Straight on the database: no
service."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from supervision import audit, reports, rollup
from supervision.db import Database, migrate
from supervision.models import (
    Alert,
    AuditEvent,
    Camera,
    Check,
    NightRollup,
    Recipient,
    RollupAlert,
    RollupCamera,
    RollupCount,
    User,
    Visit,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

FIRST = date(2025, 1, 5)
NIGHTS = [FIRST + timedelta(days=d) for d in range(6)]  # 5 to 10 January
GRACE = timedelta(hours=48)
#: the 11th at 13:00 local: nights 5-8 ended for good (the 8th by its grace), the 9th has an
#: unresolved alert within its grace, the 10th a check still open
MIDDAY = datetime(2025, 1, 11, 12, 0, tzinfo=UTC)
LATER = datetime(2025, 1, 20, 12, 0, tzinfo=UTC)
UNITS = ("Enhet Norr", "Enhet Söder")


async def generate(database: Database) -> None:
    """Three recipients per unit, three checks a night each, what became of each drawn
    from a fixed seed; the patrol's moves through the audit log, as the service writes."""
    rng = random.Random(13)
    async with database.write() as db:
        viewer = User(username="rollup-natt", display_name="Rolf", password_hash="x",
                      role="staff")
        people = [Recipient(name=f"Person {i}", address="Gatan", unit=UNITS[i % 2])
                  for i in range(6)]
        db.add_all([viewer, *people])
        await db.flush()
        db.add_all([Camera(id=f"cam-roll-{p.id}", recipient_id=p.id) for p in people])
        await db.flush()
        moves: list[tuple[Alert, dict[str, float]]] = []
        for night in NIGHTS:
            for p in people:
                for k in range(3):
                    due = datetime.combine(night, datetime.min.time(), UTC) + timedelta(
                        hours=21 + 2 * k)
                    draw = rng.random()
                    state, reason = (("missed", "window-closed") if draw < 0.12 else
                                     ("skipped", rng.choice(("paused", "no-consent", None)))
                                     if draw < 0.25 else
                                     ("dispatched", rng.choice(("needs-help", "camera-offline")))
                                     if draw < 0.4 else ("follow-up", "not-visible")
                                     if draw < 0.45 else ("done", "calm"))
                    if night == NIGHTS[-1] and p.id == people[0].id and k == 2:
                        state, reason = "open", None  # the 10th: a check not yet ended
                    # the 8th and the 9th: an alert the patrol has not resolved
                    unresolved = k == 0 and (night, p.id) in ((NIGHTS[3], people[0].id),
                                                             (NIGHTS[4], people[1].id))
                    if unresolved:
                        state, reason = "missed", "window-closed"
                    check = Check(slot=f"roll:{p.id}:{night}:{k}", recipient_id=p.id,
                                  night=night, due_at=due,
                                  opens_at=due - timedelta(minutes=10),
                                  closes_at=due + timedelta(minutes=20), state=state,
                                  reason=reason)
                    db.add(check)
                    await db.flush()
                    if state in ("done", "follow-up") or reason == "needs-help":
                        at = due + timedelta(seconds=rng.uniform(0, 900))
                        failed = rng.random() < 0.15
                        db.add(Visit(
                            id=f"r{check.id}", check_id=check.id, camera_id=f"cam-roll-{p.id}",
                            recipient_id=p.id, viewer_id=viewer.id, nonce=f"r{check.id}",
                            requested_at=at, expires_at=at + timedelta(seconds=30),
                            ended_at=at + timedelta(seconds=20), seconds=20.0,
                            end_reason=rng.choice(reports.TECHNICAL_ENDS) if failed else "ended",
                            outcome=None if failed else reason))
                    if state in ("missed", "dispatched"):
                        raised = check.closes_at if state == "missed" else due
                        steps = {"acknowledged": rng.uniform(5, 200)}
                        if rng.random() < 0.2:
                            steps = {}
                        elif rng.random() < 0.8:
                            steps["arrived"] = steps["acknowledged"] + rng.uniform(60, 1500)
                        alert = Alert(check_id=check.id, recipient_id=p.id, priority=2,
                                      reason="missed" if state == "missed" else reason,
                                      state="arrived" if unresolved else "resolved",
                                      created_at=raised, updated_at=raised)
                        db.add(alert)
                        await db.flush()
                        moves.append((alert, steps))
        for alert, steps in moves:
            for kind, after in steps.items():
                await audit.append(db, "patrull", f"alert.{kind}", f"alert:{alert.id}", {},
                                   at=alert.created_at + timedelta(seconds=after))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def db(database: tuple[str, Path]) -> AsyncIterator[Database]:
    opened = Database.open(database[0])
    await migrate(opened.engine)
    await generate(opened)
    yield opened
    await opened.engine.dispose()


async def live(database: Database, period: reports.Period, start: date, unit: str | None,
               late: int = 5) -> reports.PeriodReport:
    """The report from the live rows alone: with the roll-ups' rows gone in a transaction
    that is rolled back."""
    async with database.sessions() as session, session.begin():
        await session.execute(delete(NightRollup))
        report = await reports.period_report(session, period, start, unit, late)
        await session.rollback()
    return report


async def report(database: Database, period: reports.Period, start: date, unit: str | None,
                 late: int = 5) -> reports.PeriodReport:
    async with database.read() as session:
        return await reports.period_report(session, period, start, unit, late)


#: every report compared: the month and a week, for the service and each unit
CASES: list[tuple[reports.Period, date, str | None]] = [
    ("month", FIRST, None), *(("month", FIRST, u) for u in UNITS), ("week", NIGHTS[2], None)]


async def assert_same(database: Database, late: int = 5) -> None:
    for period, start, unit in CASES:
        got = await report(database, period, start, unit, late)
        assert got == await live(database, period, start, unit, late), (period, unit)


async def clean(database: Database) -> set[date]:
    async with database.read() as session:
        return set((await session.execute(select(NightRollup.night).where(
            NightRollup.dirty.is_(False)))).scalars())


async def run(database: Database, now: datetime) -> list[date]:
    return await rollup.roll_up(database, late_minutes=5, grace=GRACE, now=now)


async def test_the_data_has_every_kind(db: Database) -> None:
    whole = await report(db, "month", FIRST, None)
    total = whole.by_unit[-1]
    assert total.planned == 6 * 6 * 3
    assert min(total.on_time, total.late, total.missed, total.skipped, total.pending) > 0
    assert {s.reason for s in whole.skipped} == {"", "paused", "no-consent"}
    service = whole.response[-1]
    assert service.alerts > service.acknowledged > service.arrived > 5
    assert service.ack_median_s is not None and service.arrival_p90_s is not None
    assert whole.cameras and await clean(db) == set()


async def test_nights_ended_for_good_are_rolled_up_and_the_rest_read_live(db: Database
                                                                         ) -> None:
    assert await run(db, MIDDAY) == NIGHTS[:4]
    assert await clean(db) == set(NIGHTS[:4])
    async with db.read() as session:
        counted = (await session.execute(select(func.sum(RollupCount.count)).where(
            RollupCount.kind == "category"))).scalar()
        alerts = (await session.execute(select(func.count()).select_from(RollupAlert))
                  ).scalar()
    assert counted == 4 * 6 * 3 and alerts
    await assert_same(db)
    # the 9th's alert is resolved: it has ended for good; the 10th's check is still open
    async with db.write() as session:
        await session.execute(update(Alert).where(Alert.state == "arrived").values(
            state="resolved"))
    assert await run(db, MIDDAY) == [NIGHTS[4]]
    await assert_same(db)


async def test_every_night_rolled_up_is_the_same_and_a_second_run_does_nothing(
        db: Database) -> None:
    rolled = await run(db, LATER)  # the 10th by its grace; the empty nights after it too
    assert rolled[0] == NIGHTS[5] and rolled[-1] == date(2025, 1, 19)
    await assert_same(db)
    rows = await rollup_rows(db)
    assert await run(db, LATER) == []
    assert await rollup_rows(db) == rows
    # counted with another late limit the roll-ups are not used, and the job redoes them
    await assert_same(db, late=10)
    assert len(await rollup.roll_up(db, late_minutes=10, grace=GRACE, now=LATER)) == 15
    await assert_same(db, late=10)
    assert len(await run(db, LATER)) == 15


async def rollup_rows(database: Database) -> list[int]:
    async with database.read() as session:
        return [(await session.execute(select(func.count()).select_from(t))).scalar_one()
                for t in (RollupCount, RollupAlert, RollupCamera)]


async def test_a_change_after_the_roll_up_marks_the_night_dirty(db: Database) -> None:
    assert await clean(db) >= set(NIGHTS)
    async with db.write() as session:
        # a late record: a look-in on the first missed check, now late, not missed
        missed = (await session.execute(select(Check).where(Check.state == "missed")
                                        .order_by(Check.night, Check.id))).scalars().first()
        assert missed is not None
        missed.state = "done"
        viewer = (await session.execute(select(User.id).where(
            User.username == "rollup-natt"))).scalar_one()
        at = missed.due_at + timedelta(minutes=7)
        session.add(Visit(id="late-record", check_id=missed.id, camera_id=f"cam-roll-"
                          f"{missed.recipient_id}", recipient_id=missed.recipient_id,
                          viewer_id=viewer, nonce="late-record", requested_at=at,
                          expires_at=at, ended_at=at, seconds=1.0, end_reason="agent-gone"))
        # the patrol's arrival entered late for an alert of another night
        alert, other = (await session.execute(
            select(Alert, Check.night).join(Check, Check.id == Alert.check_id)
            .where(Check.night != missed.night).order_by(Alert.id))).first() or (None, None)
        assert alert is not None and other is not None
        await audit.append(session, "patrull", "alert.arrived", f"alert:{alert.id}", {},
                           at=alert.created_at + timedelta(seconds=4321.5))
        changed = {missed.night, other}
    assert changed.isdisjoint(await clean(db)) and len(await clean(db)) == 15 - 2
    await assert_same(db)
    # a recipient moved to the other unit: every night with a check of theirs
    async with db.write() as session:
        await session.execute(update(Recipient).where(Recipient.name == "Person 3").values(
            unit=UNITS[0]))
    assert set(NIGHTS).isdisjoint(await clean(db))
    await assert_same(db)
    assert await run(db, LATER) == NIGHTS
    await assert_same(db)
    # a purge of the 7th's alerts' audit entries, then of the 7th's look-ins
    async with db.write() as session:
        ids = (await session.execute(select(Alert.id).join(Check, Check.id == Alert.check_id)
                                     .where(Check.night == NIGHTS[2]))).scalars()
        subjects = [f"alert:{i}" for i in ids]
        gone = await session.execute(delete(AuditEvent).where(AuditEvent.subject.in_(subjects)))
        assert gone.rowcount  # type: ignore[attr-defined]
    assert NIGHTS[2] not in await clean(db)
    await assert_same(db)
    async with db.write() as session:
        await session.execute(delete(Visit).where(Visit.check_id.in_(
            select(Check.id).where(Check.night == NIGHTS[2]))))
    assert await run(db, LATER) == [NIGHTS[2]]
    await assert_same(db)


async def test_two_runs_at_once_double_nothing(db: Database) -> None:
    before = await rollup_rows(db)
    async with db.write() as session:  # as if never rolled up, so both claim every night
        for table in (NightRollup, RollupCount, RollupAlert, RollupCamera):
            await session.execute(delete(table))
    first, second = await asyncio.gather(run(db, LATER), run(db, LATER))
    assert sorted(first + second) == [FIRST + timedelta(days=d) for d in range(15)]
    assert await rollup_rows(db) == before
    await assert_same(db)


async def blocked(database: Database, task: asyncio.Task[list[date]]) -> None:
    """Until the roll-up waits for the writer (or has finished, which the caller's checks
    then find wrong): a lock wait in PostgreSQL, the queue for SQLite's one writer."""
    for _ in range(2000):
        if task.done():
            return
        if database.engine.dialect.name == "postgresql":
            async with database.read() as session:
                waiting = (await session.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"))).scalar()
        else:
            waiting = database._write_lock.locked() and len(
                getattr(database._write_lock, "_waiters", None) or ())
        if waiting:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the roll-up neither waited nor finished")


async def test_a_change_under_way_during_a_roll_up_is_counted(db: Database) -> None:
    async def flip(session: AsyncSession, night: date) -> None:
        chk = (await session.execute(select(Check).where(
            Check.night == night, Check.state == "done").order_by(Check.id))).scalars().first()
        assert chk is not None
        chk.state = "missed"
        await session.flush()  # written, not committed

    # a first roll-up: the writer began before the night had a row to mark
    async with db.write() as session:
        for table in (NightRollup, RollupCount, RollupAlert, RollupCamera):
            await session.execute(delete(table))
    async with db.write() as session:
        await flip(session, NIGHTS[1])
        task = asyncio.create_task(run(db, LATER))
        await blocked(db, task)
    assert len(await task) == 15
    assert NIGHTS[1] in await clean(db)
    await assert_same(db)
    # a roll-up again: the night is dirty, and a second change is under way
    async with db.write() as session:
        await flip(session, NIGHTS[3])
    async with db.write() as session:
        await flip(session, NIGHTS[3])
        task = asyncio.create_task(run(db, LATER))
        await blocked(db, task)
    assert await task == [NIGHTS[3]]
    assert NIGHTS[3] in await clean(db)
    await assert_same(db)
