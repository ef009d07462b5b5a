"""A pause's or skip-night's reason fits the checks' reason column and is one plain line."""

from __future__ import annotations

from datetime import date

import pytest

from schedules import FieldError, Plan, PlanError, SkipNight, parse_plan
from schedules.plan import MAX_REASON

BASE = {"check_times": [{"at": "22:00"}]}


def errors(data: object) -> list[FieldError]:
    with pytest.raises(PlanError) as info:
        parse_plan(data)
    return info.value.errors


def test_a_reason_of_at_most_max_reason_characters() -> None:
    assert MAX_REASON == 200
    fits = "ö" * MAX_REASON
    parse_plan({**BASE, "pauses": [{"start": "2026-02-01", "end": "2026-02-02",
                                    "reason": fits}]})
    assert errors({**BASE, "pauses": [
        {"start": "2026-02-01", "end": "2026-02-02", "reason": "ok"},
        {"start": "2026-03-01", "end": "2026-03-02", "reason": fits + "!"}]}) == [
        FieldError("pauses.1.reason", "must be at most 200 characters", "too-long",
                   {"max": 200})]


def test_no_control_characters_in_a_reason() -> None:
    parse_plan({**BASE, "skip_nights": [{"night": "2026-02-01", "reason": "hos\u0085sonen"}]})
    for bad in ("hos\nsonen", "tab\t", "nul\x00", "del\x7f"):
        assert errors({**BASE, "skip_nights": [{"night": "2026-02-01", "reason": bad}]}) == [
            FieldError("skip_nights.0.reason", "must not contain control characters",
                       "control-chars")], bad


def test_every_problem_of_a_reason_is_reported() -> None:
    found = errors({**BASE, "skip_nights": [{"night": "2026-02-01",
                                             "reason": "\t" * (MAX_REASON + 1)}]})
    assert [e.code for e in found] == ["empty", "too-long", "control-chars"]


def test_a_directly_constructed_plan_is_held_to_the_same_rules() -> None:
    with pytest.raises(PlanError) as info:
        Plan(check_times=(), skip_nights=(SkipNight(date(2026, 2, 1), "x" * 201),))
    assert [e.code for e in info.value.errors] == ["too-long"]
