"""The night roster: who is on which night's shift for which care unit.

A shift is a (night, unit) pair that has checks: the night is the checks' own night (its
evening date in the plan's zone, ``Check.night``), the unit the recipients' care unit. Night
staff take a shift themselves and leave it; shift leads, managers and admins add and remove
others. Every change is audited (``roster.joined``, ``roster.left``, with who made it). The
log review compares each look-in's time with the viewer's shift for that check's night and
the recipient's unit (``log_review``: ``not-on-roster``).

One row per (night, unit, person): joining again after leaving starts the time on the shift
afresh, so a look-in in the gap is still flagged (the audit entries keep every interval).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from supervision import audit
from supervision.errors import ServiceError
from supervision.models import Check, NightShift, Recipient, User
from supervision.rounds_board import AHEAD, KEPT
from supervision.runtime import Runtime

#: who may put others on a shift or take them off (besides staff who are shift leads)
MANAGING_ROLES = ("manager", "admin")


class Member(BaseModel):
    username: str
    name: str
    joined_at: datetime
    joined_by: str = Field(description="who put them on the shift (themselves, or a lead)")


class Shift(BaseModel):
    night: date = Field(description="the night's evening date in the plan's zone")
    unit: str = Field(description="the care unit (may be empty: recipients without one)")
    members: list[Member]
    mine: bool = Field(description="the asker is on this shift now")


class Person(BaseModel):
    username: str
    name: str


class Roster(BaseModel):
    shifts: list[Shift]
    may_manage: bool = Field(description="the asker may add and remove others")
    staff: list[Person] = Field(description="active night staff, for adding (only to those "
                                "who may manage)")


def may_manage(user: User) -> bool:
    return user.role in MANAGING_ROLES or (user.role == "staff" and user.shift_lead)


async def _board_shifts(db: AsyncSession, now: datetime) -> list[tuple[date, str]]:
    """The (night, unit) pairs of the checks the rounds board shows now."""
    rows = (await db.execute(
        select(Check.night, Recipient.unit).distinct()
        .join(Recipient, Recipient.id == Check.recipient_id)
        .where(Check.closes_at >= now - KEPT, Check.opens_at <= now + AHEAD,
               Recipient.archived_at.is_(None)))).all()
    return sorted((night, unit) for night, unit in rows)


async def _night_shifts(db: AsyncSession, night: date) -> list[tuple[date, str]]:
    units = (await db.execute(
        select(Recipient.unit).distinct().join(Check, Check.recipient_id == Recipient.id)
        .where(Check.night == night))).scalars()
    return sorted((night, unit) for unit in units)


async def view(rt: Runtime, asker: User, night: date | None = None) -> Roster:
    """The shifts of the board's checks (or of one night's), each with who is on it."""
    async with rt.read() as db:
        pairs = await (_night_shifts(db, night) if night else
                       _board_shifts(db, datetime.now(UTC)))
        nights = {n for n, _ in pairs}
        rows = (await db.execute(
            select(NightShift, User).join(User, User.id == NightShift.user_id)
            .where(NightShift.night.in_(nights), NightShift.left_at.is_(None))
            .order_by(NightShift.joined_at))).all() if nights else []
        manage = may_manage(asker)
        staff = (await db.execute(
            select(User.username, User.display_name)
            .where(User.role == "staff", User.active.is_(True))
            .order_by(User.display_name))).all() if manage else []
    members: dict[tuple[date, str], list[Member]] = {p: [] for p in pairs}
    mine: set[tuple[date, str]] = set()
    for shift, user in rows:
        key = (shift.night, shift.unit)
        if key not in members:
            continue
        members[key].append(Member(username=user.username, name=user.display_name,
                                   joined_at=shift.joined_at, joined_by=shift.joined_by))
        if user.id == asker.id:
            mine.add(key)
    return Roster(shifts=[Shift(night=n, unit=u, members=members[(n, u)], mine=(n, u) in mine)
                          for n, u in pairs],
                  may_manage=manage,
                  staff=[Person(username=u, name=name) for u, name in staff])


async def _target(db: AsyncSession, actor: User, username: str | None, *,
                  joining: bool) -> User:
    """Whom the change is for: the actor, or (for those who may manage) the person named;
    only active night staff join a roster (anyone on one may be taken off it)."""
    if username is None or username == actor.username:
        target: User | None = await db.get(User, actor.id)
    elif not may_manage(actor):
        raise ServiceError(403, "roster.error.not_lead")
    else:
        target = (await db.execute(select(User).where(User.username == username))).scalar()
        if target is None:
            raise ServiceError(404, "roster.error.no_person", username=username)
    if target is None or ((joining or target.id == actor.id) and (
            target.role != "staff" or not target.active)):
        raise ServiceError(409, "roster.error.not_staff")
    return target


async def _has_checks(db: AsyncSession, night: date, unit: str) -> bool:
    found = (await db.execute(
        select(Check.id).join(Recipient, Recipient.id == Check.recipient_id)
        .where(Check.night == night, Recipient.unit == unit).limit(1))).scalar()
    return found is not None


async def join(rt: Runtime, actor: User, night: date, unit: str,
               username: str | None = None) -> bool:
    """Put the actor (or, for a lead, the person named) on the shift; True if that changed
    anything (already on it: nothing to do, nothing audited)."""
    for attempt in (1, 2):
        try:
            return await _join(rt, actor, night, unit, username)
        except IntegrityError:  # the same person joined at the same moment: look again
            if attempt == 2:
                raise ServiceError(409, "roster.error.busy") from None
    raise AssertionError("unreachable")


async def _join(rt: Runtime, actor: User, night: date, unit: str, username: str | None) -> bool:
    now = datetime.now(UTC)
    async with rt.write() as db:
        target = await _target(db, actor, username, joining=True)
        if not await _has_checks(db, night, unit):
            raise ServiceError(404, "roster.error.no_shift")
        row = (await db.execute(select(NightShift).where(
            NightShift.night == night, NightShift.unit == unit,
            NightShift.user_id == target.id))).scalar()
        if row is None:
            db.add(NightShift(night=night, unit=unit, user_id=target.id, joined_at=now,
                              joined_by=actor.username))
            await db.flush()
        else:
            moved = await db.execute(
                update(NightShift).where(NightShift.id == row.id, NightShift.left_at.is_not(None))
                .values(joined_at=now, joined_by=actor.username, left_at=None))
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                return False
        await audit.append(db, actor.username, "roster.joined", f"user:{target.username}",
                           {"night": night.isoformat(), "unit": unit}, at=now)
    return True


async def leave(rt: Runtime, actor: User, night: date, unit: str,
                username: str | None = None) -> bool:
    """Take the actor (or, for a lead, the person named) off the shift; True if they were
    on it."""
    now = datetime.now(UTC)
    async with rt.write() as db:
        target = await _target(db, actor, username, joining=False)
        moved = await db.execute(
            update(NightShift).where(NightShift.night == night, NightShift.unit == unit,
                                     NightShift.user_id == target.id,
                                     NightShift.left_at.is_(None))
            .values(left_at=now))
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            return False
        await audit.append(db, actor.username, "roster.left", f"user:{target.username}",
                           {"night": night.isoformat(), "unit": unit}, at=now)
    return True
