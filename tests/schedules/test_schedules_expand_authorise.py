"""expand: weekdays, skips and their reasons; authorise: windows, follow-ups, reasons."""

from datetime import UTC, date, datetime, time, timedelta

import pytest

from schedules import (
    CheckTime,
    Consent,
    Decision,
    FollowUpRule,
    Pause,
    Plan,
    SkipNight,
    authorise,
    expand,
    validate_consent_active,
)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


PLAN = Plan(
    check_times=(
        CheckTime(time(22, 30)),
        CheckTime(time(1, 0), frozenset({4, 5})),  # Friday and Saturday nights only
    ),
    consent=Consent(date(2026, 1, 10), date(2026, 6, 30)),
    pauses=(Pause(date(2026, 2, 1), date(2026, 2, 5), "hospital"),),
    skip_nights=(SkipNight(date(2026, 2, 10), "family visiting"),),
    effective_from=date(2026, 1, 5),
)


def test_weekdays_are_those_of_the_evening() -> None:
    friday = date(2026, 1, 16)
    windows = expand(PLAN, friday)
    assert [w.local_time for w in windows] == [time(22, 30), time(1, 0)]
    assert windows[1].due == utc(2026, 1, 17, 0, 0)  # Saturday 01:00 CET, Friday's night
    assert all(w.night == friday for w in windows)
    assert [w.local_time for w in expand(PLAN, date(2026, 1, 18))] == [time(22, 30)]


def test_window_edges() -> None:
    w = expand(PLAN, date(2026, 1, 12))[0]
    assert (w.due, w.opens, w.closes) == (
        utc(2026, 1, 12, 21, 30), utc(2026, 1, 12, 21, 15), utc(2026, 1, 12, 21, 45))
    assert w.skip_reason is None and w.active


@pytest.mark.parametrize(
    ("night", "reason"),
    [
        (date(2026, 1, 9), "no-consent"),        # before given_on
        (date(2026, 7, 1), "no-consent"),        # after valid_until
        (date(2026, 2, 1), "paused: hospital"),
        (date(2026, 2, 5), "paused: hospital"),  # inclusive end
        (date(2026, 2, 10), "skip-night: family visiting"),
    ],
)
def test_skipped_nights(night: date, reason: str) -> None:
    assert expand(PLAN, night) == []
    skipped = expand(PLAN, night, include_skipped=True)
    assert skipped and all(w.skip_reason == reason for w in skipped)


def test_consent_bounds_are_inclusive() -> None:
    assert validate_consent_active(PLAN, date(2026, 1, 10))
    assert validate_consent_active(PLAN, date(2026, 6, 30))
    assert not validate_consent_active(PLAN, date(2026, 7, 1))
    assert not validate_consent_active(Plan(check_times=()), date(2026, 1, 1))
    assert validate_consent_active(Plan(check_times=(), consent=Consent(date(2020, 1, 1))),
                                   date(2040, 1, 1))


def test_consent_is_reported_before_pause() -> None:
    plan = Plan(check_times=(CheckTime(time(23, 0)),),
                pauses=(Pause(date(2026, 2, 1), date(2026, 2, 5), "hospital"),))
    assert expand(plan, date(2026, 2, 2), include_skipped=True)[0].skip_reason == "no-consent"


def test_before_effective_from_there_is_nothing() -> None:
    plan = Plan(check_times=(CheckTime(time(23, 0)),), consent=Consent(date(2026, 1, 1)),
                effective_from=date(2026, 1, 20))
    assert expand(plan, date(2026, 1, 19), include_skipped=True) == []
    assert len(expand(plan, date(2026, 1, 20))) == 1
    decision = authorise(plan, utc(2026, 1, 19, 22, 0))
    assert not decision.allowed and decision.code == "outside-window"
    assert "effective_from 2026-01-20" in decision.reason


def test_authorise_inside_and_at_the_edges() -> None:
    ok = authorise(PLAN, utc(2026, 1, 12, 21, 30))
    window = expand(PLAN, date(2026, 1, 12))[0]
    assert ok == Decision(True, "ok", window, until=window.closes)
    assert authorise(PLAN, utc(2026, 1, 12, 21, 15)).allowed  # opens: inclusive
    assert authorise(PLAN, utc(2026, 1, 12, 21, 44, 59)).allowed
    closed = authorise(PLAN, utc(2026, 1, 12, 21, 45))  # closes: exclusive
    assert not closed.allowed and closed.code == "outside-window" and closed.window is None
    assert not authorise(PLAN, utc(2026, 1, 12, 21, 14, 59)).allowed


def test_authorise_accepts_any_aware_timezone() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 1, 12, 22, 40, tzinfo=ZoneInfo("Europe/Stockholm"))
    assert authorise(PLAN, local).allowed


def test_authorise_reasons_for_skipped_windows() -> None:
    paused = authorise(PLAN, utc(2026, 2, 2, 21, 30))
    assert (paused.allowed, paused.reason) == (False, "paused: hospital")
    assert paused.window is not None and paused.window.night == date(2026, 2, 2)
    skip = authorise(PLAN, utc(2026, 2, 10, 21, 30))
    assert (skip.code, skip.reason) == ("skip-night", "skip-night: family visiting")
    nc = authorise(PLAN, utc(2026, 7, 1, 20, 30))
    assert nc.code == "no-consent" and not nc.allowed
    assert authorise(PLAN, utc(2026, 2, 2, 15, 0)).code == "outside-window"


def test_follow_up_allowance() -> None:
    plan = Plan(check_times=(CheckTime(time(23, 0)),), consent=Consent(date(2026, 1, 1)),
                follow_up=FollowUpRule(interval_minutes=15, max_follow_ups=2))
    closes = utc(2026, 1, 12, 22, 15)
    assert not authorise(plan, closes).allowed
    # one follow-up: + (15 + 15) minutes after closing
    assert authorise(plan, closes, 1).allowed
    assert authorise(plan, closes + timedelta(minutes=29, seconds=59), 1).allowed
    assert not authorise(plan, closes + timedelta(minutes=30), 1).allowed
    assert authorise(plan, closes + timedelta(minutes=59), 2).allowed
    assert not authorise(plan, closes + timedelta(minutes=60), 2).allowed
    assert authorise(plan, utc(2026, 1, 12, 21, 50), 2).allowed  # the window itself too
    limit = authorise(plan, closes, 3)
    assert not limit.allowed and limit.code == "follow-up-limit"
    in_window = authorise(plan, utc(2026, 1, 12, 22, 0), 3)
    assert in_window.code == "follow-up-limit" and in_window.window is not None


def test_follow_up_extension_reaches_past_the_night_boundary() -> None:
    plan = Plan(check_times=(CheckTime(time(11, 30)),), consent=Consent(date(2026, 1, 1)),
                follow_up=FollowUpRule(interval_minutes=120, max_follow_ups=5))
    # Night of 2026-01-12: due 2026-01-13 11:30 CET, closes 10:45 UTC; 5 * 135 min more.
    late = utc(2026, 1, 13, 10, 45) + timedelta(minutes=5 * 135 - 1)
    decision = authorise(plan, late, 5)
    assert decision.allowed and decision.window is not None
    assert decision.window.night == date(2026, 1, 12)


def test_no_follow_ups_allowed() -> None:
    plan = Plan(check_times=(CheckTime(time(23, 0)),), consent=Consent(date(2026, 1, 1)),
                follow_up=FollowUpRule(max_follow_ups=0))
    assert authorise(plan, utc(2026, 1, 12, 22, 0)).allowed
    assert authorise(plan, utc(2026, 1, 12, 22, 0), 1).code == "follow-up-limit"


def test_authorise_windows_near_the_boundary_from_both_sides() -> None:
    plan = Plan(check_times=(CheckTime(time(11, 45)), CheckTime(time(12, 15))),
                consent=Consent(date(2026, 1, 1)))
    before = authorise(plan, utc(2026, 1, 13, 10, 59))  # 11:59 CET: night 01-12
    after = authorise(plan, utc(2026, 1, 13, 11, 1))    # 12:01 CET: night 01-13
    assert before.allowed and before.window is not None
    assert before.window.night == date(2026, 1, 12)
    assert after.allowed and after.window is not None
    assert after.window.night == date(2026, 1, 13)


def test_authorise_on_the_spring_forward_night() -> None:
    plan = Plan(check_times=tuple(CheckTime(time(h, m)) for h, m in ((2, 0), (2, 30), (3, 0))),
                consent=Consent(date(2026, 1, 1)))
    assert authorise(plan, utc(2026, 3, 29, 0, 45)).allowed
    assert not authorise(plan, utc(2026, 3, 29, 1, 15)).allowed
    assert not authorise(plan, utc(2026, 3, 29, 0, 30)).allowed


def test_authorise_rejects_caller_bugs() -> None:
    with pytest.raises(ValueError, match="aware"):
        authorise(PLAN, datetime(2026, 1, 12, 21, 30))
    with pytest.raises(ValueError, match="follow_ups_so_far"):
        authorise(PLAN, utc(2026, 1, 12, 21, 30), -1)


def test_empty_plan_never_allows() -> None:
    plan = Plan(check_times=(), consent=Consent(date(2026, 1, 1)))
    assert expand(plan, date(2026, 1, 12)) == []
    assert authorise(plan, utc(2026, 1, 12, 21, 30)).code == "outside-window"
