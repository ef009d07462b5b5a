"""The service's Ed25519 key: signs look-in tickets and plans for the agents, and the
audit log's checkpoints.

The agents pin its public half at enrolment. The private key file is created 0600 and
never leaves the data directory.
"""

from __future__ import annotations

import time
from pathlib import Path

from camera_agent.identity import Identity
from camera_agent.protocol import (
    Ticket,
    encode_ticket,
    new_nonce,
    plan_message,
    welcome_message,
)
from schedules import Plan, canonical_json


class ServerKey:
    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    @classmethod
    def load(cls, path: Path) -> ServerKey:
        return cls(Identity.load(path))

    @classmethod
    def load_or_create(cls, path: Path) -> ServerKey:
        if path.exists():
            return cls(Identity.load(path))
        return cls(Identity.create(path))

    @property
    def public_key_b64(self) -> str:
        return self._identity.public_key_b64

    def issue(self, *, check_id: int, camera_id: str, viewer: str, session: str,
              seconds: float, follow_ups: int = 0, now: float | None = None) -> tuple[Ticket, str]:
        start = time.time() if now is None else now
        ticket = Ticket(check=str(check_id), camera=camera_id, viewer=viewer, session=session,
                        not_before=round(start, 3), not_after=round(start + seconds, 3),
                        nonce=new_nonce(), follow_ups=follow_ups)
        return ticket, encode_ticket(ticket, self._identity.sign_raw)

    def sign_checkpoint(self, message: bytes) -> str:
        """An audit checkpoint's signature (``audit_anchor.checkpoint_message``: its own
        domain prefix, so it can never pass as a ticket's, a plan's or an answer's)."""
        return self._identity.sign(message)

    def sign_welcome(self, camera_id: str, nonce: str) -> str:
        """The welcome's proof of this key, over the agent's own nonce
        (``protocol.welcome_message``)."""
        return self._identity.sign(welcome_message(camera_id, nonce))

    def sign_plan(self, camera_id: str, plan: Plan) -> tuple[str, str]:
        """(plan_json, signature): the agent verifies these exact bytes, then parses them."""
        plan_json = canonical_json(plan)
        return plan_json.decode(), self._identity.sign(plan_message(camera_id, plan_json))
