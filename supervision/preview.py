"""The coming nights of a recipient as they will be under the saved plan versions, or as
they would be under an unsaved draft: windows in local time and UTC, skipped nights with
their reason, and nights whose clocks change. The DST facts come from ``schedules``.
Consent on record is the only consent here too, as for the planner and the camera (it
replaces each plan's own ``consent`` field), so the nights it leaves uncovered, and every
night of a recipient without a record, show as skipped ``no-consent``."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from schedules.localtime import ClockChange, wall_clock, zone
from schedules.night import (
    local_day,
    next_clock_change_night,
    night_clock_change,
    skip_reason,
)
from supervision import plans, recipients
from supervision.errors import BadInput

MAX_NIGHTS = 62
PREVIEW_YEARS = 5
#: a draft's stand-in row id in the version list (no stored version has it)
DRAFT_ID = -1


class Skip(BaseModel):
    code: Literal["no-consent", "paused", "skip-night"]
    text: str = Field(description="the reason the care manager gave")


class DstChange(BaseModel):
    at: datetime = Field(description="UTC instant the clocks change")
    offset_before: str
    offset_after: str
    minutes: int = Field(description="+60: clocks forward (short night), -60: back")


class PreviewWindow(BaseModel):
    at: str = Field(description="the agreed local check time")
    due: datetime
    opens: datetime
    closes: datetime
    due_local: str
    opens_local: str
    closes_local: str
    dst: Literal["gap", "repeated"] | None = Field(
        description="gap: the time does not exist that night and moves to the end of the "
        "gap; repeated: it occurs twice and the first is used")
    skip: Skip | None


class Tick(BaseModel):
    at: datetime
    label: str


class PreviewNight(BaseModel):
    night: date
    weekday: int
    version: int | None = Field(description="plan version used; null = no plan in force")
    draft: bool = Field(description="the unsaved draft decides this night")
    starts_at: datetime
    ends_at: datetime
    hours: float
    dst_change: DstChange | None
    skip: Skip | None
    windows: list[PreviewWindow]
    ticks: list[Tick]


class Preview(BaseModel):
    recipient_id: int
    timezone: str
    tonight: date
    next_dst_night: date | None = Field(description="next night with a clock change, within a year")
    nights: list[PreviewNight]


def _offset(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _dst(change: ClockChange | None) -> DstChange | None:
    if change is None:
        return None
    return DstChange(at=change.at, offset_before=_offset(change.offset_before),
                     offset_after=_offset(change.offset_after), minutes=change.minutes)


def _skip(reason: schedules.Reason | None) -> Skip | None:
    if reason is None:
        return None
    return Skip(code=reason.code, text=reason.detail)  # type: ignore[arg-type]


def night_view(night: date, plan: schedules.Plan | None, version: int | None, draft: bool,
               tz: str, boundary: time) -> PreviewNight:
    if plan is not None:
        tz, boundary = plan.timezone, plan.night_boundary
    zi = zone(tz)
    start, end = schedules.night_bounds(night, tz, boundary)

    def local(instant: datetime) -> str:
        return instant.astimezone(zi).strftime("%H:%M")

    windows = [PreviewWindow(
        at=w.local_time.strftime("%H:%M"), due=w.due, opens=w.opens, closes=w.closes,
        due_local=local(w.due), opens_local=local(w.opens), closes_local=local(w.closes),
        dst=wall_clock(local_day(night, w.local_time, boundary), w.local_time, zi),
        skip=_skip(w.skip)) for w in (schedules.expand(plan, night, include_skipped=True)
                                      if plan else [])]
    ticks = []
    tick = start.replace(minute=0, second=0, microsecond=0)
    while tick <= end:
        if tick >= start:
            ticks.append(Tick(at=tick, label=local(tick)))
        tick += timedelta(hours=1)
    return PreviewNight(
        night=night, weekday=night.weekday(), version=version, draft=draft, starts_at=start,
        ends_at=end, hours=round((end - start).total_seconds() / 3600, 2),
        dst_change=_dst(night_clock_change(night, tz, boundary)),
        skip=_skip(skip_reason(plan, night)) if plan else None, windows=windows, ticks=ticks)


async def preview(db: AsyncSession, rid: int, nights: int, start: date | None,
                  draft: schedules.Plan | None = None) -> Preview:
    """The coming nights as they will be (with ``draft``: as they would be if it were saved)."""
    await recipients.exists(db, rid)
    now = datetime.now(UTC)
    versions = (await plans.versions_of(db, [rid])).get(rid, [])
    loaded = await plans.load_plans(db, [v.id for v in versions])
    newest_no = versions[0].version if versions else 0
    if draft is not None:
        versions = [plans.Version(DRAFT_ID, rid, newest_no + 1, draft.effective_from),
                    *versions]
        loaded[DRAFT_ID] = draft
    on_record = (await plans.recorded_consents(db, [rid])).get(rid)
    loaded = {vid: plans.with_consent(plan, on_record) for vid, plan in loaded.items()}
    newest = loaded.get(versions[0].id) if versions else None
    tz = newest.timezone if newest else schedules.DEFAULT_TZ
    boundary = newest.night_boundary if newest else time(12, 0)
    first = schedules.night_of(now, tz, boundary)
    start = start or first
    if abs((start - first).days) > PREVIEW_YEARS * 366:
        raise BadInput([{"loc": ["query", "start"], "type": "value_error",
                         "msg": f"must be within {PREVIEW_YEARS} years of tonight"}])
    out = []
    for k in range(nights):
        night = start + timedelta(days=k)
        chosen = plans.in_force(versions, night)
        plan = loaded.get(chosen.id) if chosen else None
        out.append(night_view(night, plan, chosen.version if chosen else None,
                              chosen is not None and chosen.id == DRAFT_ID, tz, boundary))
    return Preview(recipient_id=rid, timezone=tz, tonight=first,
                   next_dst_night=next_clock_change_night(start, tz, boundary), nights=out)
