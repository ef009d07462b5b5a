"""Wire messages and the ticket format shared by the camera agent and the service.

``supervision`` imports this module (and the key in ``identity``) to speak to the agents.
It holds no state and does no I/O: it encodes, decodes and verifies. Everything signed
here is signed over explicit, domain-separated byte strings so a signature made for one
purpose (a ticket, a plan, a link challenge, an SDP answer) can never be replayed as
another; a ticket's payload is ``schedules.canonical`` JSON, the one form every signer uses.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from schedules.canonical import canonical

PROTOCOL_VERSION: Final = 1
#: Hard cap for one WebSocket message either way (the agent's ``max_size``): an SDP offer
#: is ~3-6 kB, the largest valid signed plan about 70 % of it (``schedules.plan.MAX_ITEMS``).
MAX_MESSAGE_BYTES: Final = 64 * 1024
#: Hard cap on any look-in, whatever a ticket says (the plan allows 10..120 s).
MAX_LOOKIN_SECONDS: Final = 120

# Message types, agent -> service
AUTH: Final = "auth"
HEARTBEAT: Final = "heartbeat"
ANSWER: Final = "answer"
REFUSED: Final = "refused"
CAMERA: Final = "camera"
LOOKIN_ENDED: Final = "lookin_ended"
PLAN_ACK: Final = "plan_ack"  # {version}: the agent verified and holds this plan version
#: the installer's check asks for a short-lived TURN credential to test the relay with
ICE_PROBE: Final = "ice_probe"
# Message types, service -> agent
CHALLENGE: Final = "challenge"
WELCOME: Final = "welcome"
LOOKIN: Final = "lookin"
END: Final = "end"
PLAN: Final = "plan"
#: {server_time, sent_at}: the answer to each heartbeat (which carries ``sent_at``, the
#: agent's clock when it left), so the agent measures its clock against the service's
HEARTBEAT_ACK: Final = "heartbeat_ack"
#: {ice_servers, expires_at}: the answer to ``ice_probe`` (STUN, and TURN with a
#: credential valid for a minute at most)
ICE_SERVERS: Final = "ice_servers"

AGENT_TYPES: Final = frozenset({AUTH, HEARTBEAT, ANSWER, REFUSED, CAMERA, LOOKIN_ENDED,
                                PLAN_ACK, ICE_PROBE})
#: Refusal reasons of a plan (``refused`` with no session, and the plan's ``version``).
PLAN_REFUSALS: Final = frozenset({"plan-invalid", "plan-bad-signature"})
SERVICE_TYPES: Final = frozenset({CHALLENGE, WELCOME, LOOKIN, END, PLAN, HEARTBEAT_ACK,
                                  ICE_SERVERS})
#: why the service ends a look-in (``end {session, detail}``): its process is stopping
END_SERVICE_STOPPING: Final = "service-stopping"
END_DETAILS: Final = frozenset({END_SERVICE_STOPPING})

#: A device whose clock is off the service's by more than this (``clock_offset_seconds`` in
#: its heartbeat's health) is flagged to admins and in metrics. Half the gate's tolerance
#: (``camera_agent.gate.SKEW``), so the warning comes while tickets are still accepted.
CLOCK_TOLERANCE_SECONDS: Final = 1.0

# WebSocket close codes (4000-4999 are the application's own)
CLOSE_GARBLED: Final = 4400
CLOSE_AUTH_FAILED: Final = 4401
CLOSE_REVOKED: Final = 4403
CLOSE_TOO_BIG: Final = 4413
CLOSE_REPLACED: Final = 4409


class Refusal(ValueError):
    """A message, token, plan or look-in refused: a machine ``reason`` code and ``detail`` words.

    The reason is a stable code (``garbled``, ``expired``, ``outside-window``, ...) sent on
    the wire and compared; the detail is free text for people and is never parsed.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise Refusal("garbled", "bad base64") from exc


def load_public_key(raw_b64: str) -> Ed25519PublicKey:
    raw = b64d(raw_b64)
    if len(raw) != 32:
        raise Refusal("bad-key", "an Ed25519 public key has 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(public_key: Ed25519PublicKey, signature_b64: str, message: bytes) -> bool:
    try:
        public_key.verify(b64d(signature_b64), message)
    except (InvalidSignature, Refusal):
        return False
    return True


# --- messages -------------------------------------------------------------------


def encode_message(msg_type: str, **fields: Any) -> str:
    """One message as JSON text. Non-ASCII travels as UTF-8, at most 4 bytes a character (as
    ``\\u`` escapes an emoji in a plan's reason would take 12); text with a lone surrogate,
    which has no UTF-8 form (a hostile offer), is sent escaped instead, so any message
    can be sent."""
    obj = {"type": msg_type, **fields}
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(obj, separators=(",", ":"))
    return text


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as infinity
        raise ValueError(f"{text} is out of range")
    return value


def decode_message(text: str | bytes, allowed: frozenset[str]) -> dict[str, Any]:
    """Parse one message; oversize, non-JSON, non-object or unknown types are refused."""
    if len(text) > MAX_MESSAGE_BYTES:
        raise Refusal("too-big", f"message over {MAX_MESSAGE_BYTES} bytes")
    try:
        # strict JSON: NaN and Infinity are Python's, not JSON's; and a lone surrogate
        # ("\ud800") is no text at all: neither may reach a record or a signature
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except (json.JSONDecodeError, UnicodeError, ValueError) as exc:
        raise Refusal("garbled", "not JSON") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise Refusal("garbled", "not a typed message object")
    if obj["type"] not in allowed:
        raise Refusal("garbled", f"unknown message type {obj['type']!r}")
    return obj


def require_str(msg: Mapping[str, Any], key: str, max_len: int = MAX_MESSAGE_BYTES) -> str:
    value = msg.get(key)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise Refusal("garbled", f"field {key!r} must be a non-empty string")
    return value


# --- signed byte strings ----------------------------------------------------------


def link_challenge_message(camera_id: str, nonce: str) -> bytes:
    return b"nattillsyn/link/v1\n" + camera_id.encode() + b"\n" + nonce.encode()


def welcome_message(camera_id: str, nonce: str) -> bytes:
    """What the service signs in its welcome when the agent's ``auth`` carried a ``nonce``
    of its own: the service proves it holds the key pinned at enrolment, plan or no plan."""
    return b"nattillsyn/welcome/v1\n" + camera_id.encode() + b"\n" + nonce.encode()


def answer_message(session: str, sdp: str) -> bytes:
    """What the agent signs over its SDP answer; the browser verifies it with WebCrypto."""
    return b"nattillsyn/answer/v1\n" + session.encode() + b"\n" + sdp.encode()


def plan_message(camera_id: str, plan_json: bytes) -> bytes:
    return b"nattillsyn/plan/v1\n" + camera_id.encode() + b"\n" + plan_json


# --- tickets --------------------------------------------------------------------

TICKET_PREFIX: Final = b"nattillsyn/ticket/v1\n"


@dataclass(frozen=True)
class Ticket:
    """Permission for one look-in: one check, one camera, one viewer, a short interval."""

    check: str
    camera: str
    viewer: str
    session: str
    not_before: float  # unix seconds
    not_after: float  # unix seconds
    nonce: str
    follow_ups: int = 0

    @property
    def seconds(self) -> float:
        return self.not_after - self.not_before


def new_nonce() -> str:
    return secrets.token_hex(16)


def encode_ticket(ticket: Ticket, sign: Callable[[bytes], bytes]) -> str:
    payload = canonical({"v": PROTOCOL_VERSION, **asdict(ticket)})
    return b64e(payload) + "." + b64e(sign(TICKET_PREFIX + payload))


def _ticket_from(obj: object) -> Ticket:
    if not isinstance(obj, dict) or obj.get("v") != PROTOCOL_VERSION:
        raise Refusal("garbled", "not a v1 ticket")
    try:
        ticket = Ticket(
            check=str(obj["check"]),
            camera=str(obj["camera"]),
            viewer=str(obj["viewer"]),
            session=str(obj["session"]),
            not_before=float(obj["not_before"]),
            not_after=float(obj["not_after"]),
            nonce=str(obj["nonce"]),
            follow_ups=int(obj.get("follow_ups", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Refusal("garbled", "ticket fields") from exc
    if not 0 < ticket.seconds <= MAX_LOOKIN_SECONDS:
        raise Refusal("bad-interval", "ticket interval out of range")
    if len(ticket.nonce) < 16:
        raise Refusal("garbled", "nonce too short")
    return ticket


class ReplayCache:
    """Nonces of tickets already used, kept until they could no longer verify anyway."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def seen(self, nonce: str) -> bool:
        return nonce in self._seen

    def add(self, nonce: str, expires: float, now: float) -> None:
        self._seen = {n: e for n, e in self._seen.items() if e >= now}
        self._seen[nonce] = expires


def verify_ticket(
    token: str,
    server_key: Ed25519PublicKey,
    camera_id: str,
    now: float,
    replay: ReplayCache,
    *,
    skew: float = 2.0,
) -> Ticket:
    """Check signature, camera, interval and nonce; on success the nonce is spent.

    Order matters: nothing about the payload is trusted before the signature verifies,
    and the nonce is only recorded for a ticket that passed every other check.
    """
    if not isinstance(token, str) or len(token) > 4096 or token.count(".") != 1:
        raise Refusal("garbled", "ticket is not payload.signature")
    payload_b64, sig_b64 = token.split(".")
    payload = b64d(payload_b64)
    if not verify(server_key, sig_b64, TICKET_PREFIX + payload):
        raise Refusal("bad-signature", "ticket not signed by the pinned service key")
    try:
        obj = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Refusal("garbled", "ticket payload") from exc
    ticket = _ticket_from(obj)
    if ticket.camera != camera_id:
        raise Refusal("wrong-camera", f"ticket is for camera {ticket.camera}")
    if now + skew < ticket.not_before:
        raise Refusal("not-yet-valid", "ticket not yet valid")
    if now >= ticket.not_after:
        raise Refusal("expired", "ticket expired")
    if replay.seen(ticket.nonce):
        raise Refusal("replayed", "ticket nonce already used")
    replay.add(ticket.nonce, ticket.not_after + skew, now)
    return ticket
