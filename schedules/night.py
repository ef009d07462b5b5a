"""Nights and the concrete check windows of a night.

A night is named by the evening it starts (a 01:00 check belongs to the night before) and
runs from the local ``night_boundary`` (default 12:00) on its evening date to the same
local time on the next day. A check time ``at`` falls on the evening date if
``at >= night_boundary``, else on the next day; it applies when the evening date's
weekday is in its ``weekdays``.

DST (rules in ``schedules.localtime``): a local time in a spring-forward gap moves to the
first valid instant after the gap (Stockholm 2026-03-29 02:00, 02:30 and 03:00 all
become 01:00 UTC: those windows coincide that night, and all are kept); a repeated local
time in the fall-back hour is taken once, at its first occurrence. The night's boundary
instants are resolved the same way. Windows are exact real-time intervals around the UTC
due instant: ``opens = due - before``, ``closes = due + after``. Each lies within its
night's boundary instants unless the boundary itself is within a window's length of a
DST change (a boundary at night-time; the default noon boundary is far from any change).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from schedules.localtime import ClockChange, clock_change, local_to_utc, utc_to_local, zone
from schedules.plan import DEFAULT_TZ, Plan, minute_of_night, validate_consent_active
from schedules.reason import Reason

__all__ = ["Window", "expand", "local_day", "next_clock_change_night", "night_bounds",
           "night_clock_change", "night_of"]

_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Window:
    """One check of one night: when it is due and when a look-in may happen (UTC)."""

    night: date
    local_time: time
    due: datetime
    opens: datetime
    closes: datetime
    skip: Reason | None = None  # None = active; codes no-consent, paused, skip-night

    @property
    def active(self) -> bool:
        """Whether a look-in may happen in this window."""
        return self.skip is None

    @property
    def skip_reason(self) -> str | None:
        """The skip as one line ("paused: hospital"), for logs and tests."""
        return None if self.skip is None else str(self.skip)


def night_bounds(night: date, tz: str = DEFAULT_TZ,
                 boundary: time = time(12, 0)) -> tuple[datetime, datetime]:
    """The UTC instants where the night starts and ends (the next night's start)."""
    zi = zone(tz)
    return local_to_utc(night, boundary, zi), local_to_utc(night + _DAY, boundary, zi)


def night_clock_change(night: date, tz: str = DEFAULT_TZ,
                       boundary: time = time(12, 0)) -> ClockChange | None:
    """The night's clock change (DST), if the clocks change during it."""
    start, end = night_bounds(night, tz, boundary)
    return clock_change(start, end, zone(tz))


def next_clock_change_night(first: date, tz: str = DEFAULT_TZ, boundary: time = time(12, 0),
                            within_days: int = 366) -> date | None:
    """The first night from ``first`` on whose clocks change, within ``within_days``."""
    zi = zone(tz)
    for k in range(within_days):
        night = first + timedelta(days=k)
        start, end = night_bounds(night, tz, boundary)
        if start.astimezone(zi).utcoffset() != end.astimezone(zi).utcoffset():
            return night
    return None


def local_day(night: date, at: time, boundary: time) -> date:
    """The calendar day a check time of a night falls on (after midnight: the next day)."""
    return night if at >= boundary else night + _DAY


def night_of(instant: datetime, tz: str = DEFAULT_TZ, boundary: time = time(12, 0)) -> date:
    """The evening date of the night containing an aware instant.

    The local date if the local time is at or after the boundary, else the day before;
    decided against the resolved boundary instant, so this agrees with ``night_bounds``
    even when the boundary itself falls in a DST gap or repeated hour.
    """
    zi = zone(tz)
    local_day = utc_to_local(instant, zi).date()
    start = local_to_utc(local_day, boundary, zi)
    return local_day if instant >= start else local_day - _DAY


def skip_reason(plan: Plan, night: date) -> Reason | None:
    """Why the plan's checks do not run on a night, or None. Consent is decided first."""
    if not validate_consent_active(plan, night):
        return NO_CONSENT
    for pause in plan.pauses:
        if pause.start <= night <= pause.end:
            return Reason("paused", pause.reason)
    for skip in plan.skip_nights:
        if skip.night == night:
            return Reason("skip-night", skip.reason)
    return None


NO_CONSENT = Reason("no-consent")


def expand(plan: Plan, night: date, *, include_skipped: bool = False) -> list[Window]:
    """The night's concrete windows, sorted by due instant.

    Skipped windows (no valid consent, pause, skip-night) are returned only with
    ``include_skipped``, carrying their ``skip``. Nights before
    ``effective_from`` have no windows at all.
    """
    if plan.effective_from is not None and night < plan.effective_from:
        return []
    reason = skip_reason(plan, night)
    if reason is not None and not include_skipped:
        return []
    zi = zone(plan.timezone)
    before = timedelta(minutes=plan.window_before_minutes)
    after = timedelta(minutes=plan.window_after_minutes)
    boundary = plan.night_boundary
    keyed: list[tuple[datetime, int, Window]] = []
    for check in plan.check_times:
        if night.weekday() not in check.weekdays:
            continue
        due = local_to_utc(local_day(night, check.at, boundary), check.at, zi)
        window = Window(night, check.at, due, due - before, due + after, reason)
        keyed.append((due, minute_of_night(check.at, boundary), window))
    keyed.sort(key=lambda item: item[:2])
    return [window for _, _, window in keyed]


def windows_near(plan: Plan, instant: datetime) -> list[Window]:
    """All windows (skipped included) of the nights that can reach ``instant``.

    The instant's night and its neighbours: windows sit near boundaries, and follow-up
    extensions (at most 5 * 240 min) can reach into the next night.
    """
    night = night_of(instant, plan.timezone, plan.night_boundary)
    windows: list[Window] = []
    for offset in (-2, -1, 0, 1):
        windows.extend(expand(plan, night + offset * _DAY, include_skipped=True))
    return windows

