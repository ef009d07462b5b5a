"""How long an allowed look-in may last: ``Decision.until`` and ``lookin_until``, the one rule
the agent stops by and the service caps its tickets by (issue 9: the window end is a hard
limit)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from schedules import (
    CheckTime,
    Consent,
    FollowUpRule,
    Plan,
    SkipNight,
    authorise,
    expand,
    lookin_until,
)
from tests.schedules.strategies import valid_plans


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


# 23:00 Stockholm (CET) is 22:00 UTC: the window is 21:45-22:15 UTC.
PLAN = Plan(check_times=(CheckTime(time(23, 0)),), consent=Consent(date(2026, 1, 1)),
            follow_up=FollowUpRule(interval_minutes=10, max_follow_ups=2),
            skip_nights=(SkipNight(date(2026, 1, 20), "away"),))
CLOSES = utc(2026, 1, 12, 22, 15)


def test_an_allowed_look_in_lasts_at_most_to_its_windows_close() -> None:
    for instant in (utc(2026, 1, 12, 21, 45), utc(2026, 1, 12, 22, 0),
                    CLOSES - timedelta(seconds=1)):
        decision = authorise(PLAN, instant)
        assert decision.allowed and decision.until == CLOSES, instant
        assert decision.window is not None
        assert lookin_until(PLAN, decision.window) == CLOSES


def test_a_follow_up_lasts_to_the_allowance_authorise_gives_it() -> None:
    # n-th follow-up: closes + n * (interval 10 + after 15) minutes
    for n, end in ((1, CLOSES + timedelta(minutes=25)), (2, CLOSES + timedelta(minutes=50))):
        for instant in (utc(2026, 1, 12, 22, 0), CLOSES, end - timedelta(seconds=1)):
            decision = authorise(PLAN, instant, n)
            assert decision.allowed and decision.until == end, (n, instant)
            assert decision.window is not None
            assert lookin_until(PLAN, decision.window, n) == end
        assert not authorise(PLAN, end, n).allowed, "the allowance ends exactly there"


def test_a_refusal_has_no_end() -> None:
    assert authorise(PLAN, CLOSES).until is None  # outside-window
    assert authorise(PLAN, utc(2026, 1, 20, 22, 0)).until is None  # skip-night
    assert authorise(PLAN, utc(2026, 1, 12, 22, 0), 3).until is None  # follow-up-limit


def test_touching_windows_give_the_later_end_where_both_hold_the_instant() -> None:
    """Two checks 30 min apart with 15/15 windows touch; a follow-up of the first reaches
    into the second, so at such an instant both windows allow it, up to the later end."""
    plan = Plan(check_times=(CheckTime(time(23, 0)), CheckTime(time(23, 30))),
                consent=Consent(date(2026, 1, 1)),
                follow_up=FollowUpRule(interval_minutes=15, max_follow_ups=1))
    first, second = expand(plan, date(2026, 1, 12))
    assert first.closes == second.opens
    at = second.opens + timedelta(minutes=5)
    decision = authorise(plan, at, 1)
    assert decision.allowed and decision.window == first
    assert decision.until == lookin_until(plan, second, 1) == second.closes + timedelta(
        minutes=30)
    # without a follow-up the instant is only in the second window
    assert authorise(plan, at).until == second.closes


@settings(max_examples=150, deadline=None)
@given(plan=valid_plans(), offset=st.integers(-300, 600), follow_ups=st.integers(0, 5),
       night=st.dates(date(2024, 1, 1), date(2030, 12, 31)))
def test_until_is_where_authorise_stops_allowing(plan: Plan, offset: int, follow_ups: int,
                                                 night: date) -> None:
    """Property: allowed at t means allowed up to (not at or after) ``until``, at whole
    seconds, for every plan; so the device never cuts a look-in the plan allows, and
    never lets one run past what the plan allows."""
    windows = expand(plan, night)
    if not windows:
        return
    instant = windows[0].opens + timedelta(seconds=offset)
    decision = authorise(plan, instant, follow_ups)
    if not decision.allowed:
        assert decision.until is None
        return
    assert decision.until is not None and decision.until > instant
    assert authorise(plan, decision.until - timedelta(seconds=1), follow_ups).allowed
    later = authorise(plan, decision.until, follow_ups)
    # at the end the look-in's windows are over; what may allow that instant is a window
    # that opens there (a new check), never the same one
    assert not later.allowed or later.window not in {
        w for w in expand(plan, night) if w.opens <= instant}
