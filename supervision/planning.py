"""Materialise nights: plans -> check rows, idempotently (the slot is the key).

Runs at start, every planning interval (all recipients), and on every plan change (one
recipient, ``replace=True``). It plans the current night and the next one, so a check
exists well before its window and a restart never loses one. Only checks that have not
opened are ever changed; a second run with nothing new changes nothing. Which plan
version a night uses is the plan store's business (``supervision.plans``); storing rows
in bulk is ``supervision.check_rows``'.

The bulk path (``plan_all``) must plan 10,000 recipients in under two seconds
(bench/plan_night.py), hence: one query for the version list, stored versions decoded
without validating them again (``plans.load_plans(bulk=True)``), each shape of night
expanded once (``windows_of``), expansion in a worker thread so the event loop keeps
serving look-ins, and the driver's bulk insert (COPY on PostgreSQL), storing one part
while the next is expanded.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from schedules.night import skip_reason
from supervision.check_rows import Row, delete_unopened, insert_checks, rederive
from supervision.checks import State
from supervision.models import Check, Plan
from supervision.plans import (
    Version,
    archived,
    in_chunks,
    in_force,
    load_plans,
    lock,
    recorded_consents,
    tonight,
    versions_of,
    with_consent,
)

__all__ = ["Changes", "materialise", "plan_all", "plan_recipient", "windows_of"]

_DAY = timedelta(days=1)
_THREAD_ABOVE = 200  # expand this many recipients or more off the event loop
PART = 500  # recipients per part of the planning job (plan_all)


@dataclass
class Changes:
    """What one planning run did to the check rows."""

    created: int = 0
    updated: int = 0  # re-derived not-yet-open checks whose window or state changed
    kept: int = 0  # re-derived not-yet-open checks that already matched the plan
    removed: int = 0


_Shape = tuple[tuple[schedules.CheckTime, ...], str, int, int, dt_time, date]


def windows_of(plan: schedules.Plan, night: date,
               memo: dict[_Shape, list[schedules.Window]]) -> list[schedules.Window]:
    """``schedules.expand(plan, night, include_skipped=True)``, shared between plans.

    A night's windows depend only on the check times, zone, window lengths and boundary;
    the skip (consent, pause, skip-night) is one per night. Recipients share times far
    more often than not, so the planner expands each shape once and re-stamps the skip
    (tests compare this with ``expand`` itself).
    """
    if plan.effective_from is not None and night < plan.effective_from:
        return []
    key = (plan.check_times, plan.timezone, plan.window_before_minutes,
           plan.window_after_minutes, plan.night_boundary, night)
    base = memo.get(key)
    if base is None:
        base = memo[key] = schedules.expand(plan, night, include_skipped=True)
        return base
    skip = skip_reason(plan, night)
    if not base or base[0].skip == skip:
        return base
    return [dataclasses.replace(w, skip=skip) for w in base]


def _desired(versions: dict[int, list[Version]], plans: dict[int, schedules.Plan],
             now: datetime, nights: int,
             memo: dict[_Shape, list[schedules.Window]] | None = None,
             consents: dict[int, schedules.Consent] | None = None) -> dict[str, Row]:
    """Pure: slot -> row for every window still to come. Runs in a thread when large.
    ``consents``: the consent on record per recipient (``plans.recorded_consents``); it
    replaces their plans' own, and a recipient without one has none."""
    consents = consents or {}
    out: dict[str, Row] = {}
    memo = {} if memo is None else memo
    tonights: dict[tuple[str, dt_time], date] = {}
    planned, skipped = State.PLANNED.value, State.SKIPPED.value
    for rid, vs in versions.items():
        newest = plans.get(vs[0].id)
        if newest is None:
            continue
        key = (newest.timezone, newest.night_boundary)
        first = tonights.get(key)
        if first is None:
            first = tonights[key] = tonight(newest, now)
        for k in range(nights):
            night = first + k * _DAY
            chosen = in_force(vs, night)
            plan = plans.get(chosen.id) if chosen else None
            if plan is None:
                continue
            plan = with_consent(plan, consents.get(rid))
            prefix = f"{rid}:{night.isoformat()}:"
            for w in windows_of(plan, night, memo):
                if w.closes <= now:
                    continue
                key_ = f"{prefix}{w.local_time.hour:02d}:{w.local_time.minute:02d}"
                if w.skip is None:
                    out[key_] = Row(key_, rid, night, w.due, w.opens, w.closes, planned, 0,
                                    None, None, None, None, None, plan.max_lookin_seconds)
                else:
                    out[key_] = Row(key_, rid, night, w.due, w.opens, w.closes, skipped, 0,
                                    None, w.skip.code, w.skip.detail or None, now, "planner",
                                    plan.max_lookin_seconds)
    return out


def _replaceable(check: Check, now: datetime) -> bool:
    """Checks a new plan may re-derive: never opened, never looked at, not a follow-up."""
    if check.parent_id is not None:
        return False
    if check.state == State.PLANNED:
        return check.opens_at > now
    return check.state == State.SKIPPED and check.actor == "planner" and check.closes_at > now


async def materialise(db: AsyncSession, now: datetime | None = None, *,
                      recipient_ids: Iterable[int] | None = None, replace: bool = False,
                      nights: int = 2) -> Changes:
    """Bring the check rows of the coming ``nights`` in line with the plans.

    Missing checks are created. With ``replace`` (a plan changed), checks that have not
    opened yet are also updated to the plan in force or removed if it no longer has them.
    """
    now = now or datetime.now(UTC)
    await lock(db)
    ids = None if recipient_ids is None else sorted(set(recipient_ids))
    versions = await versions_of(db, ids)
    for gone in await archived(db):  # an archived recipient's plan makes no checks
        versions.pop(gone, None)
    consents = await recorded_consents(db, ids)
    plans = await load_plans(db, [vs[0].id for vs in versions.values()], bulk=True)
    firsts: dict[int, date] = {}
    wanted: set[int] = set()
    for rid, vs in versions.items():
        newest = plans.get(vs[0].id)
        if newest is None:
            continue
        firsts[rid] = first = tonight(newest, now)
        for k in range(nights):
            chosen = in_force(vs, first + k * _DAY)
            if chosen is not None and chosen.id not in plans:
                wanted.add(chosen.id)
    plans.update(await load_plans(db, wanted, bulk=True))
    horizon = min(firsts.values(), default=schedules.night_of(now)) - _DAY
    if replace:
        return await _replace(db, ids, _desired(versions, plans, now, nights, None, consents),
                              horizon, now)

    changes = Changes()
    if not firsts:
        return changes
    query = select(Check.slot).where(Check.night >= horizon)
    existing: set[str] = set()
    for chunk in in_chunks(ids):
        q = query if chunk is None else query.where(Check.recipient_id.in_(chunk))
        existing.update((await db.execute(q)).scalars().all())
    # Large runs go in parts: the database stores one part (COPY, or SQLite's executemany,
    # which releases the GIL) while a worker thread expands the next.
    big = len(versions) >= _THREAD_ABOVE
    items = list(versions.items())
    size = -(-len(items) // (4 if big else 1))
    memo: dict[_Shape, list[schedules.Window]] = {}
    pending: asyncio.Task[None] | None = None
    try:
        for i in range(0, len(items), size):
            part = dict(items[i:i + size])
            desired = await asyncio.to_thread(_desired, part, plans, now, nights, memo,
                                              consents) \
                if big else _desired(part, plans, now, nights, memo, consents)
            rows = [row for key, row in desired.items() if key not in existing]
            if pending is not None:
                await pending
            pending = asyncio.create_task(insert_checks(db, rows))
            changes.created += len(rows)
    finally:
        if pending is not None:
            await pending
    await db.flush()
    return changes


async def _replace(db: AsyncSession, ids: list[int] | None, desired: dict[str, Row],
                   horizon: date, now: datetime) -> Changes:
    """Re-derive the not-yet-open checks in place, add the missing, remove the dropped."""
    changes = Changes()
    query = select(Check).where(Check.night >= horizon)
    existing_rows: list[Check] = []
    for chunk in in_chunks(ids):
        q = query if chunk is None else query.where(Check.recipient_id.in_(chunk))
        existing_rows.extend((await db.execute(q)).scalars().all())
    existing = {c.slot for c in existing_rows}
    gone: list[int] = []
    for check in existing_rows:
        if not _replaceable(check, now):
            continue
        new = desired.get(check.slot)
        if new is None:
            gone.append(check.id)
        elif _same(check, new):
            changes.kept += 1
        elif await rederive(db, check, new, now):
            changes.updated += 1
    for chunk in in_chunks(gone):
        assert chunk is not None
        changes.removed += await delete_unopened(db, chunk, now)
    new_rows = [row for key, row in desired.items() if key not in existing]
    await insert_checks(db, new_rows)
    changes.created = len(new_rows)
    await db.flush()
    return changes


def _same(check: Check, new: Row) -> bool:
    """Whether a not-yet-open check already matches its re-derived row."""
    return all(getattr(check, f) == getattr(new, f) for f in (
        "due_at", "opens_at", "closes_at", "state", "reason", "reason_detail",
        "max_lookin_seconds"))


async def plan_recipient(db: AsyncSession, recipient_id: int, now: datetime | None = None,
                         *, replace: bool = False) -> int:
    """Create the missing checks of tonight and tomorrow night; returns how many were made.

    With replace=True (a plan changed), checks that have not opened yet are re-derived
    (kept, updated or removed in place, so their ids stay); returns how many not-yet-open
    checks now follow the plan.
    """
    changes = await materialise(db, now, recipient_ids=[recipient_id], replace=replace)
    return changes.created + (changes.updated + changes.kept if replace else 0)


async def plan_all(db: AsyncSession, now: datetime | None = None) -> int:
    """The planning job: every recipient's missing checks; returns how many were made.

    In parts of ``PART`` recipients, each its own reads: the event loop gets a turn
    between them. In one run for 5,000 recipients with nothing to make, the node's loop
    was held for ~0.3 s at a time (reading and decoding every plan), and an alert
    acknowledged on that node waited for it (bench/nodes.py)."""
    now = now or datetime.now(UTC)
    ids = sorted((await db.execute(select(Plan.recipient_id).distinct())).scalars())
    made = 0
    for i in range(0, len(ids), PART):
        made += (await materialise(db, now, recipient_ids=ids[i:i + PART])).created
        await asyncio.sleep(0)  # a turn for whatever waited, even if every read was quick
    return made
