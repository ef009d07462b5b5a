"""Every validation problem carries a stable code and params a user interface can translate."""

from __future__ import annotations

import copy
import re
from datetime import UTC, date, time
from typing import Any

import pytest

from schedules import CheckTime, Consent, FollowUpRule, Pause, Plan, PlanError, SkipNight
from schedules.codec import parse_plan
from schedules.errors import CODES, UNITS, FieldError
from supervision.i18n import LOCALES, catalog

BASE: dict[str, Any] = {
    "timezone": "Europe/Stockholm",
    "check_times": [{"at": "22:30"}, {"at": "01:00", "weekdays": [4, 5]}],
    "consent": {"given_on": "2026-01-10"},
}

#: JSON plans, each invalid in at least one way; together they reach every codec and
#: semantic rule.
INVALID_JSON: list[object] = [
    [],
    "plan",
    {},
    {**BASE, "colour": "red"},
    {**BASE, "check_times": "22:00"},
    {**BASE, "check_times": ["22:00", {"weekdays": [1]}]},
    {**BASE, "check_times": [{"at": "24:00"}, {"at": 2200}, {"at": "7:00"}]},
    {**BASE, "check_times": [{"at": "22:00", "weekdays": []}]},
    {**BASE, "check_times": [{"at": "22:00", "weekdays": [7, -1, "mon"]}]},
    {**BASE, "check_times": [{"at": "22:00", "weekdays": "weekdays"}]},
    {**BASE, "check_times": [{"at": "22:00"}, {"at": "22:00"}]},
    {**BASE, "check_times": [{"at": "22:00"}, {"at": "22:10"}]},
    {**BASE, "check_times": [{"at": "12:05"}, {"at": "11:55"}]},
    {**BASE, "timezone": "Mars/Olympus"},
    {**BASE, "timezone": 1},
    {**BASE, "window_before_minutes": 500, "window_after_minutes": 0},
    {**BASE, "max_lookin_seconds": 5},
    {**BASE, "max_lookin_seconds": True},
    {**BASE, "follow_up": {"interval_minutes": 0, "max_follow_ups": 99}},
    {**BASE, "follow_up": {"interval_minutes": "15", "often": 1}},
    {**BASE, "follow_up": 3},
    {**BASE, "consent": {"given_on": "2026-02-10", "valid_until": "2026-01-01"}},
    {**BASE, "consent": {"given_on": "10/02/2026"}},
    {**BASE, "consent": {"given_on": "2026-02-30"}},
    {**BASE, "consent": {}},
    {**BASE, "pauses": [{"start": "2026-02-10", "end": "2026-02-01", "reason": " "}]},
    {**BASE, "pauses": [{"start": "2026-02-10"}, 4]},
    {**BASE, "pauses": {"start": "2026-02-10"}},
    {**BASE, "skip_nights": [{"night": "2026-02-10", "reason": ""}]},
    {**BASE, "skip_nights": [{"night": None, "reason": 5, "extra": 1}]},
    {**BASE, "pauses": [{"start": "2026-02-01", "end": "2026-02-02", "reason": "x" * 201}]},
    {**BASE, "skip_nights": [{"night": "2026-02-10", "reason": "borta\x00"}]},
    {**BASE, "skip_nights": [{"night": "2026-02-10", "reason": "borta\ud800"}]},
    {**BASE, "skip_nights": [{"night": "2026-02-10", "reason": "borta"}] * 31},
    {**BASE, "night_boundary": "noon"},
    {**BASE, "effective_from": "tomorrow"},
]

VALID = parse_plan(copy.deepcopy(BASE))

#: Directly constructed plans (the Python API), which also check types.
INVALID_PLANS: list[dict[str, Any]] = [
    {"check_times": "22:00"},
    {"check_times": ("22:00",)},
    {"check_times": (CheckTime("22:00"),)},  # type: ignore[arg-type]
    {"check_times": (CheckTime(time(22, 0, 30)),)},
    {"check_times": (CheckTime(time(22, 0, tzinfo=UTC)),)},
    {"check_times": (CheckTime(time(22, 0), frozenset({"mon"})),)},  # type: ignore[arg-type]
    {"timezone": None, "window_before_minutes": "15", "max_lookin_seconds": 1.5},
    {"follow_up": None},
    {"follow_up": FollowUpRule("15", None)},  # type: ignore[arg-type]
    {"consent": "yes"},
    {"consent": Consent("2026-01-01", "never")},  # type: ignore[arg-type]
    {"pauses": [Pause(date(2026, 1, 2), date(2026, 1, 1), "x")]},
    {"pauses": ("pause", Pause("a", "b", 3))},  # type: ignore[arg-type]
    {"skip_nights": [SkipNight(date(2026, 1, 1), " ")]},
    {"skip_nights": ("skip", SkipNight("a", None))},  # type: ignore[arg-type]
    {"night_boundary": "12:00", "effective_from": "2026-01-01"},
]


def json_errors() -> list[FieldError]:
    found: list[FieldError] = []
    for data in INVALID_JSON:
        with pytest.raises(PlanError) as info:
            parse_plan(data)
        found.extend(info.value.errors)
    return found


def plan_errors() -> list[FieldError]:
    found: list[FieldError] = []
    for changes in INVALID_PLANS:
        fields = {name: getattr(VALID, name) for name in VALID.__dataclass_fields__}
        fields.update(changes)
        with pytest.raises(PlanError) as info:
            Plan(**fields)
        found.extend(info.value.errors)
    return found


ALL = json_errors() + plan_errors()


def test_every_error_has_a_known_code_and_its_params() -> None:
    for error in ALL:
        assert error.code in CODES, error
        assert set(error.params) == set(CODES[error.code]), error
        assert all(isinstance(v, (str, int)) for v in error.params.values()), error
        if error.code == "range":
            assert error.params["unit"] in UNITS, error


def test_the_invalid_plans_reach_every_code() -> None:
    assert {e.code for e in ALL} == set(CODES)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_code_is_translated(locale: str) -> None:
    strings = catalog(locale)
    for code, params in CODES.items():
        text = strings.get(f"plan_error.{code}")
        assert text, f"{locale} lacks plan_error.{code}"
        assert set(re.findall(r"{(\w+)}", text)) <= set(params), (locale, code)
    for unit in UNITS:
        assert strings.get(f"plan_error.unit.{unit}"), f"{locale} lacks plan_error.unit.{unit}"


def test_english_message_stays_as_before() -> None:
    with pytest.raises(PlanError) as info:
        parse_plan({**BASE, "max_lookin_seconds": 5})
    [error] = info.value.errors
    assert error == FieldError("max_lookin_seconds",
                               "must be between 10 and 120 seconds, got 5", "range",
                               {"low": 10, "high": 120, "unit": "seconds", "value": 5})
    assert str(error) == "max_lookin_seconds: must be between 10 and 120 seconds, got 5"
    assert FieldError("a", "b").code == "" and FieldError("a", "b").params == {}
    hash(FieldError("a", "b", "empty", {"x": 1}))
