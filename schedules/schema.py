"""The JSON Schema of the plan's JSON form (draft 2020-12, as OpenAPI 3.1 uses it).

Derived from the domain itself: the ranges (``RANGES``), the defaults (a default ``Plan``
in ``plan_to_dict``'s form), the time pattern (``TIME_PATTERN``), the reason limit
(``MAX_REASON``) and the list limits (``MAX_ITEMS``), so the document cannot drift from
what ``parse_plan`` accepts. It describes the shape; ``parse_plan`` still decides, since
some rules span fields (windows must not overlap, a pause must not end before it starts,
the time zone must exist). Nested objects are inline, so the schema can be placed
anywhere in another document (an OpenAPI component) without ``$ref`` resolution.
"""

from __future__ import annotations

from datetime import time
from typing import Any

from schedules.codec import TIME_PATTERN, plan_to_dict
from schedules.plan import MAX_ITEMS, MAX_REASON, RANGES, CheckTime, Plan

__all__ = ["plan_json_schema"]

#: No control characters (U+0000-U+001F, U+007F); ``parse_plan`` refuses them in reasons.
_PLAIN = "^[^\\x00-\\x1f\\x7f]*$"


def plan_json_schema() -> dict[str, Any]:
    """The JSON Schema of the dict ``parse_plan`` reads (a new dict each call)."""
    defaults = plan_to_dict(Plan(check_times=()))
    follow_defaults = defaults["follow_up"]
    assert isinstance(follow_defaults, dict)

    def ranged(name: str, description: str, default: object) -> dict[str, Any]:
        low, high = RANGES[name]
        return {"type": "integer", "minimum": low, "maximum": high, "default": default,
                "description": description}

    def hhmm(description: str, **extra: Any) -> dict[str, Any]:
        return {"type": "string", "pattern": TIME_PATTERN, "description": description,
                **extra}

    def day(description: str = "") -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "format": "date"}
        if description:
            schema["description"] = description
        return schema

    def nullable(schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"anyOf": [schema, {"type": "null"}], "default": None,
                "description": description}

    def obj(properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                                  "properties": properties}
        if required:
            schema["required"] = required
        return {**extra, **schema}  # title and description first, for readers

    reason = {"type": "string", "minLength": 1, "maxLength": MAX_REASON, "pattern": _PLAIN,
              "description": "in the care manager's words; one line"}
    check_time = obj({
        "at": hhmm("local wall-clock time HH:MM", examples=["22:00"]),
        "weekdays": {"type": "array", "items": {"type": "integer"},
                     "default": sorted(CheckTime(time(0)).weekdays),
                     "description": "weekdays of the night's evening, 0=Monday..6"},
    }, ["at"])
    follow_up = obj({
        "interval_minutes": ranged("follow_up.interval_minutes", "minutes between a check "
                                   "and a follow-up", follow_defaults["interval_minutes"]),
        "max_follow_ups": ranged("follow_up.max_follow_ups", "follow-ups after a check",
                                 follow_defaults["max_follow_ups"]),
    }, [], default=follow_defaults)
    consent = obj({
        "given_on": day("first night covered"),
        "valid_until": nullable(day(), "last night covered; null = open-ended"),
    }, ["given_on"])
    pause = obj({
        "start": day("first night of the pause"),
        "end": day("last night of the pause, inclusive"),
        "reason": dict(reason),
    }, ["start", "end", "reason"])
    skip_night = obj({
        "night": day("the night, named by its evening"),
        "reason": dict(reason),
    }, ["night", "reason"])
    return obj({
        "timezone": {"type": "string", "default": defaults["timezone"],
                     "description": "IANA time zone"},
        "check_times": {"type": "array", "items": check_time,
                        "maxItems": MAX_ITEMS["check_times"],
                        "description": "the agreed local check times"},
        "window_before_minutes": ranged("window_before_minutes", "minutes a look-in may "
                                        "start before the check time",
                                        defaults["window_before_minutes"]),
        "window_after_minutes": ranged("window_after_minutes", "minutes a look-in may start "
                                       "after the check time", defaults["window_after_minutes"]),
        "max_lookin_seconds": ranged("max_lookin_seconds", "longest look-in, in seconds",
                                     defaults["max_lookin_seconds"]),
        "follow_up": follow_up,
        "consent": nullable(consent, "null: no consent, no checks"),
        "pauses": {"type": "array", "items": pause, "maxItems": MAX_ITEMS["pauses"],
                   "default": defaults["pauses"]},
        "skip_nights": {"type": "array", "items": skip_night,
                        "maxItems": MAX_ITEMS["skip_nights"],
                        "default": defaults["skip_nights"]},
        "night_boundary": hhmm("local time where one night ends and the next begins",
                               default=defaults["night_boundary"]),
        "effective_from": nullable(day(), "first night this version applies to; null = "
                                   "from tonight. Earlier nights keep the previous version."),
    }, ["check_times"], title="PlanDocument",
        description="A recipient's check plan: the JSON form of schedules (schedules/codec.py).")
