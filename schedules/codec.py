"""The plan's JSON form: parsing with complete error reports, and canonical bytes.

The agent holds a plan signed by the server over ``canonical_json``, so equal plans must
give identical bytes: sorted keys, no whitespace, UTF-8, every field present (defaults
included) and lists in the plan's normalised order (check times by time, pauses and
skip nights by date). Input is strict (unknown keys are errors, times ``HH:MM``, dates
``YYYY-MM-DD``) so that what a care manager wrote is exactly what is enforced.

A plan stored in ``plan_to_dict``'s form after it was validated can be read back without
validating it again (``decode_trusted``): the bulk planner's fast path.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Collection, Mapping
from datetime import date, time
from typing import Any, TypeVar

from schedules.canonical import canonical
from schedules.errors import FieldError, PlanError
from schedules.plan import (
    DEFAULT_TZ,
    MAX_ITEMS,
    CheckTime,
    Consent,
    FollowUpRule,
    Pause,
    Plan,
    SkipNight,
    semantic_errors,
)

__all__ = ["TIME_PATTERN", "canonical_json", "decode_trusted", "parse_plan", "plan_to_dict"]

T = TypeVar("T")

#: A local wall-clock time as the JSON form writes it: "HH:MM", 00:00 to 23:59.
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_TIME_RE = re.compile(TIME_PATTERN)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

_PLAN_KEYS = {
    "timezone", "check_times", "window_before_minutes", "window_after_minutes",
    "max_lookin_seconds", "follow_up", "consent", "pauses", "skip_nights",
    "night_boundary", "effective_from",
}


class _Reader:
    """Collects errors while converting JSON values; failed values read as ``None``."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, path: str, message: str, code: str,
             params: Mapping[str, str | int] | None = None) -> None:
        self.errors.append(FieldError(path, message, code, dict(params or {})))

    def obj(self, value: object, path: str, allowed: Collection[str],
            required: Collection[str] = ()) -> Mapping[str, object] | None:
        if not isinstance(value, Mapping):
            self.fail(path, "must be an object", "type.object")
            return None
        for key in sorted(map(str, value.keys())):
            if key not in allowed:
                self.fail(_join(path, key), "unknown key", "unknown-key", {"key": key})
        for key in sorted(required):
            if key not in value:
                self.fail(_join(path, key), "is required", "required", {"key": key})
        return value

    def int_(self, value: object, path: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be an integer, got {_show(value)}", "type.integer",
                      {"value": _show(value)})
            return None
        return value

    def str_(self, value: object, path: str) -> str | None:
        if not isinstance(value, str):
            self.fail(path, f"must be a string, got {_show(value)}", "type.string",
                      {"value": _show(value)})
            return None
        return value

    def time_(self, value: object, path: str) -> time | None:
        if isinstance(value, str) and _TIME_RE.fullmatch(value) is not None:
            return _time(value)
        self.fail(path, f'must be a time "HH:MM" from 00:00 to 23:59, got {_show(value)}',
                  "time.format", {"value": _show(value)})
        return None

    def date_(self, value: object, path: str) -> date | None:
        if isinstance(value, str) and _DATE_RE.fullmatch(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.fail(path, f'must be a date "YYYY-MM-DD", got {_show(value)}', "date.format",
                  {"value": _show(value)})
        return None

    def list_(self, value: object, path: str,
              item: Callable[[object, str], T | None]) -> list[tuple[int, T]] | None:
        if not isinstance(value, list):
            self.fail(path, f"must be a list, got {_show(value)}", "type.list",
                      {"value": _show(value)})
            return None
        parsed = [(i, item(v, f"{path}.{i}")) for i, v in enumerate(value)]
        return [(i, v) for i, v in parsed if v is not None]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if _jsonable(value) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def parse_plan(data: object) -> Plan:
    """A ``Plan`` from its JSON dict form; raises ``PlanError`` listing every problem."""
    r = _Reader()
    top = r.obj(data, "", _PLAN_KEYS, {"check_times"})
    if top is None:
        raise PlanError(r.errors)

    def opt(key: str, read: Callable[[object, str], T | None], default: T) -> T | None:
        return read(top[key], key) if key in top else default

    def check_time(value: object, path: str) -> CheckTime | None:
        obj = r.obj(value, path, {"at", "weekdays"}, {"at"})
        if obj is None:
            return None
        at = r.time_(obj["at"], f"{path}.at") if "at" in obj else None
        weekdays = frozenset(range(7))
        if "weekdays" in obj:
            raw = obj["weekdays"]
            days = r.list_(raw, f"{path}.weekdays", r.int_)
            # Keep what parsed so later checks still report on this entry; an entirely
            # unreadable list has been reported and stands in as "every day".
            if days or raw == []:
                weekdays = frozenset(d for _, d in days or [])
        if at is None:
            return None
        return CheckTime(at, weekdays)

    def follow_up(value: object, path: str) -> FollowUpRule | None:
        obj = r.obj(value, path, {"interval_minutes", "max_follow_ups"})
        if obj is None:
            return None
        interval = r.int_(obj["interval_minutes"], f"{path}.interval_minutes") \
            if "interval_minutes" in obj else 15
        most = r.int_(obj["max_follow_ups"], f"{path}.max_follow_ups") \
            if "max_follow_ups" in obj else 1
        if interval is None or most is None:
            return None
        return FollowUpRule(interval, most)

    def consent(value: object, path: str) -> Consent | None:
        obj = r.obj(value, path, {"given_on", "valid_until"}, {"given_on"})
        if obj is None:
            return None
        given = r.date_(obj["given_on"], f"{path}.given_on") if "given_on" in obj else None
        until_raw = obj.get("valid_until")
        until = None if until_raw is None else r.date_(until_raw, f"{path}.valid_until")
        if given is None or (until_raw is not None and until is None):
            return None
        return Consent(given, until)

    def reason(obj: Mapping[str, object], path: str) -> str | None:
        return r.str_(obj["reason"], f"{path}.reason") if "reason" in obj else None

    def pause(value: object, path: str) -> Pause | None:
        obj = r.obj(value, path, {"start", "end", "reason"}, {"start", "end", "reason"})
        if obj is None:
            return None
        start = r.date_(obj["start"], f"{path}.start") if "start" in obj else None
        end = r.date_(obj["end"], f"{path}.end") if "end" in obj else None
        why = reason(obj, path)
        if start is None or end is None or why is None:
            return None
        return Pause(start, end, why)

    def skip_night(value: object, path: str) -> SkipNight | None:
        obj = r.obj(value, path, {"night", "reason"}, {"night", "reason"})
        if obj is None:
            return None
        night = r.date_(obj["night"], f"{path}.night") if "night" in obj else None
        why = reason(obj, path)
        if night is None or why is None:
            return None
        return SkipNight(night, why)

    def nullable(read: Callable[[object, str], T | None]) -> Callable[[object, str], T | None]:
        return lambda value, path: None if value is None else read(value, path)

    checks = r.list_(top["check_times"], "check_times", check_time) \
        if "check_times" in top else None
    timezone = opt("timezone", r.str_, DEFAULT_TZ)
    before = opt("window_before_minutes", r.int_, 15)
    after = opt("window_after_minutes", r.int_, 15)
    lookin = opt("max_lookin_seconds", r.int_, 30)
    rule = opt("follow_up", follow_up, FollowUpRule())
    agreed = opt("consent", nullable(consent), None)
    no_pauses: list[tuple[int, Pause]] = []
    no_skips: list[tuple[int, SkipNight]] = []
    pauses = opt("pauses", lambda v, p: r.list_(v, p, pause), no_pauses)
    skips = opt("skip_nights", lambda v, p: r.list_(v, p, skip_night), no_skips)
    boundary = opt("night_boundary", r.time_, time(12, 0))
    effective = opt("effective_from", nullable(r.date_), None)

    r.errors.extend(semantic_errors(
        check_times=checks or [],
        timezone=timezone,
        before=before,
        after=after,
        numbers={
            "max_lookin_seconds": lookin,
            "follow_up.interval_minutes": rule.interval_minutes if rule else None,
            "follow_up.max_follow_ups": rule.max_follow_ups if rule else None,
        },
        consent=agreed,
        pauses=pauses or [],
        skip_nights=skips or [],
        boundary=boundary,
        counts={name: len(value) for name in MAX_ITEMS
                if isinstance(value := top.get(name), list)},
    ))
    if r.errors:
        raise PlanError(r.errors)
    assert checks is not None and timezone is not None and before is not None
    assert after is not None and lookin is not None and rule is not None
    assert pauses is not None and skips is not None and boundary is not None
    return Plan(
        check_times=tuple(c for _, c in checks),
        timezone=timezone,
        window_before_minutes=before,
        window_after_minutes=after,
        max_lookin_seconds=lookin,
        follow_up=rule,
        consent=agreed,
        pauses=tuple(p for _, p in pauses),
        skip_nights=tuple(s for _, s in skips),
        night_boundary=boundary,
        effective_from=effective,
    )


def _hhmm(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def plan_to_dict(plan: Plan) -> dict[str, object]:
    """The JSON-able dict form, all keys present; ``parse_plan`` inverts it exactly."""
    consent = plan.consent
    return {
        "timezone": plan.timezone,
        "check_times": [
            {"at": _hhmm(c.at), "weekdays": sorted(c.weekdays)} for c in plan.check_times
        ],
        "window_before_minutes": plan.window_before_minutes,
        "window_after_minutes": plan.window_after_minutes,
        "max_lookin_seconds": plan.max_lookin_seconds,
        "follow_up": {
            "interval_minutes": plan.follow_up.interval_minutes,
            "max_follow_ups": plan.follow_up.max_follow_ups,
        },
        "consent": None if consent is None else {
            "given_on": consent.given_on.isoformat(),
            "valid_until": None if consent.valid_until is None
            else consent.valid_until.isoformat(),
        },
        "pauses": [
            {"start": p.start.isoformat(), "end": p.end.isoformat(), "reason": p.reason}
            for p in plan.pauses
        ],
        "skip_nights": [
            {"night": s.night.isoformat(), "reason": s.reason} for s in plan.skip_nights
        ],
        "night_boundary": _hhmm(plan.night_boundary),
        "effective_from": None if plan.effective_from is None
        else plan.effective_from.isoformat(),
    }


def decode_trusted(data: Mapping[str, Any], *,
                   fallback: Callable[[Any], Plan] = parse_plan) -> Plan:
    """``parse_plan`` for a dict that ``plan_to_dict`` produced, without validating again.

    Only for plans that were validated before they were stored in ``plan_to_dict``'s
    complete, normalised form (e.g. the service's stored plan versions): that form is
    rebuilt field by field, which gives the very plan ``parse_plan`` would, at a fraction
    of the cost (validation is most of it). Anything not in that complete form (a missing
    or unknown key, a value of the wrong shape) goes to ``fallback`` (``parse_plan``, or
    a caching wrapper of it) and may raise ``PlanError``. A complete dict with values that
    were never validated is not caught: never pass one that did not come from
    ``plan_to_dict``.
    """
    if not isinstance(data, Mapping) or data.keys() != _PLAN_KEYS:
        return fallback(data)
    try:
        consent = data["consent"]
        follow = data["follow_up"]
        values = {
            "check_times": tuple(_check_time(c["at"], tuple(c["weekdays"]))
                                 for c in data["check_times"]),
            "timezone": data["timezone"],
            "window_before_minutes": data["window_before_minutes"],
            "window_after_minutes": data["window_after_minutes"],
            "max_lookin_seconds": data["max_lookin_seconds"],
            "follow_up": _follow_up(follow["interval_minutes"], follow["max_follow_ups"]),
            "consent": None if consent is None else Consent(
                date.fromisoformat(consent["given_on"]),
                None if consent["valid_until"] is None
                else date.fromisoformat(consent["valid_until"])),
            "pauses": tuple(Pause(date.fromisoformat(p["start"]), date.fromisoformat(p["end"]),
                                  p["reason"]) for p in data["pauses"]),
            "skip_nights": tuple(SkipNight(date.fromisoformat(k["night"]), k["reason"])
                                 for k in data["skip_nights"]),
            "night_boundary": _time(data["night_boundary"]),
            "effective_from": None if data["effective_from"] is None
            else date.fromisoformat(data["effective_from"]),
        }
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return fallback(data)
    return Plan._trusted(values)


# Stored plans share their parts (immutable values): build each once, allocate less.
@functools.lru_cache(maxsize=2048)
def _time(text: str) -> time:
    """A time from "HH:MM"; ``ValueError`` if ``text`` does not match ``TIME_PATTERN``."""
    if _TIME_RE.fullmatch(text) is None:
        raise ValueError(f"not a time HH:MM: {text!r}")
    return time(int(text[:2]), int(text[3:]))


@functools.lru_cache(maxsize=8192)
def _check_time(at: str, weekdays: tuple[int, ...]) -> CheckTime:
    return CheckTime(_time(at), frozenset(weekdays))


@functools.lru_cache(maxsize=1024)
def _follow_up(interval: int, most: int) -> FollowUpRule:
    return FollowUpRule(interval, most)


def forget_decoded() -> None:
    """Empty ``decode_trusted``'s caches of shared plan parts (benchmarks measure cold)."""
    for cached in (_time, _check_time, _follow_up):
        cached.cache_clear()


def canonical_json(plan: Plan) -> bytes:
    """Stable bytes for signing: sorted keys, no whitespace, UTF-8; equal plans, equal bytes."""
    data = plan_to_dict(plan)
    checks = data["check_times"]
    assert isinstance(checks, list)
    data["check_times"] = sorted(checks, key=lambda c: str(c["at"]))
    return canonical(data)
