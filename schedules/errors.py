"""Validation errors for care plans.

A care manager fixes a plan in one go, so validation reports every problem found,
each tied to the dotted path of the offending field in the plan's JSON form.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem in a plan: where (dotted JSON path, e.g. ``check_times.1.at``) and what."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field or '<plan>'}: {self.message}"


class PlanError(ValueError):
    """A plan is invalid; ``errors`` lists all problems, not just the first."""

    errors: list[FieldError]

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("invalid plan: " + "; ".join(str(e) for e in self.errors))
