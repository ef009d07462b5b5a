"""The care plan: when a camera may be used, and the rules that keep a plan sane.

A plan is validated when it is constructed (directly or via ``parse_plan``), so code
that holds a ``Plan`` never has to re-check it. Validation collects every problem as a
``FieldError`` naming the dotted path in the JSON form, because a care manager fixes a
plan in one pass.

Overlap rules are computed on local wall-clock minutes within a night, i.e. from the
night boundary (minute 0) to the next boundary (minute 1440), ignoring weekdays (any two
check times could fall on the same night). A check at exactly the boundary is minute 0,
the start of the night. Windows ``[at - before, at + after]`` must stay within
``[0, 1440]`` (else they cross the boundary) and consecutive windows must not overlap;
touching (one closes when the next opens) is fine. Since no window crosses the boundary,
the cyclic pair (last check, first check of the next night) cannot overlap either.
On a spring-forward night the real time between two checks on either side of the gap
shrinks by the shift, so their windows may then overlap in real time (and checks inside
the gap coincide); see ``schedules.localtime``.

Lists are normalised on construction (check times sorted by time, pauses and skip nights
by date), so plans with the same content compare equal whatever the input order.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time

from schedules.errors import FieldError, PlanError
from schedules.localtime import zone

__all__ = [
    "DEFAULT_TZ",
    "CheckTime",
    "Consent",
    "FollowUpRule",
    "Pause",
    "Plan",
    "SkipNight",
    "validate_consent_active",
]

DEFAULT_TZ = "Europe/Stockholm"

MINUTES_PER_NIGHT = 24 * 60

#: Longest reason of a pause or skip-night, in characters: "paused: <reason>" must fit the
#: checks' 256-character reason column. Control characters are refused too (PostgreSQL
#: stores no NUL in text, and a reason is shown on one line).
MAX_REASON = 200

#: Most entries per list. The signed plan travels to the camera as one link message, which
#: the agent refuses above ``camera_agent.protocol.MAX_MESSAGE_BYTES`` (64 KiB); with every
#: list full and every reason at ``MAX_REASON`` of the widest characters (4 bytes each on
#: the wire) the message is about 70 % of that (tests/schedules/test_plan_limits.py), so a
#: valid plan always reaches its camera. Longer absences are one pause, not many nights.
MAX_ITEMS: dict[str, int] = {
    "check_times": 48,
    "pauses": 20,
    "skip_nights": 30,
}

# (low, high) inclusive, per numeric field; shared with the JSON codec's messages.
RANGES: dict[str, tuple[int, int]] = {
    "window_before_minutes": (0, 120),
    "window_after_minutes": (1, 120),
    "max_lookin_seconds": (10, 120),
    "follow_up.interval_minutes": (1, 120),
    "follow_up.max_follow_ups": (0, 5),
}


@dataclass(frozen=True)
class CheckTime:
    """An agreed local check time, on the nights whose evening falls on ``weekdays``."""

    at: time
    weekdays: frozenset[int] = frozenset(range(7))  # 0=Monday..6, of the night's evening

    def __post_init__(self) -> None:
        # Accept any collection of weekdays for convenience; store a frozenset.
        if isinstance(self.weekdays, set | list | tuple | range):
            object.__setattr__(self, "weekdays", frozenset(self.weekdays))


@dataclass(frozen=True)
class FollowUpRule:
    """How soon after a check a follow-up may look in again, and how many times."""

    interval_minutes: int = 15
    max_follow_ups: int = 1


@dataclass(frozen=True)
class Consent:
    """The recipient's consent; nights from ``given_on`` to ``valid_until`` inclusive."""

    given_on: date
    valid_until: date | None = None


@dataclass(frozen=True)
class Pause:
    """No checks on nights ``start``..``end`` inclusive (e.g. a hospital stay)."""

    start: date
    end: date
    reason: str


@dataclass(frozen=True)
class SkipNight:
    """No checks on one night (named by its evening date)."""

    night: date
    reason: str


@dataclass(frozen=True)
class Plan:
    """One recipient's check plan. Validated on construction; raises ``PlanError``."""

    check_times: tuple[CheckTime, ...]
    timezone: str = DEFAULT_TZ
    window_before_minutes: int = 15
    window_after_minutes: int = 15
    max_lookin_seconds: int = 30
    follow_up: FollowUpRule = field(default_factory=FollowUpRule)
    consent: Consent | None = None
    pauses: tuple[Pause, ...] = ()
    skip_nights: tuple[SkipNight, ...] = ()
    night_boundary: time = time(12, 0)
    effective_from: date | None = None

    def __post_init__(self) -> None:
        for name in ("check_times", "pauses", "skip_nights"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        errors = _type_errors(self)
        if not errors:
            errors = semantic_errors(
                check_times=list(enumerate(self.check_times)),
                timezone=self.timezone,
                before=self.window_before_minutes,
                after=self.window_after_minutes,
                numbers={
                    "max_lookin_seconds": self.max_lookin_seconds,
                    "follow_up.interval_minutes": self.follow_up.interval_minutes,
                    "follow_up.max_follow_ups": self.follow_up.max_follow_ups,
                },
                consent=self.consent,
                pauses=list(enumerate(self.pauses)),
                skip_nights=list(enumerate(self.skip_nights)),
                boundary=self.night_boundary,
                counts={name: len(getattr(self, name)) for name in MAX_ITEMS},
            )
        if errors:
            raise PlanError(errors)
        object.__setattr__(self, "check_times", tuple(sorted(self.check_times, key=_at_key)))
        object.__setattr__(
            self, "pauses", tuple(sorted(self.pauses, key=lambda p: (p.start, p.end, p.reason)))
        )
        object.__setattr__(
            self, "skip_nights", tuple(sorted(self.skip_nights, key=lambda s: (s.night, s.reason)))
        )

    @classmethod
    def _trusted(cls, values: Mapping[str, object]) -> Plan:
        """A plan from field values that were validated and normalised before, unchecked.

        Skips ``__post_init__`` (validation is most of the cost of decoding 10,000 stored
        plans). Only for ``schedules.codec.decode_trusted``, which rebuilds the values
        from a dict that ``plan_to_dict`` produced from a validated plan; anything else
        must construct a ``Plan`` normally. ``values`` must name every field.
        """
        if values.keys() != PLAN_FIELDS:
            raise TypeError(f"trusted plan fields {sorted(values)} are not {sorted(PLAN_FIELDS)}")
        plan = object.__new__(cls)
        plan.__dict__.update(values)  # frozen: no __setattr__, but a plain instance dict
        return plan

    def with_consent(self, consent: Consent | None) -> Plan:
        """This plan with ``consent`` instead of its own (the service's consent on record).

        Only the consent is checked: no other rule involves it, and the rest of this plan
        was validated when it was made, so the bulk planner pays microseconds, not a full
        validation, per recipient. Raises ``PlanError`` for a consent that ends before it
        begins."""
        if consent == self.consent:
            return self
        if consent is not None and not isinstance(consent, Consent):
            raise PlanError([_type_error("consent", "must be a Consent or None")])
        if consent is not None and consent.valid_until is not None \
                and consent.valid_until < consent.given_on:
            raise PlanError(semantic_errors(
                check_times=[], timezone=None, before=None, after=None, numbers={},
                consent=consent, pauses=[], skip_nights=[], boundary=None, counts={}))
        return Plan._trusted({**self.__dict__, "consent": consent})


#: The names of ``Plan``'s fields.
PLAN_FIELDS = frozenset(f.name for f in fields(Plan))


def _at_key(check: CheckTime) -> time:
    return check.at


def validate_consent_active(plan: Plan, on: date) -> bool:
    """Whether the plan's consent covers the night ``on`` (its evening date)."""
    consent = plan.consent
    if consent is None or on < consent.given_on:
        return False
    return consent.valid_until is None or on <= consent.valid_until


def minute_of_night(at: time, boundary: time) -> int:
    """Wall-clock minutes from the night boundary to ``at`` (0..1439)."""
    return (at.hour * 60 + at.minute - boundary.hour * 60 - boundary.minute) % MINUTES_PER_NIGHT


def hhmm(minutes: int) -> str:
    """A wall-clock minute count as ``HH:MM`` (wrapping at midnight), for messages."""
    minutes %= MINUTES_PER_NIGHT
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _is_date(value: object) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _time_error(path: str, value: object) -> FieldError | None:
    if not isinstance(value, time):
        return _type_error(path, "must be a time")
    if value.tzinfo is not None:
        return FieldError(path, "must be a local wall-clock time without time zone",
                          "time.local")
    if value.second or value.microsecond:
        return FieldError(path, "must be a whole minute (HH:MM)", "time.whole-minute")
    return None


def _type_error(path: str, message: str) -> FieldError:
    """``message`` is "must be <expected>"; code "type" passes <expected> (Python terms)."""
    return FieldError(path, message, "type", {"expected": message.removeprefix("must be ")})


def _type_errors(plan: Plan) -> list[FieldError]:
    """Type problems of a directly constructed plan (the codec guarantees these)."""
    errors: list[FieldError] = []

    def need(ok: bool, path: str, message: str) -> None:
        if not ok:
            errors.append(_type_error(path, message))

    if not isinstance(plan.check_times, tuple):
        errors.append(_type_error("check_times", "must be a tuple of CheckTime"))
    else:
        for i, check in enumerate(plan.check_times):
            if not isinstance(check, CheckTime):
                errors.append(_type_error(f"check_times.{i}", "must be a CheckTime"))
                continue
            if (err := _time_error(f"check_times.{i}.at", check.at)) is not None:
                errors.append(err)
            need(
                isinstance(check.weekdays, frozenset) and all(map(_is_int, check.weekdays)),
                f"check_times.{i}.weekdays",
                "must be a set of integers",
            )
    need(isinstance(plan.timezone, str), "timezone", "must be a string")
    for name in ("window_before_minutes", "window_after_minutes", "max_lookin_seconds"):
        need(_is_int(getattr(plan, name)), name, "must be an integer")
    if not isinstance(plan.follow_up, FollowUpRule):
        errors.append(_type_error("follow_up", "must be a FollowUpRule"))
    else:
        need(_is_int(plan.follow_up.interval_minutes), "follow_up.interval_minutes",
             "must be an integer")
        need(_is_int(plan.follow_up.max_follow_ups), "follow_up.max_follow_ups",
             "must be an integer")
    if plan.consent is not None:
        if not isinstance(plan.consent, Consent):
            errors.append(_type_error("consent", "must be a Consent or None"))
        else:
            need(_is_date(plan.consent.given_on), "consent.given_on", "must be a date")
            need(plan.consent.valid_until is None or _is_date(plan.consent.valid_until),
                 "consent.valid_until", "must be a date or None")
    if not isinstance(plan.pauses, tuple):
        errors.append(_type_error("pauses", "must be a tuple of Pause"))
    else:
        for i, pause in enumerate(plan.pauses):
            if not isinstance(pause, Pause):
                errors.append(_type_error(f"pauses.{i}", "must be a Pause"))
                continue
            need(_is_date(pause.start), f"pauses.{i}.start", "must be a date")
            need(_is_date(pause.end), f"pauses.{i}.end", "must be a date")
            need(isinstance(pause.reason, str), f"pauses.{i}.reason", "must be a string")
    if not isinstance(plan.skip_nights, tuple):
        errors.append(_type_error("skip_nights", "must be a tuple of SkipNight"))
    else:
        for i, skip in enumerate(plan.skip_nights):
            if not isinstance(skip, SkipNight):
                errors.append(_type_error(f"skip_nights.{i}", "must be a SkipNight"))
                continue
            need(_is_date(skip.night), f"skip_nights.{i}.night", "must be a date")
            need(isinstance(skip.reason, str), f"skip_nights.{i}.reason", "must be a string")
    if (err := _time_error("night_boundary", plan.night_boundary)) is not None:
        errors.append(err)
    need(plan.effective_from is None or _is_date(plan.effective_from), "effective_from",
         "must be a date or None")
    return errors


def semantic_errors(
    *,
    check_times: list[tuple[int, CheckTime]],
    timezone: str | None,
    before: int | None,
    after: int | None,
    numbers: dict[str, int | None],
    consent: Consent | None,
    pauses: list[tuple[int, Pause]],
    skip_nights: list[tuple[int, SkipNight]],
    boundary: time | None,
    counts: Mapping[str, int],
) -> list[FieldError]:
    """Value rules over well-typed parts; ``None`` parts (unparseable input) are skipped.

    Indices are those of the caller's input, so messages point at what the user wrote;
    ``counts`` are the lengths of the lists as given (``MAX_ITEMS`` keys), unparseable
    entries included.
    """
    errors: list[FieldError] = []
    ranged = {"window_before_minutes": before, "window_after_minutes": after, **numbers}
    for name, value in ranged.items():
        low, high = RANGES[name]
        if value is not None and not low <= value <= high:
            unit = "seconds" if name == "max_lookin_seconds" else (
                "follow-ups" if name.endswith("max_follow_ups") else "minutes")
            errors.append(FieldError(
                name, f"must be between {low} and {high} {unit}, got {value}", "range",
                {"low": low, "high": high, "unit": unit, "value": value}))
    if before is not None and not 0 <= before <= 120:
        before = None
    if after is not None and not 1 <= after <= 120:
        after = None

    if timezone is not None:
        try:
            zone(timezone)
        except ValueError:
            errors.append(FieldError("timezone", f'unknown time zone "{timezone}"',
                                     "timezone.unknown", {"timezone": timezone}))

    for i, check in check_times:
        if not check.weekdays:
            errors.append(FieldError(f"check_times.{i}.weekdays", "must not be empty", "empty"))
        for day in sorted(check.weekdays):
            if not 0 <= day <= 6:
                errors.append(FieldError(
                    f"check_times.{i}.weekdays",
                    f"weekday must be 0 (Monday) to 6 (Sunday), got {day}",
                    "weekday.range", {"value": day}))
    errors.extend(_check_time_errors(check_times, before, after, boundary))
    for name, count in sorted(counts.items()):
        if count > MAX_ITEMS[name]:
            errors.append(FieldError(
                name, f"must have at most {MAX_ITEMS[name]} entries, got {count}", "too-many",
                {"max": MAX_ITEMS[name], "value": count}))

    if consent is not None and consent.valid_until is not None \
            and consent.valid_until < consent.given_on:
        errors.append(FieldError(
            "consent.valid_until",
            f"must not be before given_on ({consent.given_on.isoformat()}), "
            f"got {consent.valid_until.isoformat()}",
            "consent.order",
            {"given_on": consent.given_on.isoformat(),
             "valid_until": consent.valid_until.isoformat()}))
    for i, pause in pauses:
        if pause.end < pause.start:
            errors.append(FieldError(
                f"pauses.{i}.end",
                f"must not be before start ({pause.start.isoformat()}), "
                f"got {pause.end.isoformat()}",
                "pause.order", {"start": pause.start.isoformat(), "end": pause.end.isoformat()}))
        errors.extend(_reason_errors(f"pauses.{i}.reason", pause.reason))
    for i, skip in skip_nights:
        errors.extend(_reason_errors(f"skip_nights.{i}.reason", skip.reason))
    return errors


def _reason_errors(path: str, reason: str) -> list[FieldError]:
    """A pause's or skip-night's reason: not blank, at most ``MAX_REASON``, one plain line."""
    errors: list[FieldError] = []
    if not reason.strip():
        errors.append(FieldError(path, "must not be empty", "empty"))
    if len(reason) > MAX_REASON:
        errors.append(FieldError(path, f"must be at most {MAX_REASON} characters", "too-long",
                                 {"max": MAX_REASON}))
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in reason):
        errors.append(FieldError(path, "must not contain control characters", "control-chars"))
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in reason):
        # a lone surrogate (JSON "\\ud800") has no UTF-8 form: such a plan could be stored
        # but never signed, so it would never reach the camera
        errors.append(FieldError(path, "must be valid Unicode text (no lone surrogates)",
                                 "unicode"))
    return errors


def _check_time_errors(
    check_times: list[tuple[int, CheckTime]],
    before: int | None,
    after: int | None,
    boundary: time | None,
) -> list[FieldError]:
    """Duplicates, windows crossing the night boundary, overlapping neighbours."""
    errors: list[FieldError] = []
    first_seen: dict[time, int] = {}
    unique: list[tuple[int, CheckTime]] = []
    for i, check in check_times:
        if check.at in first_seen:
            errors.append(FieldError(
                f"check_times.{i}.at",
                f"duplicate check time {check.at:%H:%M} "
                f"(same as check_times.{first_seen[check.at]})",
                "duplicate",
                {"time": f"{check.at:%H:%M}", "first": first_seen[check.at],
                 "first_number": first_seen[check.at] + 1}))
        else:
            first_seen[check.at] = i
            unique.append((i, check))
    if before is None or after is None or boundary is None:
        return errors

    def span(minute: int) -> str:
        start = boundary.hour * 60 + boundary.minute
        return f"{hhmm(start + minute - before)}–{hhmm(start + minute + after)}"

    in_night = sorted(((minute_of_night(c.at, boundary), i) for i, c in unique))
    for minute, i in in_night:
        if minute - before < 0 or minute + after > MINUTES_PER_NIGHT:
            errors.append(FieldError(
                f"check_times.{i}.at",
                f"window {span(minute)} crosses the night boundary {boundary:%H:%M}",
                "crosses-boundary", {"window": span(minute), "boundary": f"{boundary:%H:%M}"}))
    for (prev_minute, prev_i), (minute, i) in itertools.pairwise(in_night):
        if minute - before < prev_minute + after:
            errors.append(FieldError(
                f"check_times.{i}.at",
                f"window {span(minute)} overlaps the window {span(prev_minute)} of "
                f"check_times.{prev_i}; with {before} min before and {after} min after, "
                f"checks must be at least {before + after} minutes apart",
                "overlap",
                {"window": span(minute), "other_window": span(prev_minute), "other": prev_i,
                 "other_number": prev_i + 1, "before": before, "after": after,
                 "gap": before + after}))
    return errors
