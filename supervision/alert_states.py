"""The alert state machine: pure, no I/O, beside the check state machine.

    new -> acknowledged -> on-the-way -> arrived -> resolved   (steps may be skipped
    forwards: a patrol already at the door goes from new to arrived); an unacknowledged
    new alert is escalated once.

Callers write a transition as a guarded update (``WHERE state = :expected``), so of two
patrol members pressing at once exactly one moves the alert and the other is told.
"""

from __future__ import annotations

from enum import StrEnum

from supervision.checks import TransitionError


class AlertState(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    ON_THE_WAY = "on-the-way"
    ARRIVED = "arrived"
    RESOLVED = "resolved"


ORDER = (AlertState.NEW, AlertState.ACKNOWLEDGED, AlertState.ON_THE_WAY, AlertState.ARRIVED,
         AlertState.RESOLVED)
ACTIVE = frozenset(ORDER[:-1])
#: what the patrol may move an alert to (not back to new)
TARGETS = frozenset(ORDER[1:])

#: alert reasons that are a notice only: nobody is sent, so no door code goes with them
NOTICE_ONLY = frozenset({"missed-alert"})


def advance(current: AlertState, wanted: AlertState) -> AlertState:
    """The patrol moves an alert forwards; anything else is refused."""
    if wanted not in TARGETS or ORDER.index(wanted) <= ORDER.index(current):
        raise TransitionError(f"cannot move an alert from {current} to {wanted}")
    return wanted


def may_escalate(current: AlertState, escalated: bool) -> bool:
    """Only a new alert nobody has acknowledged is escalated, and only once."""
    return current is AlertState.NEW and not escalated


def sends_patrol(reason: str) -> bool:
    """Whether the alert sends someone to the home (and so may carry the access info)."""
    return reason not in NOTICE_ONLY
