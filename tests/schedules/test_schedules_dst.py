"""Named DST cases, the local->UTC rules and night naming around the boundary."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from schedules import CheckTime, Consent, Plan, expand, local_to_utc, night_bounds, night_of

STHLM = ZoneInfo("Europe/Stockholm")


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def three_checks(tz: str = "Europe/Stockholm") -> Plan:
    return Plan(
        check_times=tuple(CheckTime(time(h, m)) for h, m in ((2, 0), (2, 30), (3, 0))),
        timezone=tz,
        consent=Consent(date(2020, 1, 1)),
    )


def test_spring_forward_night_stockholm_all_three_coincide() -> None:
    # Night of Saturday 2026-03-28: at 02:00 CET clocks jump to 03:00 CEST (01:00 UTC).
    windows = expand(three_checks(), date(2026, 3, 28))
    assert [w.local_time for w in windows] == [time(2, 0), time(2, 30), time(3, 0)]
    assert [w.due for w in windows] == [utc(2026, 3, 29, 1, 0)] * 3
    assert all(w.opens == utc(2026, 3, 29, 0, 45) for w in windows)
    assert all(w.closes == utc(2026, 3, 29, 1, 15) for w in windows)


def test_fall_back_night_stockholm_first_occurrence() -> None:
    # Night of Saturday 2026-10-24: at 03:00 CEST clocks go back to 02:00 CET (01:00 UTC).
    windows = expand(three_checks(), date(2026, 10, 24))
    assert [w.due for w in windows] == [
        utc(2026, 10, 25, 0, 0),   # 02:00 CEST (first of two 02:00s)
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST (first of two 02:30s)
        utc(2026, 10, 25, 2, 0),   # 03:00 CET (occurs once)
    ]
    assert [(w.opens, w.closes) for w in windows] == [
        (utc(2026, 10, 24, 23, 45), utc(2026, 10, 25, 0, 15)),
        (utc(2026, 10, 25, 0, 15), utc(2026, 10, 25, 0, 45)),
        (utc(2026, 10, 25, 1, 45), utc(2026, 10, 25, 2, 15)),
    ]


def test_ordinary_nights_around_the_changes() -> None:
    before = expand(three_checks(), date(2026, 3, 27))
    assert [w.due for w in before] == [utc(2026, 3, 28, 1, 0), utc(2026, 3, 28, 1, 30),
                                       utc(2026, 3, 28, 2, 0)]
    after = expand(three_checks(), date(2026, 10, 25))
    assert [w.due for w in after] == [utc(2026, 10, 26, 1, 0), utc(2026, 10, 26, 1, 30),
                                      utc(2026, 10, 26, 2, 0)]


def test_new_york_gap_and_fold() -> None:
    ny = three_checks("America/New_York")
    # 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC).
    assert [w.due for w in expand(ny, date(2026, 3, 7))] == [utc(2026, 3, 8, 7, 0)] * 3
    # 2026-11-01 02:00 EDT -> 01:00 EST; 02:00..03:00 local occur once (EST).
    assert [w.due for w in expand(ny, date(2026, 10, 31))] == [
        utc(2026, 11, 1, 7, 0), utc(2026, 11, 1, 7, 30), utc(2026, 11, 1, 8, 0)]


def test_lord_howe_half_hour_shift() -> None:
    plan = Plan(
        check_times=(CheckTime(time(1, 45)), CheckTime(time(2, 15))),
        timezone="Australia/Lord_Howe",
        consent=Consent(date(2020, 1, 1)),
    )
    # 2026-10-04 02:00 (+10:30) -> 02:30 (+11): 02:15 moves to 02:30 +11 = 15:30 UTC.
    assert [w.due for w in expand(plan, date(2026, 10, 3))] == [
        utc(2026, 10, 3, 15, 15), utc(2026, 10, 3, 15, 30)]
    # 2026-04-05 02:00 (+11) -> 01:30 (+10:30): 01:45 occurs twice, first at +11.
    assert [w.due for w in expand(plan, date(2026, 4, 4))] == [
        utc(2026, 4, 4, 14, 45), utc(2026, 4, 4, 15, 45)]


@pytest.mark.parametrize(
    ("day", "at", "expected"),
    [
        (date(2026, 3, 29), time(2, 0), utc(2026, 3, 29, 1, 0)),
        (date(2026, 3, 29), time(2, 30), utc(2026, 3, 29, 1, 0)),
        (date(2026, 3, 29), time(2, 59), utc(2026, 3, 29, 1, 0)),
        (date(2026, 3, 29), time(1, 59), utc(2026, 3, 29, 0, 59)),
        (date(2026, 3, 29), time(3, 1), utc(2026, 3, 29, 1, 1)),
        (date(2026, 10, 25), time(2, 0), utc(2026, 10, 25, 0, 0)),
        (date(2026, 10, 25), time(2, 59), utc(2026, 10, 25, 0, 59)),
        (date(2026, 10, 25), time(3, 0), utc(2026, 10, 25, 2, 0)),
        (date(2026, 7, 1), time(12, 0), utc(2026, 7, 1, 10, 0)),
    ],
)
def test_local_to_utc_stockholm(day: date, at: time, expected: datetime) -> None:
    assert local_to_utc(day, at, STHLM) == expected


def test_local_to_utc_skipped_day_samoa() -> None:
    # Samoa skipped 2011-12-30 entirely; every time that day maps to its start.
    assert local_to_utc(date(2011, 12, 30), time(14, 0), ZoneInfo("Pacific/Apia")) == \
        utc(2011, 12, 30, 10, 0)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (utc(2026, 1, 15, 10, 59, 59), date(2026, 1, 14)),  # 11:59:59 CET
        (utc(2026, 1, 15, 11, 0), date(2026, 1, 15)),       # 12:00 CET: the new night
        (utc(2026, 1, 15, 23, 30), date(2026, 1, 15)),      # 00:30 next day local
        (utc(2026, 1, 16, 0, 30), date(2026, 1, 15)),       # 01:30 local
        (utc(2026, 7, 15, 9, 59), date(2026, 7, 14)),       # 11:59 CEST
        (utc(2026, 7, 15, 10, 0), date(2026, 7, 15)),       # 12:00 CEST
        (datetime(2026, 3, 29, 3, 0, tzinfo=STHLM), date(2026, 3, 28)),
    ],
)
def test_night_of_around_the_boundary(instant: datetime, expected: date) -> None:
    assert night_of(instant) == expected


def test_night_of_other_boundary_and_zone() -> None:
    ny = "America/New_York"
    assert night_of(utc(2026, 1, 15, 22, 59), ny, time(18, 0)) == date(2026, 1, 14)
    assert night_of(utc(2026, 1, 15, 23, 0), ny, time(18, 0)) == date(2026, 1, 15)


def test_night_of_rejects_naive() -> None:
    with pytest.raises(ValueError, match="aware"):
        night_of(datetime(2026, 1, 1, 12, 0))


def test_night_bounds_are_contiguous_and_dst_length() -> None:
    start, end = night_bounds(date(2026, 3, 28))
    assert (start, end) == (utc(2026, 3, 28, 11, 0), utc(2026, 3, 29, 10, 0))
    assert end - start == timedelta(hours=23)
    start2, end2 = night_bounds(date(2026, 10, 24))
    assert end2 - start2 == timedelta(hours=25)
    assert night_bounds(date(2026, 3, 29))[0] == end


def test_night_of_agrees_with_bounds_when_boundary_is_ambiguous() -> None:
    # Boundary 02:30 in Stockholm: repeated on 2026-10-25; the first occurrence counts.
    boundary = time(2, 30)
    start, _ = night_bounds(date(2026, 10, 25), "Europe/Stockholm", boundary)
    assert start == utc(2026, 10, 25, 0, 30)
    second_0220 = utc(2026, 10, 25, 1, 20)  # 02:20 CET, after the boundary instant
    assert night_of(second_0220, "Europe/Stockholm", boundary) == date(2026, 10, 25)
    assert night_of(start - timedelta(seconds=1), "Europe/Stockholm", boundary) == \
        date(2026, 10, 24)
