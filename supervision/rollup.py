"""The nightly roll-up: a night that has ended for good has its period-report figures written
once, per unit, so a month's report sums a few hundred rows per unit instead of counting
620 k checks (``bench/report.py``); the period report reads live rows only for the nights
not rolled up (``reports.period_report``).

What is written, per night, by the very SQL the report runs live (``reports``): checks per
unit and category and skips per unit and reason (``rollup_counts``), each alert with its
reason and the patrol's times (``rollup_alerts``: per alert, so the median and 90th
percentile over any set of nights stay exact), technical failures per camera
(``rollup_cameras``). Names and, for alerts and cameras, units are joined at read time.

When: a night is rolled up once it has ended for good, that is its last check has closed
and either every check of it is final and every alert of it resolved, or
``report_rollup_grace_hours`` have passed since. Counted with the report's late limit
(``report_late_minutes``); a night counted with another limit is rolled up again.

Staying true: rolled-up nights are not immutable (a late record, a correction, a purge, a
recipient moved to another unit all change what the report would count), so triggers mark
the night dirty in the changing transaction (migration 0013) and the job rolls it up again;
until then the report reads it live. The one gap a trigger cannot close is a change begun
before the night's row existed: on PostgreSQL the job therefore creates the rows of nights
never rolled up, commits, and waits for every transaction then writing the tables the
report reads (``LOCK ... IN SHARE MODE``, released at once) before counting; on SQLite the
single writer already orders them. Each night is counted under its row's lock, so two runs
at once (two nodes, or a run and a take-over) do one after the other, the second finding it
done.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, func, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from supervision import reports
from supervision.alert_states import AlertState
from supervision.checks import State
from supervision.db import Database
from supervision.models import (
    Alert,
    Check,
    NightRollup,
    RollupAlert,
    RollupCamera,
    RollupCount,
)

log = logging.getLogger("supervision.rollup")

#: a check in these states may still change by itself (the sweep opens and ends them)
UNFINISHED = (State.PLANNED.value, State.OPEN.value)
#: the tables whose writers a first roll-up waits for (what the report reads)
READ_TABLES = "checks, visits, alerts, audit_events, recipients"
#: nights rolled up per run at most: a year's backlog is done over several runs
PER_RUN = 62


async def roll_up(database: Database, *, late_minutes: int, grace: timedelta,
                  now: datetime | None = None, limit: int = PER_RUN) -> list[date]:
    """Roll up every night that has ended for good and is not rolled up (or is dirty, or
    was counted with another late limit), oldest first, at most ``limit``. Returns them."""
    now = now or datetime.now(UTC)
    running = schedules.night_of(now)
    async with database.read() as db:
        first = (await db.execute(select(func.min(Check.night)))).scalar()
        if first is None:
            return []
        current = set((await db.execute(select(NightRollup.night).where(
            NightRollup.night >= first, NightRollup.dirty.is_(False),
            NightRollup.late_minutes == late_minutes))).scalars())
        due: list[date] = []
        night = first
        while night < running and len(due) < limit:
            if night not in current and await ended(db, night, now, grace):
                due.append(night)
            night += timedelta(days=1)
    if not due or not await _claim(database, due):
        return []
    return [n for n in due if await _roll(database, n, late_minutes, now)]


async def ended(db: AsyncSession, night: date, now: datetime, grace: timedelta) -> bool:
    """Whether the night has ended for good (see the module's docstring)."""
    last_close, unfinished = (await db.execute(
        select(func.max(Check.closes_at),
               func.count(Check.id).filter(Check.state.in_(UNFINISHED)))
        .where(Check.night == night))).one()
    if last_close is None:
        return True  # no checks (any more): an empty roll-up, made dirty by the first
    if now < last_close:
        return False
    if now >= last_close + grace:
        return True
    unresolved = (await db.execute(
        select(func.count(Alert.id)).join(Check, Check.id == Alert.check_id)
        .where(Check.night == night, Alert.state != AlertState.RESOLVED.value))).scalar()
    return not unfinished and not unresolved


async def _claim(database: Database, nights: list[date]) -> bool:
    """Make the nights' rows (dirty, never rolled up) where there are none; on PostgreSQL,
    then wait for the writers of the report's tables that may have begun before them
    (whose triggers found no row to mark). False: they did not finish in time (next run)."""
    postgres = database.engine.dialect.name == "postgresql"
    async with database.write() as db:
        values = [{"night": n, "dirty": True} for n in nights]
        made = (pg_insert(NightRollup) if postgres else sqlite_insert(NightRollup)
                ).values(values).on_conflict_do_nothing(index_elements=["night"])
        await db.execute(made)
        fresh = (await db.execute(select(func.count()).select_from(NightRollup).where(
            NightRollup.night.in_(nights), NightRollup.late_minutes.is_(None)))).scalar()
    if not postgres or not fresh:
        return True
    try:
        # while the lock is asked for, new writers queue behind it: a writer's transaction
        # is milliseconds, and one that is not is not waited for beyond a second (the
        # nights are tried again at the next run)
        async with database.write() as db:
            await db.execute(text("SET LOCAL lock_timeout = '1s'"))
            await db.execute(text(f"LOCK TABLE {READ_TABLES} IN SHARE MODE"))
    except DBAPIError as exc:
        log.warning("roll-up: writers still busy, trying again next run (%s)", exc.orig)
        return False
    return True


async def _roll(database: Database, night: date, late_minutes: int, now: datetime) -> bool:
    """Count the night into its roll-up, under its row's lock; False if another run had
    just done it."""
    dialect = database.engine.dialect.name
    async with database.write() as db:
        row = (await db.execute(select(NightRollup.dirty, NightRollup.late_minutes)
                                .where(NightRollup.night == night).with_for_update())).one()
        if not row.dirty and row.late_minutes == late_minutes:
            return False
        for table in (RollupCount, RollupAlert, RollupCamera):
            await db.execute(delete(table).where(table.night == night))
        tonight = Check.night == night
        cells = reports.category_cells(dialect, tonight, None, late_minutes).subquery()
        await db.execute(insert(RollupCount).from_select(
            ["night", "unit", "kind", "key", "count"],
            select(cells.c.night, cells.c.unit, literal("category"), cells.c.category,
                   cells.c.n)))
        skips = reports.skip_counts(tonight, None).subquery()
        await db.execute(insert(RollupCount).from_select(
            ["night", "unit", "kind", "key", "count"],
            select(skips.c.night, skips.c.unit, literal("skipped"), skips.c.reason,
                   skips.c.n)))
        alerts = reports.alert_durations(dialect, tonight, None).subquery()
        await db.execute(insert(RollupAlert).from_select(
            ["night", "alert_id", "recipient_id", "reason", "ack_s", "arr_s"],
            select(alerts.c.night, alerts.c.alert_id, alerts.c.recipient_id, alerts.c.reason,
                   alerts.c.ack_s, alerts.c.arr_s)))
        await db.execute(insert(RollupCamera).from_select(
            ["camera_id", "night", "recipient_id", "technical_failure", "agent_gone",
             "unreported"], reports.camera_failures(dialect, tonight)))
        await db.execute(update(NightRollup).where(NightRollup.night == night).values(
            dirty=False, late_minutes=late_minutes, rolled_at=now))
    return True
