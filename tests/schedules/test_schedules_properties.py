"""Property tests over random valid plans and nights 2020-2040 in three zones.

Nights are drawn uniformly and, half the time, from the nights with a DST change.
Night boundaries are drawn from 06:00-21:59, at least three hours from these zones' DST
changes (about 01:00-03:00 local), the range in which windows provably stay within
their night (see ``schedules.night``).
"""

import itertools
import random
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from schedules import (
    CheckTime,
    Consent,
    FollowUpRule,
    Pause,
    Plan,
    SkipNight,
    Window,
    authorise,
    canonical_json,
    expand,
    night_bounds,
    night_of,
    parse_plan,
    plan_to_dict,
)

ZONES = ("Europe/Stockholm", "America/New_York", "Australia/Lord_Howe")
FIRST, LAST = date(2020, 1, 1), date(2040, 12, 31)
DAY = timedelta(days=1)
FAST = settings(max_examples=200, deadline=None)


@cache
def dst_nights(tz: str) -> tuple[date, ...]:
    """Nights (evening dates) whose noon-to-noon span contains a UTC offset change."""
    zi = ZoneInfo(tz)
    nights = []
    day = FIRST
    while day <= LAST:
        if datetime.combine(day, time(12), zi).utcoffset() != \
                datetime.combine(day + DAY, time(12), zi).utcoffset():
            nights.append(day)
        day += DAY
    return tuple(nights)


def keep_fitting(minutes: list[int], boundary: time, before: int, after: int) -> list[time]:
    """Greedily keep wall-clock minutes whose windows fit the night without overlapping."""
    start = boundary.hour * 60 + boundary.minute
    kept: list[int] = []
    for pos in sorted({(m - start) % 1440 for m in minutes}):
        if pos - before < 0 or pos + after > 1440:
            continue
        if kept and pos - before < kept[-1] + after:
            continue
        kept.append(pos)
    return [time(((start + p) % 1440) // 60, (start + p) % 60) for p in kept]


@st.composite
def plans_and_nights(draw: st.DrawFn) -> tuple[Plan, date]:
    tz = draw(st.sampled_from(ZONES))
    night = draw(st.one_of(st.dates(FIRST, LAST), st.sampled_from(dst_nights(tz))))
    boundary = time(draw(st.integers(6, 21)), draw(st.integers(0, 59)))
    before = draw(st.one_of(st.just(15), st.integers(0, 120)))
    after = draw(st.one_of(st.just(15), st.integers(1, 120)))
    # Bias check times towards the small hours, where the DST changes are.
    minutes = draw(st.lists(st.one_of(st.integers(0, 1439), st.integers(45, 225)), max_size=8))
    weekdays = st.one_of(st.just(frozenset(range(7))),
                         st.frozensets(st.integers(0, 6), min_size=1))
    checks = tuple(CheckTime(at, draw(weekdays))
                   for at in keep_fitting(minutes, boundary, before, after))
    near = st.integers(-3, 3).map(lambda d: night + d * DAY)
    consent = draw(st.one_of(
        st.just(Consent(FIRST)),
        st.none(),
        st.builds(lambda g, n: Consent(g, None if n is None else g + n * DAY),
                  near, st.one_of(st.none(), st.integers(0, 4))),
    ))
    pauses = draw(st.lists(st.builds(lambda s, n: Pause(s, s + n * DAY, "hospital"),
                                     near, st.integers(0, 3)), max_size=2))
    skips = draw(st.lists(st.builds(lambda n: SkipNight(n, "visit"), near), max_size=2))
    plan = Plan(
        check_times=checks,
        timezone=tz,
        window_before_minutes=before,
        window_after_minutes=after,
        max_lookin_seconds=draw(st.integers(10, 120)),
        follow_up=FollowUpRule(draw(st.integers(1, 120)), draw(st.integers(0, 5))),
        consent=consent,
        pauses=tuple(pauses),
        skip_nights=tuple(skips),
        night_boundary=boundary,
        effective_from=draw(st.one_of(st.none(), near)),
    )
    return plan, night


def expected_skip(plan: Plan, night: date) -> str | None:
    c = plan.consent
    if c is None or night < c.given_on or (c.valid_until is not None and night > c.valid_until):
        return "no-consent"
    for p in plan.pauses:
        if p.start <= night <= p.end:
            return f"paused: {p.reason}"
    for s in plan.skip_nights:
        if s.night == night:
            return f"skip-night: {s.reason}"
    return None


def oracle_due(day: date, at: time, zi: ZoneInfo) -> datetime | None:
    """The earliest instant showing wall time ``day at``, or None if it does not exist."""
    wall = datetime.combine(day, at)
    probe = wall.replace(tzinfo=UTC)
    offsets = {(probe + k * timedelta(hours=6)).astimezone(zi).utcoffset() for k in range(-4, 5)}
    hits = []
    for off in offsets:
        assert off is not None
        u = (wall - off).replace(tzinfo=UTC)
        if u.astimezone(zi).replace(tzinfo=None) == wall:
            hits.append(u)
    return min(hits) if hits else None


def forward_transition(plan: Plan, night: date) -> tuple[datetime, timedelta] | None:
    """The instant and size of a spring-forward change inside the night, if any."""
    zi = ZoneInfo(plan.timezone)
    lo, hi = night_bounds(night, plan.timezone, plan.night_boundary)
    off_lo, off_hi = lo.astimezone(zi).utcoffset(), hi.astimezone(zi).utcoffset()
    assert off_lo is not None and off_hi is not None
    if off_hi <= off_lo:
        return None
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zi).utcoffset() == off_lo:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0), off_hi - off_lo


def minute_of_night(at: time, boundary: time) -> int:
    return (at.hour * 60 + at.minute - boundary.hour * 60 - boundary.minute) % 1440


@FAST
@given(plans_and_nights())
def test_expand_invariants(case: tuple[Plan, date]) -> None:
    plan, night = case
    every = expand(plan, night, include_skipped=True)
    active = expand(plan, night)
    if plan.effective_from is not None and night < plan.effective_from:
        assert every == [] and active == []
        return
    reason = expected_skip(plan, night)
    assert active == ([] if reason else every)
    applicable = sorted(c.at for c in plan.check_times if night.weekday() in c.weekdays)
    assert sorted(w.local_time for w in every) == applicable  # one per applicable time
    dues = [w.due for w in every]
    assert dues == sorted(dues)
    start, end = night_bounds(night, plan.timezone, plan.night_boundary)
    zi = ZoneInfo(plan.timezone)
    before = timedelta(minutes=plan.window_before_minutes)
    after = timedelta(minutes=plan.window_after_minutes)
    for w in every:
        assert w.night == night and w.skip_reason == reason
        assert w.due.utcoffset() == timedelta(0)
        assert start <= w.opens and w.closes <= end
        assert w.closes - w.opens == before + after and w.due - w.opens == before
        day = night if w.local_time >= plan.night_boundary else night + DAY
        exact = oracle_due(day, w.local_time, zi)
        if exact is not None:
            assert w.due == exact
        else:  # in a gap: the first valid instant after it
            wall = datetime.combine(day, w.local_time)
            assert w.due.astimezone(zi).replace(tzinfo=None) > wall
            earlier = w.due - timedelta(seconds=1)
            assert earlier.astimezone(zi).replace(tzinfo=None) < wall
    jump = forward_transition(plan, night)
    for a, b in itertools.pairwise(every):
        if b.opens >= a.closes:
            continue
        # Real-time overlap only across a spring-forward gap, shrunk by at most its size.
        assert jump is not None, (a, b)
        instant, size = jump
        assert a.due <= instant <= b.due
        wall_gap = minute_of_night(b.local_time, plan.night_boundary) - \
            minute_of_night(a.local_time, plan.night_boundary)
        assert b.due - a.due >= timedelta(minutes=wall_gap) - size


def windows_around(plan: Plan, night: date) -> list[Window]:
    return [w for k in (-2, -1, 0, 1, 2)
            for w in expand(plan, night + k * DAY, include_skipped=True)]


@FAST
@given(plans_and_nights(), st.lists(st.floats(0, 1), min_size=1, max_size=8),
       st.integers(0, 6))
def test_authorise_agrees_with_expand(case: tuple[Plan, date], fractions: list[float],
                                      follow_ups: int) -> None:
    plan, night = case
    windows = windows_around(plan, night)
    active = [w for w in windows if w.skip_reason is None]
    for w in expand(plan, night):
        for t in (w.opens, w.due, w.closes - timedelta(seconds=1)):
            assert authorise(plan, t).allowed
        at_close = authorise(plan, w.closes).allowed  # half-open: closes is outside
        assert at_close == any(a.opens <= w.closes < a.closes for a in active)
    for w in expand(plan, night, include_skipped=True):
        if w.skip_reason is not None and not any(a.opens <= w.due < a.closes for a in active):
            decision = authorise(plan, w.due)
            assert not decision.allowed and decision.reason.startswith(
                w.skip_reason.split(":")[0])
    start, end = night_bounds(night, plan.timezone, plan.night_boundary)
    extra = timedelta(minutes=follow_ups * (plan.follow_up.interval_minutes
                                            + plan.window_after_minutes))
    slack = timedelta(minutes=1)
    for fraction in fractions:
        t = start + timedelta(seconds=int(fraction * (end - start).total_seconds()))
        decision = authorise(plan, t)
        assert decision.allowed == any(a.opens <= t < a.closes for a in active)
        if not any(w.opens - slack <= t < w.closes + slack for w in windows):
            assert decision.code == "outside-window"  # well outside every window
        with_follow_ups = authorise(plan, t, follow_ups)
        if follow_ups > plan.follow_up.max_follow_ups:
            assert with_follow_ups.code == "follow-up-limit" and not with_follow_ups.allowed
        else:
            assert with_follow_ups.allowed == any(
                a.opens <= t < a.closes + extra for a in active)


@FAST
@given(st.sampled_from(ZONES), st.datetimes(datetime(2020, 1, 1), datetime(2040, 12, 31)),
       st.times().map(lambda t: t.replace(second=0, microsecond=0)))
def test_night_of_lies_within_its_bounds(tz: str, naive: datetime, boundary: time) -> None:
    instant = naive.replace(tzinfo=UTC)
    night = night_of(instant, tz, boundary)
    start, end = night_bounds(night, tz, boundary)
    assert start <= instant < end
    local = instant.astimezone(ZoneInfo(tz))
    if 6 <= boundary.hour < 22:  # far from DST changes the local-time rule is the same
        expected = local.date() if local.time() >= boundary else local.date() - DAY
        assert night == expected


@FAST
@given(plans_and_nights(), st.randoms(use_true_random=False))
def test_codec_round_trip_and_canonical_order(case: tuple[Plan, date],
                                              rnd: random.Random) -> None:
    plan, _ = case
    data = plan_to_dict(plan)
    assert parse_plan(data) == plan
    shuffled = dict(data)
    for key in ("check_times", "pauses", "skip_nights"):
        items = data[key]
        assert isinstance(items, list)
        items = list(items)
        rnd.shuffle(items)
        shuffled[key] = items
    again = parse_plan(dict(reversed(list(shuffled.items()))))
    assert again == plan
    assert canonical_json(again) == canonical_json(plan)
