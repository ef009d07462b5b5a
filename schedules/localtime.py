"""Local wall-clock time to UTC, exactly and predictably across DST changes.

Check times and the night boundary are agreed as local wall-clock times, but windows
must be exact real-time intervals, so every local time is turned into one UTC instant
by these rules (the same for check times and for the night boundary):

* A local time that exists once maps to that instant.
* A local time that does not exist (the spring-forward gap) moves to the first valid
  instant after the gap, i.e. the transition instant itself. Example: Stockholm
  2026-03-29 02:30 does not exist and becomes 03:00 CEST = 01:00 UTC. Several times
  inside one gap (02:00 and 02:30 that night) therefore coincide with each other and
  with a time at the gap's end (03:00); none is dropped.
* A local time that occurs twice (fall back) is taken once, at its first occurrence
  (``fold=0``). Example: Stockholm 2026-10-25 02:30 becomes 02:30 CEST = 00:30 UTC.

Non-existence is detected by a round trip (local -> UTC -> local differs); the end of
the gap is found by bisecting on whole seconds between the two candidate instants
``fold=1`` and ``fold=0``, so any shift (Australia/Lord_Howe's 30 minutes, historic
odd offsets, whole skipped days) is handled through zoneinfo without special cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["UTC", "ClockChange", "clock_change", "local_to_utc", "utc_to_local", "wall_clock",
           "zone"]


# Keys that load on some machines but are not portable IANA zones: the host's own zone,
# tzdata build artefacts, and the leap-second ("right/") and duplicate ("posix/") trees.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
_NOT_ZONE_PREFIXES = ("posix/", "right/")


def zone(key: str) -> ZoneInfo:
    """The zone for an IANA key; raises ``ValueError`` for unknown or non-portable keys.

    A signed plan is interpreted on the server and on the camera device, so a key must
    mean the same zone on both.
    """
    if not key or key != key.strip() or key in _NOT_ZONES or key.startswith(_NOT_ZONE_PREFIXES):
        raise ValueError(f"unknown time zone {key!r}")
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {key!r}") from exc


def utc_to_local(instant: datetime, tz: ZoneInfo) -> datetime:
    """The local wall-clock reading (naive) of an aware instant."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def local_to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of local wall-clock ``day at``, by the module's DST rules."""
    wall = datetime.combine(day, at.replace(tzinfo=None, fold=0))
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if utc_to_local(first, tz) == wall:
        return first  # exists; for a repeated time fold=0 is the first occurrence
    # In a gap: fold=1 applies the post-transition offset (an instant before the
    # transition), fold=0 the pre-transition offset (an instant at or after it).
    # The transition instant is the first instant whose offset is no longer the
    # pre-transition one; bisect for it on whole seconds.
    before = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return _first_new_offset(min(before, first), max(before, first), tz)


def _first_new_offset(lo: datetime, hi: datetime, tz: ZoneInfo) -> datetime:
    """The first instant after ``lo`` whose UTC offset is not ``lo``'s, to the whole second
    (``hi`` must already have another offset)."""
    old_offset = lo.astimezone(tz).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + timedelta(seconds=(hi - lo).total_seconds() // 2)
        if mid.astimezone(tz).utcoffset() == old_offset:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True)
class ClockChange:
    """A change of the zone's UTC offset (DST), as a care manager needs to see it."""

    at: datetime  # UTC, to the whole second
    offset_before: timedelta
    offset_after: timedelta

    @property
    def minutes(self) -> int:
        """+60: clocks go forward (a short night); -60: back (a long one)."""
        return int((self.offset_after - self.offset_before).total_seconds() // 60)


def clock_change(start: datetime, end: datetime, tz: ZoneInfo) -> ClockChange | None:
    """The clock change between two aware instants, or None when both have one offset
    (an interval as short as a night holds at most one change)."""
    before, after = start.astimezone(tz).utcoffset(), end.astimezone(tz).utcoffset()
    if before is None or after is None or before == after:
        return None
    at = _first_new_offset(start.astimezone(UTC), end.astimezone(UTC), tz)
    return ClockChange(at.replace(microsecond=0), before, after)


def wall_clock(day: date, at: time, tz: ZoneInfo) -> Literal["gap", "repeated"] | None:
    """Whether local ``day at`` is in a spring-forward gap (it does not exist and moves to
    the gap's end), in a fall-back hour (it occurs twice; the first is used), or plain."""
    wall = datetime.combine(day, at.replace(tzinfo=None, fold=0))
    if utc_to_local(wall.replace(tzinfo=tz).astimezone(UTC), tz) != wall:
        return "gap"
    if wall.replace(tzinfo=tz, fold=0).utcoffset() != wall.replace(tzinfo=tz, fold=1).utcoffset():
        return "repeated"
    return None
