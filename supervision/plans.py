"""The plan store: a recipient's plan versions, which one a night uses, and parsed plans.

A recipient's plan rows are immutable versions. A version is in force for the nights from
its ``effective_from`` (every night if it has none) until a newer version takes over, so a
change "from Monday" leaves the nights before Monday on the old rules. The newest version
whose ``effective_from`` has been reached wins.

Rows are written only after ``schedules.parse_plan`` accepted them, in ``plan_to_dict``'s
complete form. Parsing validates again (``parse_stored``, cached per distinct content in a
bounded LRU, since versions never change); the bulk planner instead decodes them without
validation (``load_plans(bulk=True)``, ``schedules.decode_trusted``), which is most of its
10,000-recipient budget. The agent validates every plan it is sent in any case, so a bad
row can never widen what a camera allows.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from schedules.codec import forget_decoded
from supervision.models import Plan, Recipient

__all__ = [
    "Version",
    "archived",
    "current_plan",
    "forget_parsed",
    "in_chunks",
    "in_force",
    "load_plans",
    "lock",
    "newest_plan",
    "parse_stored",
    "recorded_consent",
    "recorded_consents",
    "tonight",
    "versions_of",
    "with_consent",
]

log = logging.getLogger("supervision.plans")

_LOCK_KEY = 0x504C414E  # "PLAN": one planner at a time on PostgreSQL (job vs. a plan save)
_CHUNK = 5000  # ids per IN (...) list; far below every driver's parameter limit
_PARSED_MAX = 100_000  # distinct stored plans kept parsed, least recently used dropped


@dataclass(frozen=True)
class Version:
    """A plan row without its data: enough to decide which version a night uses."""

    id: int
    recipient_id: int
    version: int
    effective_from: date | None


def in_force(versions: Sequence[Version], night: date) -> Version | None:
    """The version a night uses: the newest whose effective_from has been reached."""
    best: Version | None = None
    for v in versions:
        if (v.effective_from is None or v.effective_from <= night) and (
                best is None or v.version > best.version):
            best = v
    return best


def tonight(plan: schedules.Plan, now: datetime) -> date:
    """The night ``now`` belongs to, in the plan's zone and by its night boundary."""
    return schedules.night_of(now, plan.timezone, plan.night_boundary)


def parse_stored(data: dict[str, Any]) -> schedules.Plan:
    """A stored plan, validated once per distinct content (versions are immutable)."""
    try:
        key = schedules.canonical(data)
    except (TypeError, ValueError):  # not plain JSON values (NaN...): parse, don't keep
        return schedules.parse_plan(data)
    return _parse_canonical(key)


@functools.lru_cache(maxsize=_PARSED_MAX)
def _parse_canonical(key: bytes) -> schedules.Plan:
    """The LRU behind ``parse_stored``; a ``PlanError`` is raised, never cached."""
    return schedules.parse_plan(json.loads(key))


def _decode_stored(data: dict[str, Any]) -> schedules.Plan:
    """The bulk path: the complete stored form unvalidated, anything else via the LRU."""
    return schedules.decode_trusted(data, fallback=parse_stored)


def forget_parsed() -> None:
    """Empty every cache of parsed or decoded plan parts (the benchmark measures cold)."""
    _parse_canonical.cache_clear()
    forget_decoded()


def in_chunks(ids: Iterable[int] | None) -> Iterable[list[int] | None]:
    """``ids`` in parts small enough for one ``IN (...)`` list; ``None`` (all) as itself."""
    if ids is None:
        yield None
        return
    items = list(ids)
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


async def versions_of(db: AsyncSession,
                      recipient_ids: Iterable[int] | None = None) -> dict[int, list[Version]]:
    """Every recipient's versions, newest first, without loading the plan data."""
    effective = Plan.data["effective_from"].as_string()
    query = select(Plan.id, Plan.recipient_id, Plan.version, effective)
    out: dict[int, list[Version]] = {}
    for ids in in_chunks(recipient_ids):
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
    decode = _decode_stored if bulk else parse_stored
    out: dict[int, schedules.Plan] = {}
    for chunk in in_chunks(sorted(set(ids))):
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


async def current_plan(db: AsyncSession, recipient_id: int,
                       at: datetime | None = None) -> tuple[Plan, schedules.Plan] | None:
    """The version in force at ``at`` (default now), i.e. what the agent must hold now."""
    at = at or datetime.now(UTC)
    rows = (await db.execute(select(Plan).where(Plan.recipient_id == recipient_id)
                             .order_by(Plan.version.desc()))).scalars().all()
    recorded = await recorded_consents(db, [recipient_id])
    for row in rows:
        plan = parse_stored(row.data)
        if plan.effective_from is None or plan.effective_from <= tonight(plan, at):
            # what the agent is sent and the service allows: the consent on record only
            return row, with_consent(plan, recorded.get(recipient_id))
    return None


async def newest_plan(db: AsyncSession, recipient_id: int) -> tuple[Plan, schedules.Plan] | None:
    """The newest version, in force or not yet: what a care manager edits."""
    row = (await db.execute(select(Plan).where(Plan.recipient_id == recipient_id)
                            .order_by(Plan.version.desc()).limit(1))).scalar()
    return None if row is None else (row, parse_stored(row.data))


async def recorded_consents(db: AsyncSession, recipient_ids: Iterable[int] | None = None
                            ) -> dict[int, schedules.Consent]:
    """The consent on record (``supervision.consent``) of each recipient whose records
    give a complete one. It replaces the plan's own ``consent`` field wherever a plan is
    applied or sent; a recipient not in the answer has no consent (no record, or one
    incomplete, withdrawn or lapsed), whatever their plan says: the plan's field is never
    a source of consent (``with_consent(plan, recorded.get(rid))``)."""
    query = select(Recipient.id, Recipient.consent_from, Recipient.consent_until).where(
        Recipient.consent_recorded.is_(True), Recipient.consent_from.is_not(None))
    out: dict[int, schedules.Consent] = {}
    for ids in in_chunks(recipient_ids):
        q = query if ids is None else query.where(Recipient.id.in_(ids))
        for rid, given, until in (await db.execute(q)).all():
            if given is not None:  # the query's own condition
                out[rid] = schedules.Consent(given, until)
    return out


def recorded_consent(recipient: Recipient) -> schedules.Consent | None:
    """The consent ``recorded_consents`` gives for one recipient row already loaded."""
    if not recipient.consent_recorded or recipient.consent_from is None:
        return None
    return schedules.Consent(recipient.consent_from, recipient.consent_until)


def with_consent(plan: schedules.Plan, consent: schedules.Consent | None) -> schedules.Plan:
    """The plan with the consent the records give (None: none on record)."""
    return plan.with_consent(consent)


async def archived(db: AsyncSession) -> set[int]:
    """Archived recipients: no plan of theirs is applied any more."""
    return set((await db.execute(select(Recipient.id).where(
        Recipient.archived_at.is_not(None)))).scalars())


async def lock(db: AsyncSession) -> None:
    """Serialise planners on PostgreSQL (SQLite already has one writer via rt.write)."""
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
