"""Materialise nights: plans -> check rows, idempotently (the slot is the key).

Runs at start, every planning interval (all recipients), and on every plan change (one
recipient, ``replace=True``). It plans the current night and the next one, so a check
exists well before its window and a restart never loses one. Only checks that have not
opened are ever changed; a second run with nothing new changes nothing.

Plan versions: a recipient's plan rows are immutable versions. A version is in force for
the nights from its ``effective_from`` (every night if it has none) until a newer version
takes over, so a change "from Monday" leaves the nights before Monday on the old rules.
The newest version whose ``effective_from`` has been reached wins.

The bulk path (``plan_all``) must plan 10,000 recipients in under two seconds
(bench/plan_night.py), hence: one query for the version list, stored versions decoded
without validating them again (they were validated when saved, see ``decode_stored``),
each shape of night expanded once (``windows_of``), expansion in a worker thread so the
event loop keeps serving look-ins, and the driver's bulk insert (COPY on PostgreSQL),
storing one part while the next is expanded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Any, NamedTuple

from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from schedules.night import skip_reason
from supervision.checks import State
from supervision.models import Check, Plan

log = logging.getLogger("supervision.planning")

_DAY = timedelta(days=1)
_LOCK_KEY = 0x504C414E  # "PLAN": one planner at a time on PostgreSQL (job vs. a plan save)
_CHUNK = 5000  # ids per IN (...) list; far below every driver's parameter limit
_THREAD_ABOVE = 200  # expand this many recipients or more off the event loop
_parsed: dict[str, schedules.Plan] = {}
_PARSED_MAX = 100_000


@dataclass(frozen=True)
class Version:
    """A plan row without its data: enough to decide which version a night uses."""

    id: int
    recipient_id: int
    version: int
    effective_from: date | None


@dataclass
class Changes:
    """What one planning run did to the check rows."""

    created: int = 0
    updated: int = 0  # re-derived not-yet-open checks whose window or state changed
    kept: int = 0  # re-derived not-yet-open checks that already matched the plan
    removed: int = 0
    slots: list[str] = field(default_factory=list)  # created or updated

    @property
    def total(self) -> int:
        return self.created + self.updated + self.removed


def in_force(versions: Sequence[Version], night: date) -> Version | None:
    """The version a night uses: the newest whose effective_from has been reached."""
    best: Version | None = None
    for v in versions:
        if (v.effective_from is None or v.effective_from <= night) and (
                best is None or v.version > best.version):
            best = v
    return best


def parse_stored(data: dict[str, Any]) -> schedules.Plan:
    """A stored plan, parsed once per distinct content (versions are immutable)."""
    key = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    plan = _parsed.get(key)
    if plan is None:
        plan = schedules.parse_plan(data)
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()
        _parsed[key] = plan
    return plan


_STORED_KEYS = frozenset(schedules.plan_to_dict(schedules.Plan(check_times=())))
_PLAN_FIELDS = tuple(f.name for f in dataclasses.fields(schedules.Plan))
_DECODED = frozenset({
    "check_times", "timezone", "window_before_minutes", "window_after_minutes",
    "max_lookin_seconds", "follow_up", "consent", "pauses", "skip_nights", "night_boundary",
    "effective_from"})
#: decode_stored knows every field of today's Plan; if the domain grows, parse instead
DECODES = _DECODED == set(_PLAN_FIELDS) == _STORED_KEYS


def decode_stored(data: dict[str, Any]) -> schedules.Plan:
    """A stored plan for the bulk planner, without validating it a second time.

    Rows in ``plans`` are written only after ``schedules.parse_plan`` accepted them, in
    ``plan_to_dict``'s complete, normalised form, which ``parse_plan`` inverts exactly; so
    rebuilding that form directly gives the same, valid plan at a fraction of the cost
    (validation is most of the 10,000-recipient budget). Anything else (a partial dict,
    e.g. demo rows) goes through ``parse_stored``. The agent validates every plan it is
    sent in any case, so a bad row can never widen what a camera allows.
    """
    if not DECODES or data.keys() != _STORED_KEYS:
        return parse_stored(data)
    try:
        consent = data["consent"]
        follow = data["follow_up"]
        values = {
            "check_times": tuple(_check_time(c["at"], tuple(c["weekdays"]))
                                 for c in data["check_times"]),
            "timezone": data["timezone"],
            "window_before_minutes": data["window_before_minutes"],
            "window_after_minutes": data["window_after_minutes"],
            "max_lookin_seconds": data["max_lookin_seconds"],
            "follow_up": _follow_up(follow["interval_minutes"], follow["max_follow_ups"]),
            "consent": None if consent is None else schedules.Consent(
                date.fromisoformat(consent["given_on"]),
                None if consent["valid_until"] is None
                else date.fromisoformat(consent["valid_until"])),
            "pauses": tuple(schedules.Pause(date.fromisoformat(p["start"]),
                                            date.fromisoformat(p["end"]), p["reason"])
                            for p in data["pauses"]),
            "skip_nights": tuple(schedules.SkipNight(date.fromisoformat(k["night"]), k["reason"])
                                 for k in data["skip_nights"]),
            "night_boundary": _time(data["night_boundary"]),
            "effective_from": None if data["effective_from"] is None
            else date.fromisoformat(data["effective_from"]),
        }
    except (KeyError, TypeError, ValueError, AttributeError):
        return parse_stored(data)
    plan = object.__new__(schedules.Plan)
    for name in _PLAN_FIELDS:
        object.__setattr__(plan, name, values[name])
    return plan


@functools.lru_cache(maxsize=2048)
def _time(text: str) -> dt_time:
    return dt_time(int(text[:2]), int(text[3:5]))


# Plans share their parts (immutable values): build each once, allocate less.
@functools.lru_cache(maxsize=8192)
def _check_time(at: str, days: tuple[int, ...]) -> schedules.CheckTime:
    return schedules.CheckTime(_time(at), frozenset(days))


@functools.lru_cache(maxsize=1024)
def _follow_up(interval: int, most: int) -> schedules.FollowUpRule:
    return schedules.FollowUpRule(interval, most)


def forget_parsed() -> None:
    """Empty every cache of parsed or decoded plan parts (the benchmark measures cold)."""
    _parsed.clear()
    for cached in (_time, _check_time, _follow_up):
        cached.cache_clear()


async def versions_of(db: AsyncSession,
                      recipient_ids: Iterable[int] | None = None) -> dict[int, list[Version]]:
    """Every recipient's versions, newest first, without loading the plan data."""
    effective = Plan.data["effective_from"].as_string()
    query = select(Plan.id, Plan.recipient_id, Plan.version, effective)
    out: dict[int, list[Version]] = {}
    for ids in _chunks(recipient_ids):
        q = query if ids is None else query.where(Plan.recipient_id.in_(ids))
        for pid, rid, version, eff in (await db.execute(q)).all():
            out.setdefault(rid, []).append(Version(
                pid, rid, version, date.fromisoformat(eff) if eff else None))
    for vs in out.values():
        vs.sort(key=lambda v: v.version, reverse=True)
    return out


async def load_plans(db: AsyncSession, ids: Iterable[int], *,
                     bulk: bool = False) -> dict[int, schedules.Plan]:
    """Parsed plans by row id; an unreadable row is logged and left out, never fatal.

    ``bulk`` (the planner) decodes stored rows without validating them again.
    """
    decode = decode_stored if bulk else parse_stored
    out: dict[int, schedules.Plan] = {}
    for chunk in _chunks(sorted(set(ids))):
        assert chunk is not None
        rows = await db.execute(select(Plan.id, Plan.recipient_id, Plan.data)
                                .where(Plan.id.in_(chunk)))
        for pid, rid, data in rows:  # one JSON document alive at a time
            try:
                out[pid] = decode(data)
            except schedules.PlanError as exc:
                log.error("recipient %s: stored plan %s is invalid, not planned: %s",
                          rid, pid, exc)
    return out


def _chunks(ids: Iterable[int] | None) -> Iterable[list[int] | None]:
    if ids is None:
        yield None
        return
    items = list(ids)
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


async def current_plan(db: AsyncSession, recipient_id: int,
                       at: datetime | None = None) -> tuple[Plan, schedules.Plan] | None:
    """The version in force at ``at`` (default now), i.e. what the agent must hold now."""
    at = at or datetime.now(UTC)
    rows = (await db.execute(select(Plan).where(Plan.recipient_id == recipient_id)
                             .order_by(Plan.version.desc()))).scalars().all()
    for row in rows:
        plan = parse_stored(row.data)
        if plan.effective_from is None or plan.effective_from <= schedules.night_of(
                at, plan.timezone, plan.night_boundary):
            return row, plan
    return None


async def newest_plan(db: AsyncSession, recipient_id: int) -> tuple[Plan, schedules.Plan] | None:
    """The newest version, in force or not yet: what a care manager edits."""
    row = (await db.execute(select(Plan).where(Plan.recipient_id == recipient_id)
                            .order_by(Plan.version.desc()).limit(1))).scalar()
    return None if row is None else (row, parse_stored(row.data))


def tonight(plan: schedules.Plan, now: datetime) -> date:
    return schedules.night_of(now, plan.timezone, plan.night_boundary)


def nights_to_plan(plan: schedules.Plan, now: datetime) -> list[date]:
    first = tonight(plan, now)
    return [first, first + _DAY]


def slot(recipient_id: int, window: schedules.Window) -> str:
    return f"{recipient_id}:{window.night.isoformat()}:{window.local_time.strftime('%H:%M')}"


async def lock(db: AsyncSession) -> None:
    """Serialise planners on PostgreSQL (SQLite already has one writer via rt.write)."""
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


class Row(NamedTuple):
    """A check row as the planner derives it, in the bulk insert's column order."""

    slot: str
    recipient_id: int
    night: date
    due_at: datetime
    opens_at: datetime
    closes_at: datetime
    state: str
    follow_ups: int
    parent_id: int | None
    reason: str | None
    ended_at: datetime | None
    actor: str | None
    max_lookin_seconds: int


_Shape = tuple[tuple[schedules.CheckTime, ...], str, int, int, dt_time, date]


def windows_of(plan: schedules.Plan, night: date,
               memo: dict[_Shape, list[schedules.Window]]) -> list[schedules.Window]:
    """``schedules.expand(plan, night, include_skipped=True)``, shared between plans.

    A night's windows depend only on the check times, zone, window lengths and boundary;
    the skip reason (consent, pause, skip-night) is one per night. Recipients share times
    far more often than not, so the planner expands each shape once and re-stamps the
    reason (tests compare this with ``expand`` itself).
    """
    if plan.effective_from is not None and night < plan.effective_from:
        return []
    key = (plan.check_times, plan.timezone, plan.window_before_minutes,
           plan.window_after_minutes, plan.night_boundary, night)
    base = memo.get(key)
    if base is None:
        base = memo[key] = schedules.expand(plan, night, include_skipped=True)
        return base
    reason = skip_reason(plan, night)
    if not base or base[0].skip_reason == reason:
        return base
    return [dataclasses.replace(w, skip_reason=reason) for w in base]


def _desired(versions: dict[int, list[Version]], plans: dict[int, schedules.Plan],
             now: datetime, nights: int,
             memo: dict[_Shape, list[schedules.Window]] | None = None) -> dict[str, Row]:
    """Pure: slot -> row for every window still to come. Runs in a thread when large."""
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
            prefix = f"{rid}:{night.isoformat()}:"
            for w in windows_of(plan, night, memo):
                if w.closes <= now:
                    continue
                key_ = f"{prefix}{w.local_time.hour:02d}:{w.local_time.minute:02d}"
                if w.skip_reason is None:
                    out[key_] = Row(key_, rid, night, w.due, w.opens, w.closes, planned, 0,
                                    None, None, None, None, plan.max_lookin_seconds)
                else:
                    out[key_] = Row(key_, rid, night, w.due, w.opens, w.closes, skipped, 0,
                                    None, w.skip_reason, now, "planner",
                                    plan.max_lookin_seconds)
    return out


def _naive(value: datetime) -> datetime:
    """UTC without zone, as the UTCDateTime columns store it."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None)


def _sqlite_text(value: datetime | None) -> str | None:
    """SQLAlchemy's stored text form of a DateTime on SQLite (tests compare the two)."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # the usual case: one call, drop the "+00:00"
        return value.isoformat(" ", "microseconds")[:26]
    return _naive(value).isoformat(" ", "microseconds")


async def insert_checks(db: AsyncSession, rows: Sequence[Row]) -> None:
    """Bulk insert with the driver's fast path; same stored form as the ORM writes.

    The ORM's per-value type processing costs more than the database itself at 40,000
    rows, so SQLite gets pre-formatted parameters (SQLAlchemy's own text form, checked
    by tests) and PostgreSQL a COPY; any other database takes the ORM path.
    """
    if not rows:
        return
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        conn = await db.connection()
        raw = await conn.get_raw_connection()
        naive: dict[datetime | None, datetime | None] = {None: None}

        def n(value: datetime | None) -> datetime | None:
            if value not in naive:
                naive[value] = _naive(value)  # type: ignore[arg-type]
            return naive[value]
        records = [(r.slot, r.recipient_id, r.night, n(r.due_at), n(r.opens_at),
                    n(r.closes_at), r.state, r.follow_ups, r.parent_id, r.reason,
                    n(r.ended_at), r.actor, r.max_lookin_seconds) for r in rows]
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            Check.__tablename__, records=records, columns=list(Row._fields))
    elif dialect == "sqlite":
        texts: dict[Any, Any] = {None: None}  # rows share instants and nights: format once

        def t(value: Any) -> Any:
            found = texts.get(value, texts)
            if found is texts:
                found = texts[value] = _sqlite_text(value) if isinstance(value, datetime) \
                    else value.isoformat()
            return found
        params = [(r.slot, r.recipient_id, t(r.night), t(r.due_at), t(r.opens_at),
                   t(r.closes_at), r.state, r.follow_ups, r.parent_id, r.reason, t(r.ended_at),
                   r.actor, r.max_lookin_seconds) for r in rows]
        conn = await db.connection()
        await conn.exec_driver_sql(
            f"INSERT INTO {Check.__tablename__} ({', '.join(Row._fields)}) "
            f"VALUES ({', '.join('?' for _ in Row._fields)})", params)
    else:
        await db.execute(insert(Check), [r._asdict() for r in rows])


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
        return await _replace(db, ids, _desired(versions, plans, now, nights), horizon, now)

    changes = Changes()
    if not firsts:
        return changes
    query = select(Check.slot).where(Check.night >= horizon)
    existing: set[str] = set()
    for chunk in _chunks(ids):
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
            desired = await asyncio.to_thread(_desired, part, plans, now, nights, memo) \
                if big else _desired(part, plans, now, nights, memo)
            rows = [row for key, row in desired.items() if key not in existing]
            if pending is not None:
                await pending
            pending = asyncio.create_task(insert_checks(db, rows))
            changes.created += len(rows)
            changes.slots.extend(r.slot for r in rows)
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
    for chunk in _chunks(ids):
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
        elif _apply(check, new, now):
            changes.updated += 1
            changes.slots.append(check.slot)
        else:
            changes.kept += 1
    for chunk in _chunks(gone):
        assert chunk is not None
        await db.execute(delete(Check).where(Check.id.in_(chunk)))
    changes.removed = len(gone)
    new_rows = [row for key, row in desired.items() if key not in existing]
    await insert_checks(db, new_rows)
    changes.created = len(new_rows)
    changes.slots.extend(r.slot for r in new_rows)
    await db.flush()
    return changes


def _apply(check: Check, new: Row, now: datetime) -> bool:
    """Update a not-yet-open check to its re-derived window; whether anything changed."""
    fields = ("due_at", "opens_at", "closes_at", "state", "reason", "max_lookin_seconds")
    if all(getattr(check, f) == getattr(new, f) for f in fields):
        return False
    for f in fields:
        setattr(check, f, getattr(new, f))
    skipped = new.state == State.SKIPPED
    check.ended_at = now if skipped else None
    check.actor = "planner" if skipped else None
    return True


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
    """The planning job: every recipient's missing checks; returns how many were made."""
    return (await materialise(db, now)).created
