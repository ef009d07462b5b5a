"""``schedules.plan_json_schema`` describes what ``parse_plan`` reads and ``plan_to_dict``
writes: every stored plan validates, and documents the schema refuses the domain refuses.

Checked with a small validator of the keywords the schema uses, and with a full draft
2020-12 validator (jsonschema_rs, which schemathesis brings) when it is installed.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings

from schedules import Plan, PlanError, parse_plan, plan_json_schema, plan_to_dict
from schedules.plan import MAX_ITEMS, MAX_REASON, RANGES
from tests.schedules.strategies import valid_plans

SCHEMA = plan_json_schema()
_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "null": type(None)}


def problems(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Where ``value`` breaks ``schema`` (the keywords plan_json_schema uses; [] = valid)."""
    if "anyOf" in schema:
        if any(not problems(value, option, path) for option in schema["anyOf"]):
            return []
        return [f"{path}: matches no option"]
    kind = schema.get("type")
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{path}: not an integer"]
    elif kind is not None and not isinstance(value, _TYPES[kind]):
        return [f"{path}: not {kind}"]
    out: list[str] = []
    if "minimum" in schema and value < schema["minimum"]:
        out.append(f"{path}: below minimum")
    if "maximum" in schema and value > schema["maximum"]:
        out.append(f"{path}: above maximum")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            out.append(f"{path}: too short")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{path}: too long")
        # ECMA-262 "$" is the very end; Python's also matches before a final newline
        if "pattern" in schema and not re.search(
                re.sub(r"\$$", r"\\Z", schema["pattern"]), value):
            out.append(f"{path}: does not match {schema['pattern']}")
        if schema.get("format") == "date":
            try:
                date.fromisoformat(value)
            except ValueError:
                out.append(f"{path}: not a date")
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                out.append(f"{path}: not a full date")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{path}.{k}: required" for k in schema.get("required", ()) if k not in value]
        for key, item in value.items():
            if key in props:
                out += problems(item, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{path}.{key}: not allowed")
    if isinstance(value, list) and len(value) > schema.get("maxItems", len(value)):
        out.append(f"{path}: too many items")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += problems(item, schema["items"], f"{path}.{i}")
    return out


def full_validator() -> Any:
    import jsonschema_rs  # installed with schemathesis, a test dependency: never skipped

    jsonschema_rs.meta.validate(SCHEMA)  # a well-formed draft 2020-12 schema
    return jsonschema_rs.Draft202012Validator(SCHEMA, validate_formats=True)


def test_the_schema_is_derived_from_the_domain() -> None:
    props = SCHEMA["properties"]
    assert SCHEMA["title"] == "PlanDocument" and SCHEMA["additionalProperties"] is False
    assert set(props) == set(plan_to_dict(Plan(check_times=())))
    assert SCHEMA["required"] == ["check_times"]
    follow = props["follow_up"]["properties"]
    for name, (low, high) in RANGES.items():
        prop = follow[name.split(".")[1]] if name.startswith("follow_up.") else props[name]
        assert (prop["minimum"], prop["maximum"]) == (low, high), name
    defaults = plan_to_dict(Plan(check_times=()))
    for name, prop in props.items():
        if name != "check_times":
            assert prop["default"] == defaults[name], name
    for name in ("pauses", "skip_nights"):
        assert props[name]["items"]["properties"]["reason"]["maxLength"] == MAX_REASON
    for name, most in MAX_ITEMS.items():
        assert props[name]["maxItems"] == most, name
    assert plan_json_schema() == SCHEMA and plan_json_schema() is not SCHEMA


@settings(max_examples=300, deadline=None)
@given(valid_plans())
def test_every_stored_plan_validates(plan: Plan) -> None:
    stored = plan_to_dict(plan)
    assert problems(stored, SCHEMA) == []


def test_every_stored_plan_validates_with_a_full_validator() -> None:
    validator = full_validator()

    @settings(max_examples=300, deadline=None)
    @given(valid_plans())
    def check(plan: Plan) -> None:
        validator.validate(plan_to_dict(plan))

    check()


BASE: dict[str, Any] = {"check_times": [{"at": "22:00"}],
                        "consent": {"given_on": "2026-01-10"}}
#: Documents the schema refuses, field by field; the domain refuses each as well.
REFUSED: list[dict[str, Any]] = [
    {},
    {**BASE, "colour": "red"},
    {**BASE, "check_times": [{"at": "24:00"}]},
    {**BASE, "check_times": [{"at": "7:00"}]},
    {**BASE, "check_times": [{"at": "22:00\n"}]},
    {**BASE, "check_times": [{"at": "22:00", "days": [1]}]},
    {**BASE, "check_times": [{"at": "22:00", "weekdays": ["mon"]}]},
    {**BASE, "timezone": 1},
    {**BASE, "window_before_minutes": 121},
    {**BASE, "window_after_minutes": 0},
    {**BASE, "max_lookin_seconds": 5},
    {**BASE, "max_lookin_seconds": True},
    {**BASE, "follow_up": {"interval_minutes": 0}},
    {**BASE, "follow_up": {"max_follow_ups": 6}},
    {**BASE, "follow_up": None},
    {**BASE, "consent": {"given_on": "2026-02-30"}},
    {**BASE, "consent": {"given_on": "10/02/2026"}},
    {**BASE, "consent": {}},
    {**BASE, "pauses": [{"start": "2026-02-01", "end": "2026-02-02"}]},
    {**BASE, "pauses": [{"start": "2026-02-01", "end": "2026-02-02", "reason": ""}]},
    {**BASE, "pauses": [{"start": "2026-02-01", "end": "2026-02-02",
                         "reason": "x" * (MAX_REASON + 1)}]},
    {**BASE, "skip_nights": [{"night": "2026-02-01", "reason": "borta\x00"}]},
    {**BASE, "skip_nights": [{"night": "2026-02-01", "reason": "rad\nny rad"}]},
    {**BASE, "night_boundary": "noon"},
    {**BASE, "effective_from": "tomorrow"},
    {**BASE, "check_times": [{"at": f"{h:02d}:{m:02d}"} for h in range(24) for m in (0, 15, 30)
                             ][: MAX_ITEMS["check_times"] + 1],
     "window_before_minutes": 0, "window_after_minutes": 1},
    {**BASE, "pauses": [{"start": "2026-02-01", "end": "2026-02-02", "reason": "x"}]
     * (MAX_ITEMS["pauses"] + 1)},
    {**BASE, "skip_nights": [{"night": "2026-02-01", "reason": "x"}]
     * (MAX_ITEMS["skip_nights"] + 1)},
]


@pytest.mark.parametrize("document", REFUSED)
def test_what_the_schema_refuses_the_domain_refuses(document: dict[str, Any]) -> None:
    assert problems(document, SCHEMA), document
    with pytest.raises(PlanError):
        parse_plan(document)


def test_the_full_validator_agrees() -> None:
    validator = full_validator()
    for document in REFUSED:
        assert not validator.is_valid(document), document
    longest = "å" * MAX_REASON  # characters, not bytes
    ok = {**BASE, "skip_nights": [{"night": "2026-02-01", "reason": longest}]}
    assert validator.is_valid(ok) and problems(ok, SCHEMA) == []
    parse_plan(ok)
