"""The gate: the device's own answer to "may the camera be switched on now?".

Even a valid ticket is refused outside the windows of the plan the agent holds (signed by
the service, verified here with the pinned key), so a buggy or compromised central service
cannot switch a camera on at will. Only one look-in at a time, and it stops at the earliest
of the ticket's expiry, the plan's max_lookin_seconds from the ticket's start, and the end
of the plan's window that allowed it (``schedules.authorise``'s ``until``: the window's
close, extended for a follow-up exactly as the plan allows), whatever the ticket says.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import schedules
from camera_agent.protocol import (
    Refusal,
    ReplayCache,
    Ticket,
    plan_message,
    verify,
    verify_ticket,
)
from schedules.reason import Reason

log = logging.getLogger("camera_agent.gate")

#: Tolerated clock difference between the service and the device, in seconds.
SKEW = 2.0


class PlanStore:
    """The last plan whose signature verified; a bad one is rejected and the old one kept.

    It is kept in the state directory so a device that restarts offline still knows its
    windows (and, without a plan, refuses everything).
    """

    def __init__(self, camera_id: str, server_key: Ed25519PublicKey, path: Path | None) -> None:
        self.camera_id = camera_id
        self._key = server_key
        self._path = path
        self.plan: schedules.Plan | None = None
        self.version: int | None = None
        self._raw: tuple[str, str] | None = None
        if path is not None and path.exists():
            try:
                stored = json.loads(path.read_text())
                self.accept(stored["plan_json"], stored["signature"], stored.get("version"),
                            persist=False)
            except (Refusal, ValueError, KeyError, TypeError, OSError) as exc:
                log.warning("stored plan ignored: %s", exc)

    def accept(self, plan_json: str, signature: str, version: int | None = None, *,
               persist: bool = True) -> bool:
        """Verify and adopt; True if it differs from the plan held. Raises Refusal."""
        raw = plan_json.encode()
        if not verify(self._key, signature, plan_message(self.camera_id, raw)):
            raise Refusal("plan-bad-signature", "plan not signed by the pinned service key")
        try:
            plan = schedules.parse_plan(json.loads(raw))
        except (ValueError, schedules.PlanError) as exc:
            raise Refusal("plan-invalid", str(exc)[:200]) from exc
        if version is not None and not isinstance(version, int):
            version = None
        changed = self._raw != (plan_json, signature) or self.version != version
        self.plan, self.version, self._raw = plan, version, (plan_json, signature)
        if changed and persist and self._path is not None:
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"plan_json": plan_json, "signature": signature,
                                       "version": version}))
            os.replace(tmp, self._path)
        return changed


#: Why a look-in is stopped at its stop instant: the end reason's detail (code "expired").
STOP_TICKET = ""                # the ticket's not_after: the plain "expired"
STOP_MAX_LOOKIN = "max-lookin"  # the plan's max_lookin_seconds from the ticket's start
STOP_WINDOW = "window-closed"   # the end of the plan's check window (follow-up allowance incl.)


@dataclass(frozen=True)
class Admission:
    """A look-in the gate allowed, the instant (unix s) it must be stopped at, and which
    limit that is (``STOP_*``; the end is reported as ``expired`` with it as detail)."""

    ticket: Ticket
    stop_at: float
    stop_why: str = STOP_TICKET

    @property
    def stop_reason(self) -> Reason:
        return Reason("expired", self.stop_why)


class Gate:
    def __init__(self, camera_id: str, server_key: Ed25519PublicKey, plans: PlanStore,
                 clock: Callable[[], float] = time.time) -> None:
        self.camera_id = camera_id
        self._key = server_key
        self.plans = plans
        self._clock = clock
        self._replay = ReplayCache()
        self._started = clock()
        self.active: Admission | None = None

    def admit(self, token: str) -> Admission:
        """Verify the ticket, then the plan; on success the look-in slot is taken.

        Raises Refusal (the ticket's own refusals from verify_ticket come through as they are).
        """
        now = self._clock()
        if self.active is not None and self.active.stop_at > now:
            raise Refusal("busy", "another look-in is in progress")
        ticket = verify_ticket(token, self._key, self.camera_id, now, self._replay, skew=SKEW)
        if ticket.not_before < self._started - SKEW:
            # The replay cache lives in memory only (nothing about look-ins is written to
            # disk); a ticket older than this process could have been used before it.
            raise Refusal("issued-before-start", "ticket older than the agent process")
        plan = self.plans.plan
        if plan is None:
            raise Refusal("no-plan", "the agent holds no signed plan")
        decision = schedules.authorise(plan, datetime.fromtimestamp(now, UTC), ticket.follow_ups)
        if not decision.allowed:
            raise Refusal(decision.code, decision.detail)
        assert decision.until is not None  # an allowed decision always has its end
        # the first limit wins; on a tie the ticket's own expiry is named (it is the
        # service capping its ticket at the same limit)
        stop_at, why = min((ticket.not_after, STOP_TICKET),
                           (ticket.not_before + plan.max_lookin_seconds, STOP_MAX_LOOKIN),
                           (decision.until.timestamp(), STOP_WINDOW),
                           key=lambda limit: limit[0])
        if stop_at <= now:
            raise Refusal("expired", f"the look-in would already be over ({why or 'ticket'})")
        admission = Admission(ticket, stop_at, why)
        self.active = admission
        return admission

    def release(self, admission: Admission) -> None:
        if self.active is admission:
            self.active = None
