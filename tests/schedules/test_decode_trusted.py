"""The trusted decoder of stored plans builds the very plan ``parse_plan`` builds.

The bulk planner skips re-validating stored rows (``schedules.decode_trusted``); anything
not in ``plan_to_dict``'s complete form still goes through validation.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings

import schedules
from schedules import Plan, decode_trusted, parse_plan, plan_to_dict
from schedules.plan import PLAN_FIELDS
from tests.schedules.strategies import valid_plans

FULL: dict[str, Any] = {
    "timezone": "Europe/Helsinki", "night_boundary": "13:30", "effective_from": "2027-01-04",
    "check_times": [{"at": "23:15", "weekdays": [0, 2, 4]}, {"at": "02:00"}],
    "window_before_minutes": 5, "window_after_minutes": 20, "max_lookin_seconds": 45,
    "follow_up": {"interval_minutes": 10, "max_follow_ups": 3},
    "consent": {"given_on": "2026-02-01", "valid_until": "2027-12-31"},
    "pauses": [{"start": "2027-02-01", "end": "2027-02-09", "reason": "sjukhus"}],
    "skip_nights": [{"night": "2027-03-01", "reason": "hos sonen"}]}


def test_the_planners_decoding_equals_parsing() -> None:
    """The bulk planner skips re-validating stored rows; it must build the very same plan."""
    assert set(plan_to_dict(Plan(check_times=()))) == PLAN_FIELDS, \
        "schedules.Plan changed: teach plan_to_dict and decode_trusted"
    full = plan_to_dict(parse_plan(FULL))
    assert decode_trusted(full) == parse_plan(full)
    partial = {"check_times": [{"at": "22:00"}]}  # e.g. a demo row: parsed and validated
    assert decode_trusted(partial) == parse_plan(partial)
    with pytest.raises(schedules.PlanError):
        decode_trusted({"check_times": [{"at": "22:00"}, {"at": "22:10"}]})


@settings(max_examples=300, deadline=None)
@given(valid_plans())
def test_decoding_inverts_plan_to_dict(plan: Plan) -> None:
    stored = plan_to_dict(plan)
    decoded = decode_trusted(stored)
    assert decoded == plan == parse_plan(stored)
    assert plan_to_dict(decoded) == stored


def test_anything_but_the_complete_form_is_parsed() -> None:
    full = plan_to_dict(parse_plan(FULL))
    broken: list[dict[str, Any]] = [
        {**full, "night_boundary": "1330"},
        {**full, "check_times": [{"at": 2315, "weekdays": [0]}]},
        {**full, "consent": {"given_on": "01/02/2026", "valid_until": None}},
        {**full, "colour": "red"},
    ]
    for data in broken:
        with pytest.raises(schedules.PlanError):
            decode_trusted(data)
    seen: list[object] = []

    def fallback(data: Any) -> Plan:
        seen.append(data)
        return parse_plan(data)

    partial = {"check_times": [{"at": "22:00"}]}
    assert decode_trusted(partial, fallback=fallback) == parse_plan(partial)
    assert decode_trusted(full, fallback=fallback) == parse_plan(full)
    assert seen == [partial], "the complete form never reaches the fallback"


def test_the_trusted_constructor_wants_every_field() -> None:
    with pytest.raises(TypeError):
        Plan._trusted({"check_times": ()})


def test_with_consent_equals_a_validated_replace() -> None:
    """The service swaps in the consent on record without validating the plan again; the
    result is the plan a full validation builds, and a backwards consent is refused."""
    plan = parse_plan(FULL)
    recorded = schedules.Consent(date(2026, 3, 1), None)
    assert plan.with_consent(recorded) == dataclasses.replace(plan, consent=recorded)
    assert plan.with_consent(None) == dataclasses.replace(plan, consent=None)
    assert plan.with_consent(plan.consent) is plan
    with pytest.raises(schedules.PlanError) as refused:
        plan.with_consent(schedules.Consent(date(2026, 3, 2), date(2026, 3, 1)))
    assert [e.code for e in refused.value.errors] == ["consent.order"]
