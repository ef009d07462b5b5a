"""The check state machine on its own: every path ends in a recorded state with a reason."""

from __future__ import annotations

import itertools

import pytest

from supervision import checks
from supervision.checks import ENDED, Outcome, State, TransitionError


def outcome(state: State, result: Outcome, so_far: int = 0, most: int = 1) -> checks.Transition:
    return checks.record_outcome(state, result, follow_ups_so_far=so_far, max_follow_ups=most,
                                 interval_minutes=15)


def test_calm_is_done_without_alert() -> None:
    step = outcome(State.OPEN, Outcome.CALM)
    assert (step.state, step.alert, step.follow_up_in_minutes) == (State.DONE, None, None)


def test_not_visible_follows_up_then_dispatches() -> None:
    first = outcome(State.OPEN, Outcome.NOT_VISIBLE, so_far=0, most=1)
    assert first.state is State.FOLLOW_UP and first.follow_up_in_minutes == 15
    assert first.alert is None
    last = outcome(State.OPEN, Outcome.NOT_VISIBLE, so_far=1, most=1)
    assert last.state is State.DISPATCHED and last.alert is not None
    assert last.reason == "not-visible-after-follow-up"


def test_no_follow_ups_allowed_dispatches_at_once() -> None:
    step = outcome(State.OPEN, Outcome.NOT_VISIBLE, so_far=0, most=0)
    assert step.state is State.DISPATCHED


def test_needs_help_has_the_highest_priority() -> None:
    help_ = outcome(State.OPEN, Outcome.NEEDS_HELP)
    tech = outcome(State.OPEN, Outcome.TECHNICAL_FAILURE)
    missed = checks.close_window(State.OPEN)
    offline = checks.agent_offline(State.PLANNED)
    assert help_.alert and tech.alert and missed.alert and offline.alert
    assert help_.alert.priority < tech.alert.priority <= missed.alert.priority
    assert offline.state is State.DISPATCHED and offline.reason == "camera-offline"


def test_window_closing_misses_planned_and_open_checks() -> None:
    for state in (State.PLANNED, State.OPEN):
        step = checks.close_window(state)
        assert step.state is State.MISSED and step.alert is not None
    assert checks.close_window(State.OPEN, missed_action="alert").alert.reason == "missed-alert"


@pytest.mark.parametrize("state", sorted(ENDED))
def test_ended_checks_cannot_move(state: State) -> None:
    for result in Outcome:
        with pytest.raises(TransitionError):
            outcome(state, result)
    for move in (checks.open_window, checks.close_window, checks.agent_offline):
        with pytest.raises(TransitionError):
            move(state)
    with pytest.raises(TransitionError):
        checks.skip(state, "paused")
    with pytest.raises(TransitionError):
        checks.end_early(state, "archived")


def test_ending_early_skips_planned_and_open_checks_without_alert() -> None:
    """Archiving or a withdrawal: nobody is to be seen, so nobody is sent."""
    for state in (State.PLANNED, State.OPEN):
        for reason in ("archived", "no-consent"):
            step = checks.end_early(state, reason)
            assert step.state is State.SKIPPED and step.reason == reason
            assert step.alert is None and step.follow_up_in_minutes is None


def test_outcomes_need_an_open_window() -> None:
    for result in Outcome:
        with pytest.raises(TransitionError):
            outcome(State.PLANNED, result)


def test_every_path_from_planned_ends() -> None:
    """Walk all event sequences of length <= 3: each either ends or stays planned/open."""
    events = ["open", "close", "offline", "skip", *Outcome]
    for path in itertools.product(events, repeat=3):
        state = State.PLANNED
        for event in path:
            try:
                if event == "open":
                    state = checks.open_window(state).state
                elif event == "close":
                    state = checks.close_window(state).state
                elif event == "offline":
                    state = checks.agent_offline(state).state
                elif event == "skip":
                    state = checks.skip(state, "paused").state
                else:
                    state = outcome(state, Outcome(event)).state
            except TransitionError:
                pass
        assert state in ENDED or state in (State.PLANNED, State.OPEN)
        # and from wherever it stopped, closing the window always ends it
        if state not in ENDED:
            assert checks.close_window(state).state in ENDED
