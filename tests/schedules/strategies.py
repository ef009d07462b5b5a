"""Random valid plans for property tests, with every field of the JSON form in play."""

from __future__ import annotations

import zoneinfo
from datetime import date, time, timedelta

from hypothesis import strategies as st

from schedules import CheckTime, Consent, FollowUpRule, Pause, Plan, SkipNight
from schedules.plan import MAX_ITEMS, MAX_REASON, RANGES

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


#: The characters that cost most in the agent link's message: 4 bytes each on the wire
#: (an emoji as UTF-8; a quote or backslash escaped twice, in the plan's JSON and again in
#: the message's), and a few cheaper ones for contrast.
WIDEST = ("😀", '"', "\\", "ö", "\u2028", "\u0085")


def longest_timezone() -> str:
    """The longest time-zone name the plan accepts."""
    from schedules.localtime import zone

    names = sorted(zoneinfo.available_timezones(), key=lambda n: (-len(n), n))
    for name in names:
        try:
            zone(name)
        except ValueError:
            continue
        return name
    raise AssertionError("no time zone")


def largest_plan(char: str = "😀", *, first_night: date = date(2026, 1, 1)) -> Plan:
    """A valid plan with every list at its maximum (``MAX_ITEMS``), every reason
    ``MAX_REASON`` of ``char``, every optional field set, the widest numbers and the
    longest time zone: the biggest signed plan the service can send."""
    # a reason of white space alone is empty: one letter first
    reason = char * MAX_REASON if char.strip() else "x" + char * (MAX_REASON - 1)
    # 48 checks half an hour apart with 15/15 windows fill the night exactly
    checks = tuple(CheckTime(time((12 + (15 + 30 * i) // 60) % 24, (15 + 30 * i) % 60))
                   for i in range(MAX_ITEMS["check_times"]))
    return Plan(
        check_times=checks,
        timezone=longest_timezone(),
        window_before_minutes=15,
        window_after_minutes=15,
        max_lookin_seconds=RANGES["max_lookin_seconds"][1],
        follow_up=FollowUpRule(RANGES["follow_up.interval_minutes"][1],
                               RANGES["follow_up.max_follow_ups"][1]),
        consent=Consent(first_night - DAY, date(2099, 12, 31)),
        pauses=tuple(Pause(first_night + i * DAY, first_night + (400 + i) * DAY, reason)
                     for i in range(MAX_ITEMS["pauses"])),
        skip_nights=tuple(SkipNight(first_night + i * DAY, reason)
                          for i in range(MAX_ITEMS["skip_nights"])),
        night_boundary=time(12, 0),
        effective_from=first_night,
    )
