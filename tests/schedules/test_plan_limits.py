"""A valid plan always fits the agent link (issue 9: a saved plan must reach its camera).

The lists are bounded (``MAX_ITEMS``) so that the largest valid plan, signed and wrapped in
the ``plan`` message exactly as the service sends it, stays well under the size the agent
accepts (``MAX_MESSAGE_BYTES``, its WebSocket ``max_size``); one entry more is a 422 with
code ``too-many``.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from datetime import date
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import camera_agent.link
from camera_agent.identity import Identity
from camera_agent.protocol import MAX_MESSAGE_BYTES, PLAN, decode_message, encode_message
from schedules import FieldError, Plan, PlanError, SkipNight, parse_plan, plan_to_dict
from schedules.plan import MAX_ITEMS
from supervision.config import Settings
from supervision.tickets import ServerKey
from tests.schedules.strategies import WIDEST, largest_plan

#: The largest plan may use this share of the agent's limit; the rest is margin (for a
#: longer signature or version, a field added to the message later).
MARGIN = 0.75


def plan_message_bytes(plan: Plan, version: int = 2**31 - 1) -> bytes:
    """The ``plan`` message as the service puts it on the wire (signaling.deliver_plan)."""
    plan_json, signature = ServerKey(Identity(Ed25519PrivateKey.generate())).sign_plan(
        "cam-" + "f" * 60, plan)
    return encode_message(PLAN, version=version, plan_json=plan_json,
                          signature=signature).encode("utf-8")


def test_the_agent_link_enforces_max_message_bytes() -> None:
    """What the next test measures against is what the device enforces: its WebSocket
    client is opened with ``max_size=MAX_MESSAGE_BYTES`` (tests/agent prove the behaviour:
    a bigger message closes the link)."""
    source = textwrap.dedent(inspect.getsource(camera_agent.link.Link.run))
    calls = [node for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "connect"]
    assert len(calls) == 1
    sizes = [k.value for k in calls[0].keywords if k.arg == "max_size"]
    assert [getattr(v, "id", None) for v in sizes] == ["MAX_MESSAGE_BYTES"]
    # the service accepts at least as much from an agent as the agent accepts from it
    assert Settings.model_fields["ws_max_message_bytes"].default >= MAX_MESSAGE_BYTES


@pytest.mark.parametrize("char", WIDEST)
def test_the_largest_valid_plan_fits_the_agents_limit_with_margin(char: str) -> None:
    plan = largest_plan(char)
    assert parse_plan(plan_to_dict(plan)) == plan, "valid, and what the agent will parse"
    wire = plan_message_bytes(plan)
    assert len(wire) <= MARGIN * MAX_MESSAGE_BYTES, (
        f"{len(wire)} bytes with {char!r}: over {MARGIN:.0%} of {MAX_MESSAGE_BYTES}")
    decoded = decode_message(wire.decode("utf-8"), frozenset({PLAN}))
    assert parse_plan(json.loads(decoded["plan_json"])) == plan


def test_the_widest_character_is_among_those_measured() -> None:
    """No character of a reason costs more than the 4 bytes of the worst measured one."""
    per_char = {}
    for char in (*WIDEST, "a", "\U0010fffd", "\ufeff", "\u00a0", "'", "<", "/"):
        base = len(plan_message_bytes(largest_plan("a")))
        per_char[char] = (len(plan_message_bytes(largest_plan(char))) - base) / (
            200 * (MAX_ITEMS["pauses"] + MAX_ITEMS["skip_nights"])) + 1
    assert max(per_char.values()) == 4, per_char


def test_a_single_reason_character_as_escaped_on_the_wire() -> None:
    """The old wire escaped non-ASCII as \\u sequences: 12 bytes an emoji. Now UTF-8."""
    assert len(encode_message("x", r="😀").encode()) == len('{"type":"x","r":"😀"}'.encode())
    # a lone surrogate cannot be UTF-8: escaped, and the message still goes out
    assert encode_message("x", r="\ud800").encode() == b'{"type":"x","r":"\\ud800"}'


def too_many(name: str) -> dict[str, Any]:
    data = plan_to_dict(largest_plan("x"))
    extra: dict[str, Any] = {
        "check_times": {"at": "12:30"},  # between two checks: only the count is wrong
        "pauses": {"start": "2027-01-01", "end": "2027-01-02", "reason": "x"},
        "skip_nights": {"night": "2027-01-01", "reason": "x"},
    }
    items = data[name]
    assert isinstance(items, list)
    items.append(extra[name])
    if name == "check_times":  # room for one more: shorter windows
        data["window_before_minutes"] = data["window_after_minutes"] = 1
    return data


@pytest.mark.parametrize("name", sorted(MAX_ITEMS))
def test_one_entry_more_is_refused_with_its_code(name: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(too_many(name))
    most = MAX_ITEMS[name]
    assert info.value.errors == [FieldError(
        name, f"must have at most {most} entries, got {most + 1}", "too-many",
        {"max": most, "value": most + 1})]


def test_unparseable_entries_count_too() -> None:
    data = plan_to_dict(largest_plan("x"))
    skips = data["skip_nights"]
    assert isinstance(skips, list)
    skips.append({"night": "someday", "reason": "x"})
    with pytest.raises(PlanError) as info:
        parse_plan(data)
    assert sorted(e.code for e in info.value.errors) == ["date.format", "too-many"]


def test_a_directly_constructed_plan_is_held_to_the_same_limits() -> None:
    plan = largest_plan("x")
    with pytest.raises(PlanError) as info:
        Plan(**{**{f: getattr(plan, f) for f in plan.__dataclass_fields__},
                "skip_nights": (*plan.skip_nights, SkipNight(date(2027, 1, 1), "x"))})
    assert [e.code for e in info.value.errors] == ["too-many"]


def test_a_lone_surrogate_in_a_reason_is_refused() -> None:
    """It has no UTF-8 form, so the plan could be stored but never signed for a camera."""
    with pytest.raises(PlanError) as info:
        parse_plan({"check_times": [{"at": "22:00"}],
                    "pauses": [{"start": "2026-02-01", "end": "2026-02-02",
                                "reason": "sjukhus \udc80"}]})
    assert info.value.errors == [FieldError(
        "pauses.0.reason", "must be valid Unicode text (no lone surrogates)", "unicode")]
    parse_plan({"check_times": [{"at": "22:00"}],
                "skip_nights": [{"night": "2026-02-01", "reason": "😀 \U0010fffd"}]})
