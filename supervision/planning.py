"""Materialise nights: plans -> check rows, idempotently (the slot is the key).

Runs at start, every planning interval, and on every plan change. It plans the current
night and the next one, so a check exists well before its window and a restart never
loses one. Only not-yet-open checks are ever replaced.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from supervision.checks import State
from supervision.models import Check, Plan, Recipient


async def current_plan(db: AsyncSession, recipient_id: int) -> tuple[Plan, schedules.Plan] | None:
    row = (await db.execute(select(Plan).where(Plan.recipient_id == recipient_id)
                            .order_by(Plan.version.desc()).limit(1))).scalar()
    if row is None:
        return None
    return row, schedules.parse_plan(row.data)


def nights_to_plan(plan: schedules.Plan, now: datetime) -> list[date]:
    tonight = schedules.night_of(now, plan.timezone, plan.night_boundary)
    return [tonight, tonight + timedelta(days=1)]


def slot(recipient_id: int, window: schedules.Window) -> str:
    return f"{recipient_id}:{window.night.isoformat()}:{window.local_time.strftime('%H:%M')}"


async def plan_recipient(db: AsyncSession, recipient_id: int, now: datetime | None = None,
                         *, replace: bool = False) -> int:
    """Create the missing checks of tonight and tomorrow night; returns how many were made.

    With replace=True (a plan changed), checks that have not opened yet are re-derived.
    """
    now = now or datetime.now(UTC)
    found = await current_plan(db, recipient_id)
    if found is None:
        return 0
    _row, plan = found
    if replace:
        await db.execute(delete(Check).where(
            Check.recipient_id == recipient_id, Check.parent_id.is_(None),
            Check.state.in_((State.PLANNED, State.SKIPPED)), Check.opens_at > now))
    existing = set((await db.execute(
        select(Check.slot).where(Check.recipient_id == recipient_id,
                                 Check.closes_at > now - timedelta(days=2)))).scalars())
    made = 0
    for night in nights_to_plan(plan, now):
        for window in schedules.expand(plan, night, include_skipped=True):
            key = slot(recipient_id, window)
            if key in existing or window.closes <= now:
                continue
            db.add(Check(
                slot=key, recipient_id=recipient_id, night=night, due_at=window.due,
                opens_at=window.opens, closes_at=window.closes,
                state=State.SKIPPED if window.skip_reason else State.PLANNED,
                reason=window.skip_reason, ended_at=now if window.skip_reason else None,
                actor="planner" if window.skip_reason else None,
                max_lookin_seconds=plan.max_lookin_seconds))
            existing.add(key)
            made += 1
    await db.flush()
    return made


async def plan_all(db: AsyncSession, now: datetime | None = None) -> int:
    ids = (await db.execute(select(Recipient.id))).scalars().all()
    return sum([await plan_recipient(db, rid, now) for rid in ids])
