"""Validation messages, the JSON codec round trip and canonical bytes."""

import copy
import json
from datetime import date, datetime, time
from typing import Any

import pytest

from schedules import (
    CheckTime,
    Consent,
    FieldError,
    FollowUpRule,
    Pause,
    Plan,
    PlanError,
    SkipNight,
    canonical_json,
    parse_plan,
    plan_to_dict,
)

FULL: dict[str, Any] = {
    "timezone": "Europe/Stockholm",
    "check_times": [
        {"at": "22:30", "weekdays": [0, 1, 2, 3, 4, 5, 6]},
        {"at": "01:00", "weekdays": [4, 5]},
    ],
    "window_before_minutes": 15,
    "window_after_minutes": 15,
    "max_lookin_seconds": 30,
    "follow_up": {"interval_minutes": 15, "max_follow_ups": 1},
    "consent": {"given_on": "2026-01-10", "valid_until": None},
    "pauses": [{"start": "2026-02-01", "end": "2026-02-05", "reason": "hospital"}],
    "skip_nights": [{"night": "2026-02-10", "reason": "family visiting"}],
    "night_boundary": "12:00",
    "effective_from": "2026-01-10",
}


def errors_of(data: object) -> dict[str, str]:
    with pytest.raises(PlanError) as info:
        parse_plan(data)
    return {e.field: e.message for e in info.value.errors}


def with_(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(FULL)
    data.update(changes)
    return data


def test_parse_full_example() -> None:
    plan = parse_plan(FULL)
    assert plan.check_times == (CheckTime(time(1, 0), frozenset({4, 5})), CheckTime(time(22, 30)))
    assert plan.consent == Consent(date(2026, 1, 10))
    assert plan.pauses == (Pause(date(2026, 2, 1), date(2026, 2, 5), "hospital"),)
    assert plan.skip_nights == (SkipNight(date(2026, 2, 10), "family visiting"),)
    assert plan.effective_from == date(2026, 1, 10)
    assert plan.follow_up == FollowUpRule()


def test_defaults_for_missing_optional_keys() -> None:
    plan = parse_plan({"check_times": []})
    assert plan == Plan(check_times=())
    assert plan.timezone == "Europe/Stockholm"
    assert plan.night_boundary == time(12, 0)
    assert plan.consent is None and plan.effective_from is None
    assert parse_plan({"check_times": [], "follow_up": {}}) == plan


def test_round_trip() -> None:
    plan = parse_plan(FULL)
    assert parse_plan(plan_to_dict(plan)) == plan
    assert parse_plan(json.loads(json.dumps(plan_to_dict(plan)))) == plan
    direct = Plan(check_times=(CheckTime(time(23, 0), frozenset({6})),),
                  consent=Consent(date(2026, 1, 1), date(2026, 12, 31)),
                  night_boundary=time(13, 30), max_lookin_seconds=120)
    assert parse_plan(plan_to_dict(direct)) == direct


def test_canonical_json_is_order_independent() -> None:
    shuffled = copy.deepcopy(FULL)
    shuffled["check_times"] = [
        {"weekdays": [5, 4], "at": "01:00"},
        {"at": "22:30"},
    ]
    shuffled["pauses"].insert(0, {"reason": "rehab", "end": "2026-01-20", "start": "2026-01-15"})
    reordered = dict(reversed(list(shuffled.items())))
    expected = copy.deepcopy(FULL)
    expected["pauses"].append({"start": "2026-01-15", "end": "2026-01-20", "reason": "rehab"})
    a, b = parse_plan(reordered), parse_plan(expected)
    assert a == b
    assert canonical_json(a) == canonical_json(b)
    text = canonical_json(a).decode("utf-8")
    assert " " not in text.replace("family visiting", "")
    assert text.startswith('{"check_times":[{"at":"01:00","weekdays":[4,5]},{"at":"22:30"')


def test_canonical_json_is_utf8_and_defaults_explicit() -> None:
    pause = Pause(date(2026, 1, 1), date(2026, 1, 2), "sjukhus på Öland")
    plan = Plan(check_times=(), pauses=(pause,))
    raw = canonical_json(plan)
    assert "sjukhus på Öland".encode() in raw
    assert json.loads(raw)["window_before_minutes"] == 15
    assert canonical_json(parse_plan({"check_times": [], "pauses": [
        {"start": "2026-01-01", "end": "2026-01-02", "reason": "sjukhus på Öland"}]})) == raw


def test_direct_construction_normalises_order_and_collections() -> None:
    a = Plan(check_times=(CheckTime(time(3, 0)), CheckTime(time(1, 0), [0, 1])))  # type: ignore[arg-type]
    b = Plan(check_times=[CheckTime(time(1, 0), frozenset({0, 1})), CheckTime(time(3, 0))])  # type: ignore[arg-type]
    assert a == b and a.check_times[0].at == time(1, 0)
    assert isinstance(a.check_times[0].weekdays, frozenset)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ([], "", "must be an object"),
        ({}, "check_times", "is required"),
        (with_(bogus=1), "bogus", "unknown key"),
        (with_(check_times="22:30"), "check_times", 'must be a list, got "22:30"'),
        (with_(check_times=[{"at": "22:30", "when": 1}]), "check_times.0.when", "unknown key"),
        (with_(check_times=[{}]), "check_times.0.at", "is required"),
        (with_(check_times=[{"at": "24:00"}]), "check_times.0.at",
         'must be a time "HH:MM" from 00:00 to 23:59, got "24:00"'),
        (with_(check_times=[{"at": "1:00"}]), "check_times.0.at",
         'must be a time "HH:MM" from 00:00 to 23:59, got "1:00"'),
        (with_(check_times=[{"at": 100}]), "check_times.0.at",
         'must be a time "HH:MM" from 00:00 to 23:59, got 100'),
        (with_(check_times=[{"at": "01:00", "weekdays": []}]), "check_times.0.weekdays",
         "must not be empty"),
        (with_(check_times=[{"at": "01:00", "weekdays": [7]}]), "check_times.0.weekdays",
         "weekday must be 0 (Monday) to 6 (Sunday), got 7"),
        (with_(check_times=[{"at": "01:00", "weekdays": [True]}]), "check_times.0.weekdays.0",
         "must be an integer, got true"),
        (with_(check_times=[{"at": "01:00", "weekdays": 3}]), "check_times.0.weekdays",
         "must be a list, got 3"),
        (with_(timezone="Mars/Olympus"), "timezone", 'unknown time zone "Mars/Olympus"'),
        (with_(timezone=""), "timezone", 'unknown time zone ""'),
        (with_(timezone="../etc/passwd"), "timezone", 'unknown time zone "../etc/passwd"'),
        (with_(timezone="localtime"), "timezone", 'unknown time zone "localtime"'),
        (with_(timezone="right/UTC"), "timezone", 'unknown time zone "right/UTC"'),
        (with_(timezone=1), "timezone", "must be a string, got 1"),
        (with_(window_before_minutes=121), "window_before_minutes",
         "must be between 0 and 120 minutes, got 121"),
        (with_(window_before_minutes=-1), "window_before_minutes",
         "must be between 0 and 120 minutes, got -1"),
        (with_(window_after_minutes=0), "window_after_minutes",
         "must be between 1 and 120 minutes, got 0"),
        (with_(window_after_minutes=15.0), "window_after_minutes",
         "must be an integer, got 15.0"),
        (with_(max_lookin_seconds=9), "max_lookin_seconds",
         "must be between 10 and 120 seconds, got 9"),
        (with_(max_lookin_seconds=121), "max_lookin_seconds",
         "must be between 10 and 120 seconds, got 121"),
        (with_(follow_up={"interval_minutes": 0}), "follow_up.interval_minutes",
         "must be between 1 and 120 minutes, got 0"),
        (with_(follow_up={"max_follow_ups": 6}), "follow_up.max_follow_ups",
         "must be between 0 and 5 follow-ups, got 6"),
        (with_(follow_up={"max": 6}), "follow_up.max", "unknown key"),
        (with_(follow_up=[]), "follow_up", "must be an object"),
        (with_(consent={"given_on": "2026-01-10", "valid_until": "2026-01-09"}),
         "consent.valid_until", "must not be before given_on (2026-01-10), got 2026-01-09"),
        (with_(consent={"valid_until": None}), "consent.given_on", "is required"),
        (with_(consent={"given_on": "2026-02-30"}), "consent.given_on",
         'must be a date "YYYY-MM-DD", got "2026-02-30"'),
        (with_(consent={"given_on": "20260110"}), "consent.given_on",
         'must be a date "YYYY-MM-DD", got "20260110"'),
        (with_(pauses=[{"start": "2026-02-05", "end": "2026-02-01", "reason": "x"}]),
         "pauses.0.end", "must not be before start (2026-02-05), got 2026-02-01"),
        (with_(pauses=[{"start": "2026-02-01", "end": "2026-02-01", "reason": "  "}]),
         "pauses.0.reason", "must not be empty"),
        (with_(pauses=[{"start": "2026-02-01", "end": "2026-02-01"}]),
         "pauses.0.reason", "is required"),
        (with_(pauses=[{"start": "2026-02-01", "end": "2026-02-01", "reason": 5}]),
         "pauses.0.reason", "must be a string, got 5"),
        (with_(skip_nights=[{"night": "2026-02-10", "reason": ""}]),
         "skip_nights.0.reason", "must not be empty"),
        (with_(skip_nights=[{"night": None, "reason": "x"}]),
         "skip_nights.0.night", 'must be a date "YYYY-MM-DD", got null'),
        (with_(night_boundary="noon"), "night_boundary",
         'must be a time "HH:MM" from 00:00 to 23:59, got "noon"'),
        (with_(effective_from="soon"), "effective_from",
         'must be a date "YYYY-MM-DD", got "soon"'),
    ],
)
def test_each_message(data: object, field: str, message: str) -> None:
    assert errors_of(data).get(field) == message


def test_duplicate_check_time() -> None:
    errors = errors_of(with_(check_times=[{"at": "01:00"}, {"at": "03:00"}, {"at": "01:00"}]))
    assert errors == {"check_times.2.at": "duplicate check time 01:00 (same as check_times.0)"}


def test_overlapping_windows() -> None:
    errors = errors_of(with_(check_times=[{"at": "02:20"}, {"at": "02:00"}]))
    assert errors == {
        "check_times.0.at": "window 02:05–02:35 overlaps the window 01:45–02:15 of "
        "check_times.1; with 15 min before and 15 min after, checks must be at least "
        "30 minutes apart"
    }


def test_overlap_ignores_weekdays() -> None:
    errors = errors_of(with_(check_times=[{"at": "02:00", "weekdays": [0]},
                                          {"at": "02:20", "weekdays": [1]}]))
    assert list(errors) == ["check_times.1.at"]


def test_overlap_in_night_order_across_midnight() -> None:
    errors = errors_of(with_(check_times=[{"at": "00:10"}, {"at": "23:50"}]))
    assert list(errors) == ["check_times.0.at"]
    assert "overlaps the window 23:35–00:05 of check_times.1" in errors["check_times.0.at"]


def test_touching_windows_are_fine() -> None:
    plan = parse_plan(with_(check_times=[{"at": "02:00"}, {"at": "02:30"}, {"at": "03:00"}]))
    assert len(plan.check_times) == 3


def test_window_crossing_the_boundary() -> None:
    errors = errors_of(with_(check_times=[{"at": "11:50"}, {"at": "12:05"}]))
    assert errors == {
        "check_times.0.at": "window 11:35–12:05 crosses the night boundary 12:00",
        "check_times.1.at": "window 11:50–12:20 crosses the night boundary 12:00",
    }


def test_windows_touching_the_boundary_are_fine() -> None:
    plan = parse_plan(with_(check_times=[{"at": "11:45"}, {"at": "12:15"}]))
    assert len(plan.check_times) == 2


def test_check_at_the_boundary_belongs_to_the_start_of_the_night() -> None:
    plan = parse_plan(with_(check_times=[{"at": "12:00"}], window_before_minutes=0))
    assert plan.check_times[0].at == time(12, 0)
    errors = errors_of(with_(check_times=[{"at": "12:00"}]))
    assert errors == {
        "check_times.0.at": "window 11:45–12:15 crosses the night boundary 12:00"}


def test_boundary_with_other_window_lengths() -> None:
    errors = errors_of(with_(check_times=[{"at": "18:30"}, {"at": "19:30"}],
                             night_boundary="18:00", window_before_minutes=45,
                             window_after_minutes=20))
    assert errors == {
        "check_times.0.at": "window 17:45–18:50 crosses the night boundary 18:00",
        "check_times.1.at": "window 18:45–19:50 overlaps the window 17:45–18:50 of "
        "check_times.0; with 45 min before and 20 min after, checks must be at least "
        "65 minutes apart",
    }


def test_all_errors_are_collected() -> None:
    data = with_(
        bogus=True,
        timezone="Nowhere/City",
        check_times=[{"at": "02:00", "weekdays": [9, "x"]}, {"at": "02:10"}, {"at": "25:00"}],
        window_after_minutes=0,
        consent={"given_on": "2026-01-10", "valid_until": "2025-01-01"},
        pauses=[{"start": "2026-02-05", "end": "2026-02-01", "reason": ""}],
        skip_nights=[{"night": "x", "reason": "y"}],
    )
    assert set(errors_of(data)) == {
        "bogus", "timezone", "check_times.0.weekdays", "check_times.0.weekdays.1",
        "check_times.2.at", "window_after_minutes", "consent.valid_until", "pauses.0.end",
        "pauses.0.reason", "skip_nights.0.night",
    }


def test_plan_error_is_a_value_error_with_readable_text() -> None:
    with pytest.raises(ValueError, match=r"timezone: unknown time zone"):
        parse_plan(with_(timezone="Nowhere/City"))
    err = PlanError([FieldError("a.b", "bad")])
    assert err.errors == [FieldError("a.b", "bad")]


def test_direct_construction_validates() -> None:
    with pytest.raises(PlanError) as info:
        Plan(check_times=(CheckTime(time(2, 0)), CheckTime(time(2, 0))), timezone="X/Y",
             window_before_minutes=True, night_boundary=time(12, 0, 30))
    fields = {e.field for e in info.value.errors}
    assert fields == {"window_before_minutes", "night_boundary"}  # type errors come first
    with pytest.raises(PlanError) as info:
        Plan(check_times=(CheckTime(time(2, 0)), CheckTime(time(2, 0))), timezone="X/Y",
             consent=Consent(datetime(2026, 1, 1), None))
    assert {e.field for e in info.value.errors} == {"consent.given_on"}
    with pytest.raises(PlanError) as info:
        Plan(check_times=(CheckTime(time(2, 0)), CheckTime(time(2, 0))), timezone="X/Y")
    assert {e.field for e in info.value.errors} == {"check_times.1.at", "timezone"}


def test_empty_check_times_is_allowed() -> None:
    assert parse_plan({"check_times": []}).check_times == ()
