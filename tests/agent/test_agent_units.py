"""Fast checks of the agent's pure parts, with real keys and real plans: the gate's
follow-up allowance and limits, the plan store, backoff, configuration validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import schedules
from camera_agent.backoff import backoff
from camera_agent.config import AgentConfig
from camera_agent.gate import STOP_MAX_LOOKIN, STOP_TICKET, STOP_WINDOW, Gate, PlanStore
from camera_agent.identity import Identity
from camera_agent.protocol import Refusal, Ticket, encode_ticket, new_nonce, plan_message
from schedules.reason import Reason

CAMERA = "cam-unit"
SERVICE = Ed25519PrivateKey.generate()
CHECK_AT = datetime(2026, 1, 14, 1, 0, tzinfo=UTC)  # 02:00 in Stockholm, a Wednesday night


def plan(max_lookin: int = 30) -> schedules.Plan:
    return schedules.Plan(
        check_times=(schedules.CheckTime(at=CHECK_AT.astimezone(
            ZoneInfo("Europe/Stockholm")).time()),),
        consent=schedules.Consent(given_on=CHECK_AT.date() - timedelta(days=30)),
        max_lookin_seconds=max_lookin,
        follow_up=schedules.FollowUpRule(interval_minutes=15, max_follow_ups=1))


def signed(p: schedules.Plan, key: Ed25519PrivateKey = SERVICE) -> tuple[str, str]:
    raw = schedules.canonical_json(p)
    return raw.decode(), Identity(key).sign(plan_message(CAMERA, raw))


def gate_at(instant: datetime, p: schedules.Plan | None = None,
            started: datetime | None = None) -> Gate:
    now = [(started or instant - timedelta(minutes=1)).timestamp()]
    store = PlanStore(CAMERA, SERVICE.public_key(), None)
    store.accept(*signed(p or plan()))
    gate = Gate(CAMERA, SERVICE.public_key(), store, clock=lambda: now[0])
    now[0] = instant.timestamp()
    return gate


def token(at: datetime, seconds: float = 30, follow_ups: int = 0) -> str:
    ticket = Ticket(check="1", camera=CAMERA, viewer="natt", session="s", follow_ups=follow_ups,
                    not_before=at.timestamp(), not_after=at.timestamp() + seconds,
                    nonce=new_nonce())
    return encode_ticket(ticket, SERVICE.sign)


def test_follow_up_allowance_extends_the_window_only_for_follow_ups() -> None:
    late = CHECK_AT + timedelta(minutes=20)  # window closed at +15
    with pytest.raises(Refusal) as refused:
        gate_at(late).admit(token(late))
    assert refused.value.reason == "outside-window"
    assert gate_at(late).admit(token(late, follow_ups=1)).ticket.follow_ups == 1
    with pytest.raises(Refusal) as limit:
        gate_at(late).admit(token(late, follow_ups=2))
    assert limit.value.reason == "follow-up-limit"
    beyond = CHECK_AT + timedelta(minutes=46)  # past 15 + 1 * (15 + 15)
    with pytest.raises(Refusal):
        gate_at(beyond).admit(token(beyond, follow_ups=1))


def test_stop_is_the_ticket_expiry_or_the_plans_maximum_whichever_first() -> None:
    at = CHECK_AT + timedelta(minutes=1)
    assert gate_at(at).admit(token(at, seconds=20)).stop_at == at.timestamp() + 20
    long = gate_at(at, plan(max_lookin=30)).admit(token(at, seconds=120))
    assert long.stop_at == at.timestamp() + 30


def test_stop_is_at_the_end_of_the_window_that_allowed_it() -> None:
    """Issue 9: the device stops at the window's close even if the ticket runs longer."""
    closes = CHECK_AT + timedelta(minutes=15)
    at = closes - timedelta(seconds=8)
    admission = gate_at(at).admit(token(at, seconds=30))
    assert admission.stop_at == closes.timestamp()
    assert admission.stop_reason == Reason("expired", STOP_WINDOW)
    # a follow-up: the window extended by 1 * (interval 15 + after 15) minutes
    until = closes + timedelta(minutes=30)
    late = until - timedelta(seconds=5)
    follow_up = gate_at(late).admit(token(late, seconds=30, follow_ups=1))
    assert follow_up.stop_at == until.timestamp() and follow_up.stop_why == STOP_WINDOW


def test_the_first_of_the_three_limits_is_named() -> None:
    closes = CHECK_AT + timedelta(minutes=15)
    at = closes - timedelta(seconds=60)
    by_ticket = gate_at(at).admit(token(at, seconds=20))
    assert (by_ticket.stop_at, by_ticket.stop_why) == (at.timestamp() + 20, STOP_TICKET)
    assert by_ticket.stop_reason == Reason("expired")  # the plain end, as before
    by_plan = gate_at(at, plan(max_lookin=40)).admit(token(at, seconds=100))
    assert (by_plan.stop_at, by_plan.stop_why) == (at.timestamp() + 40, STOP_MAX_LOOKIN)
    # a ticket the service capped at the window's end: named as the ticket's expiry
    capped = gate_at(at, plan(max_lookin=90)).admit(token(at, seconds=60))
    assert (capped.stop_at, capped.stop_why) == (closes.timestamp(), STOP_TICKET)


def test_one_lookin_at_a_time_until_released() -> None:
    at = CHECK_AT + timedelta(minutes=1)
    gate = gate_at(at)
    first = gate.admit(token(at))
    with pytest.raises(Refusal) as busy:
        gate.admit(token(at))
    assert busy.value.reason == "busy"
    gate.release(first)
    gate.admit(token(at))


def test_ticket_older_than_the_agent_process_is_refused() -> None:
    at = CHECK_AT + timedelta(minutes=1)
    gate = gate_at(at, started=at + timedelta(seconds=5))
    with pytest.raises(Refusal) as refused:
        gate.admit(token(at - timedelta(seconds=1), seconds=60))
    assert refused.value.reason == "issued-before-start"


def test_plan_store_keeps_the_last_good_plan_on_disk_and_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    store = PlanStore(CAMERA, SERVICE.public_key(), path)
    assert store.accept(*signed(plan()), version=3)
    with pytest.raises(Refusal) as forged:
        store.accept(*signed(plan(max_lookin=60), Ed25519PrivateKey.generate()), version=4)
    assert forged.value.reason == "plan-bad-signature"
    assert store.version == 3 and store.plan is not None and store.plan.max_lookin_seconds == 30
    again = PlanStore(CAMERA, SERVICE.public_key(), path)
    assert again.version == 3
    # a plan signed for another camera does not verify for this one
    other = PlanStore("cam-other", SERVICE.public_key(), None)
    with pytest.raises(Refusal):
        other.accept(*signed(plan()))


def test_backoff_is_jittered_growing_and_capped() -> None:
    delays = [[backoff(failures, 0.5, cap=30) for _ in range(200)]
              for failures in range(1, 41)]
    assert all(0 < d <= 30 for row in delays for d in row)
    assert max(delays[0]) <= 0.5 and min(delays[-1]) >= 15
    assert len({round(d, 6) for d in delays[10]}) > 100, "jittered"


def config_text(**extra: str) -> str:
    base = {"server_url": '"http://127.0.0.1:1"', "camera_id": '"c"',
            "server_public_key": '"k"'}
    base.update(extra)
    return "\n".join(f"{k} = {v}" for k, v in base.items()) + "\n"


@pytest.mark.parametrize("setting", [
    {"masks": "[[[0, 0], [1, 0]]]"},  # two points are no polygon
    {"masks": "[[[0, 0], [9, 0], [0, 1]]]"},  # not normalised
    {"codec": '"mjpeg"'},
    {"fps": "0"},
    {"width": "8"},
    {"colour": '"red"'},  # unknown setting
])
def test_bad_configuration_stops_the_agent_at_start(tmp_path: Path,
                                                    setting: dict[str, str]) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(config_text(**setting))
    with pytest.raises(ValueError):
        AgentConfig.load(path)


def test_configuration_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(config_text(
        masks="[[[0, 0], [0.5, 0], [0.5, 0.5]]]", codec='"H264"', enhance="false",
        ice_servers='[{urls = "stun:stun.example:3478"}]',
        on_lookin_start='"/usr/local/bin/lamp on"'))
    config = AgentConfig.load(path)
    assert config.codec == "h264" and config.enhance is False
    assert config.masks == [[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5)]]
    path.write_text(config.dump(state_dir="."))
    assert AgentConfig.load(path) == config
