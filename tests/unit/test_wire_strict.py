"""The agent link's wire format is strict JSON: values a record or a signature cannot hold
(NaN, Infinity, numbers out of range, lone surrogates) are refused as garbled at the edge,
instead of failing later in the audit chain's canonical JSON."""

from __future__ import annotations

import pytest

from camera_agent.protocol import AGENT_TYPES, Refusal, decode_message


@pytest.mark.parametrize("text", [
    '{"type":"heartbeat","health":{"x":NaN}}',
    '{"type":"heartbeat","health":{"x":-Infinity}}',
    '{"type":"lookin_ended","session":"s","seconds":1e999}',
    '{"type":"refused","session":"s","reason":"busy","detail":"\\ud800"}',
])
def test_values_no_record_can_hold_are_garbled(text: str) -> None:
    with pytest.raises(Refusal) as refused:
        decode_message(text, AGENT_TYPES)
    assert refused.value.reason == "garbled"


def test_ordinary_messages_pass() -> None:
    msg = decode_message('{"type":"lookin_ended","session":"s","seconds":29.5,'
                         '"reason":"expired","detail":"å"}', AGENT_TYPES)
    assert msg["seconds"] == 29.5 and msg["detail"] == "å"
