"""Random valid plans for property tests, with every field of the JSON form in play."""

from __future__ import annotations

from datetime import date, time, timedelta

from hypothesis import strategies as st

from schedules import CheckTime, Consent, FollowUpRule, Pause, Plan, SkipNight
from schedules.plan import MAX_REASON, RANGES

ZONES = ("Europe/Stockholm", "Europe/Helsinki", "America/New_York", "Australia/Lord_Howe")
DAY = timedelta(days=1)

#: What a reason may hold: any text but surrogates and C0 controls/DEL (C1 is allowed).
REASONS = st.text(
    st.characters(codec="utf-8", exclude_characters=[chr(c) for c in range(32)] + ["\x7f"]),
    min_size=1, max_size=MAX_REASON).filter(str.strip)


def _ranged(name: str) -> st.SearchStrategy[int]:
    low, high = RANGES[name]
    return st.integers(low, high)


@st.composite
def valid_plans(draw: st.DrawFn) -> Plan:
    boundary = time(draw(st.integers(0, 23)), draw(st.integers(0, 59)))
    before = draw(_ranged("window_before_minutes"))
    after = draw(_ranged("window_after_minutes"))
    # Keep check times whose windows fit the night without overlapping a neighbour.
    start = boundary.hour * 60 + boundary.minute
    kept: list[int] = []
    for pos in sorted(set(draw(st.lists(st.integers(0, 1439), max_size=6)))):
        if pos - before >= 0 and pos + after <= 1440 and (
                not kept or pos - before >= kept[-1] + after):
            kept.append(pos)
    weekdays = st.one_of(st.just(frozenset(range(7))),
                         st.frozensets(st.integers(0, 6), min_size=1))
    checks = tuple(CheckTime(time(((start + p) % 1440) // 60, (start + p) % 60), draw(weekdays))
                   for p in kept)
    days = st.dates(date(2020, 1, 1), date(2040, 12, 31))
    consent = draw(st.one_of(st.none(), st.builds(
        lambda given, extra: Consent(given, None if extra is None else given + extra * DAY),
        days, st.one_of(st.none(), st.integers(0, 400)))))
    pauses = draw(st.lists(st.builds(lambda s, n, why: Pause(s, s + n * DAY, why),
                                     days, st.integers(0, 30), REASONS), max_size=3))
    skips = draw(st.lists(st.builds(SkipNight, days, REASONS), max_size=3))
    return Plan(
        check_times=checks,
        timezone=draw(st.sampled_from(ZONES)),
        window_before_minutes=before,
        window_after_minutes=after,
        max_lookin_seconds=draw(_ranged("max_lookin_seconds")),
        follow_up=FollowUpRule(draw(_ranged("follow_up.interval_minutes")),
                               draw(_ranged("follow_up.max_follow_ups"))),
        consent=consent,
        pauses=tuple(pauses),
        skip_nights=tuple(skips),
        night_boundary=boundary,
        effective_from=draw(st.one_of(st.none(), days)),
    )
