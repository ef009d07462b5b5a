"""Validation errors for care plans.

A care manager fixes a plan in one go, so validation reports every problem found,
each tied to the dotted path of the offending field in the plan's JSON form.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem in a plan: where (dotted JSON path, e.g. ``check_times.1.at``) and what.

    ``message`` is English, for logs and API clients. ``code`` is a stable machine code
    (e.g. ``"range"``, ``"overlap"``; see ``CODES``) and ``params`` the values the message
    interpolates, so a user interface can show the message in its own language.
    """

    field: str
    message: str
    code: str = ""
    params: Mapping[str, str | int] = dataclasses.field(default_factory=dict, hash=False)

    def __str__(self) -> str:
        return f"{self.field or '<plan>'}: {self.message}"


#: Every code ``schedules`` gives a ``FieldError``, with the params it passes.
CODES: Mapping[str, tuple[str, ...]] = {
    "type": ("expected",),  # a directly constructed plan holds a value of the wrong type
    "type.object": (),
    "type.integer": ("value",),
    "type.string": ("value",),
    "type.list": ("value",),
    "unknown-key": ("key",),
    "required": ("key",),
    "time.format": ("value",),
    "time.local": (),
    "time.whole-minute": (),
    "date.format": ("value",),
    "range": ("low", "high", "unit", "value"),
    "timezone.unknown": ("timezone",),
    "empty": (),
    "weekday.range": ("value",),
    "duplicate": ("time", "first", "first_number"),
    "crosses-boundary": ("window", "boundary"),
    "overlap": ("window", "other_window", "other", "other_number", "before", "after", "gap"),
    "consent.order": ("given_on", "valid_until"),
    "pause.order": ("start", "end"),
    "too-long": ("max",),
    "control-chars": (),
    "unicode": (),
    "too-many": ("max", "value"),  # a list longer than MAX_ITEMS allows
}

#: Values of the ``unit`` param of code ``"range"``.
UNITS = ("minutes", "seconds", "follow-ups")


class PlanError(ValueError):
    """A plan is invalid; ``errors`` lists all problems, not just the first."""

    errors: list[FieldError]

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("invalid plan: " + "; ".join(str(e) for e in self.errors))
