"""The check state machine: pure, no I/O. Every check ends in a recorded state.

    planned -> open -> done | follow-up | dispatched | missed
    planned -> skipped (paused, skip-night, no consent) | dispatched (agent offline)
    planned | open -> skipped (ended early: recipient archived, consent withdrawn)

A transition returns the new state, the reason, and the effects the caller must persist
in the same transaction (a follow-up check, a dispatch alert).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    PLANNED = "planned"
    OPEN = "open"
    DONE = "done"
    FOLLOW_UP = "follow-up"
    DISPATCHED = "dispatched"
    MISSED = "missed"
    SKIPPED = "skipped"


class Outcome(StrEnum):
    CALM = "calm"
    NOT_VISIBLE = "not-visible"
    NEEDS_HELP = "needs-help"
    TECHNICAL_FAILURE = "technical-failure"


ENDED = frozenset({State.DONE, State.FOLLOW_UP, State.DISPATCHED, State.MISSED, State.SKIPPED})

#: Alert priorities: lower is more urgent.
PRIORITY_NEEDS_HELP = 1
PRIORITY_TECHNICAL = 2
PRIORITY_NOT_SEEN = 2
PRIORITY_MISSED = 3
PRIORITY_INFO = 4


class TransitionError(ValueError):
    pass


@dataclass(frozen=True)
class AlertEffect:
    priority: int
    reason: str


@dataclass(frozen=True)
class Transition:
    state: State
    reason: str
    alert: AlertEffect | None = None
    follow_up_in_minutes: int | None = None


def open_window(state: State) -> Transition:
    if state is not State.PLANNED:
        raise TransitionError(f"cannot open a check that is {state}")
    return Transition(State.OPEN, "window-opened")


def skip(state: State, reason: str) -> Transition:
    if state is not State.PLANNED:
        raise TransitionError(f"cannot skip a check that is {state}")
    return Transition(State.SKIPPED, reason)


def end_early(state: State, reason: str) -> Transition:
    """A planned or open check that must not happen any more (its recipient archived, or
    consent withdrawn): skipped with the reason and no alert, since nobody is to be seen."""
    if state not in (State.PLANNED, State.OPEN):
        raise TransitionError(f"cannot end a check that is {state}")
    return Transition(State.SKIPPED, reason)


def rederive(state: State, skip_reason: str | None, *, skipped_by_planner: bool) -> Transition:
    """A plan changed before the check opened: it becomes planned, or skipped with the
    plan's reason. Only a planned check, or one the planner itself skipped (a pause that
    has been lifted), is re-derived; a check anyone else ended stays as it ended."""
    if not (state is State.PLANNED or (state is State.SKIPPED and skipped_by_planner)):
        raise TransitionError(f"cannot re-plan a check that is {state}")
    if skip_reason is not None:
        return Transition(State.SKIPPED, skip_reason)
    return Transition(State.PLANNED, "")


def record_outcome(state: State, outcome: Outcome, *, follow_ups_so_far: int,
                   max_follow_ups: int, interval_minutes: int) -> Transition:
    """What staff recorded after a look-in."""
    if state is not State.OPEN:
        raise TransitionError(f"cannot record an outcome on a check that is {state}")
    if outcome is Outcome.CALM:
        return Transition(State.DONE, "calm")
    if outcome is Outcome.NEEDS_HELP:
        return Transition(State.DISPATCHED, "needs-help",
                          AlertEffect(PRIORITY_NEEDS_HELP, "needs-help"))
    if outcome is Outcome.TECHNICAL_FAILURE:
        return Transition(State.DISPATCHED, "technical-failure",
                          AlertEffect(PRIORITY_TECHNICAL, "technical-failure"))
    if follow_ups_so_far < max_follow_ups:
        return Transition(State.FOLLOW_UP, "not-visible", follow_up_in_minutes=interval_minutes)
    return Transition(State.DISPATCHED, "not-visible-after-follow-up",
                      AlertEffect(PRIORITY_NOT_SEEN, "not-visible"))


def close_window(state: State, *, missed_action: str = "dispatch") -> Transition:
    """The window passed with no outcome: missed, with an alert for a physical visit."""
    if state not in (State.PLANNED, State.OPEN):
        raise TransitionError(f"cannot close a check that is {state}")
    if missed_action == "dispatch":
        return Transition(State.MISSED, "window-closed", AlertEffect(PRIORITY_MISSED, "missed"))
    return Transition(State.MISSED, "window-closed", AlertEffect(PRIORITY_INFO, "missed-alert"))


def agent_offline(state: State) -> Transition:
    """No heartbeat when the window opens: send someone now rather than wait it out."""
    if state not in (State.PLANNED, State.OPEN):
        raise TransitionError(f"cannot fail a check that is {state}")
    return Transition(State.DISPATCHED, "camera-offline",
                      AlertEffect(PRIORITY_TECHNICAL, "camera-offline"))
