"""Look-ins: the server's checks before a ticket, the relay, the record, the outcome."""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from camera_agent.protocol import Refusal
from supervision import audit, checks
from supervision.alerts import patrol_view, raise_alert
from supervision.checks import Outcome, State
from supervision.errors import ServiceError
from supervision.models import Camera, Check, User, Visit
from supervision.plans import current_plan
from supervision.runtime import Runtime
from supervision.signaling import AgentUnavailable

log = logging.getLogger("supervision.lookins")

VIEWER_ROLES = ("staff",)


@dataclass
class Started:
    session: str
    sdp: str
    signature: str
    agent_key: str
    expires_at: datetime
    seconds: int


async def active_visit(db: AsyncSession, camera_id: str, now: datetime) -> Visit | None:
    visit: Visit | None = (await db.execute(select(Visit).where(
        Visit.camera_id == camera_id, Visit.ended_at.is_(None),
        Visit.expires_at > now).limit(1))).scalar()
    return visit


async def start(rt: Runtime, user: User, check_id: int, offer: str) -> Started:
    """Every server-side condition, then a ticket, then the relay. The agent checks again."""
    if user.role not in VIEWER_ROLES:
        raise ServiceError(403, "error.role")
    now = datetime.now(UTC)
    async with rt.write() as db:
        check = await db.get(Check, check_id)
        if check is None:
            raise ServiceError(404, "error.no_check")
        if check.state != State.OPEN or not (check.opens_at <= now < check.closes_at):
            raise ServiceError(409, "error.outside_window")
        found = await current_plan(db, check.recipient_id)
        if found is None:
            raise ServiceError(409, "error.no_plan")
        decision = schedules.authorise(found[1], now, check.follow_ups)
        if not decision.allowed:  # the agent asks the same question; refuse it here first
            raise ServiceError(409, "error.not_authorised", reason=decision.code,
                               words={"reason": f"agents.reason.{decision.code}"})
        camera = (await db.execute(select(Camera).where(
            Camera.recipient_id == check.recipient_id, Camera.revoked.is_(False),
            Camera.public_key.is_not(None)).limit(1))).scalar()
        if camera is None or camera.public_key is None:
            raise ServiceError(409, "error.no_camera")
        if not rt.links.is_online(camera.id):
            raise ServiceError(503, "error.camera_offline")
        busy = await active_visit(db, camera.id, now)
        if busy is not None:
            viewer = await db.get(User, busy.viewer_id)
            raise ServiceError(409, "error.being_viewed",
                              viewer=viewer.display_name if viewer else "?")
        seconds = check.max_lookin_seconds
        session = secrets.token_hex(8)
        ticket, token = rt.key.issue(check_id=check.id, camera_id=camera.id,
                                     viewer=user.username, session=session, seconds=seconds,
                                     follow_ups=check.follow_ups, now=now.timestamp())
        db.add(Visit(id=session, check_id=check.id, camera_id=camera.id,
                     recipient_id=check.recipient_id, viewer_id=user.id, nonce=ticket.nonce,
                     requested_at=now, expires_at=now + timedelta(seconds=seconds)))
        await audit.append(db, user.username, "lookin.requested", f"visit:{session}",
                           {"check": check.id, "camera": camera.id,
                            "recipient": check.recipient_id, "seconds": seconds})
        camera_id, agent_key = camera.id, camera.public_key
    try:
        reply = await rt.links.request_lookin(camera_id, session, token, offer,
                                              rt.settings.lookin_answer_timeout)
    except (Refusal, AgentUnavailable, TimeoutError) as exc:
        reason = exc.reason if isinstance(exc, Refusal) else (
            "agent-unavailable" if isinstance(exc, AgentUnavailable) else "agent-timeout")
        async with rt.write() as db:
            visit = await db.get(Visit, session)
            if visit is not None:
                visit.ended_at, visit.seconds = datetime.now(UTC), 0.0
                visit.end_reason, visit.end_detail = "refused", reason[:256]
        if isinstance(exc, Refusal):
            raise ServiceError(409, "error.agent_refused", reason=reason,
                               words={"reason": f"agents.reason.{reason}"}) from exc
        raise ServiceError(504, "error.agent_timeout") from exc
    return Started(session=session, sdp=str(reply["sdp"]), signature=str(reply["signature"]),
                   agent_key=agent_key, expires_at=now + timedelta(seconds=seconds),
                   seconds=seconds)


async def own_visit(rt: Runtime, user: User, session: str) -> Visit:
    """A look-in of this viewer's; anyone else's is 'not found', not 'forbidden'."""
    async with rt.read() as db:
        visit = await db.get(Visit, session[:64])
    if visit is None or visit.viewer_id != user.id:
        raise ServiceError(404, "error.no_visit")
    return visit


async def end(rt: Runtime, user: User, session: str) -> None:
    visit = await own_visit(rt, user, session)
    await rt.links.send(visit.camera_id, "end", session=session)


async def record_outcome(rt: Runtime, user: User, check_id: int, outcome: Outcome,
                         session: str | None) -> tuple[Check, dict[str, Any] | None]:
    """The outcome, its follow-up and its alert commit together, or not at all."""
    if user.role not in VIEWER_ROLES:
        raise ServiceError(403, "error.role")
    now = datetime.now(UTC)
    async with rt.write() as db:
        check = await db.get(Check, check_id)
        if check is None:
            raise ServiceError(404, "error.no_check")
        found = await current_plan(db, check.recipient_id)
        rule = found[1].follow_up if found else schedules.FollowUpRule()
        try:
            step = checks.record_outcome(State(check.state), outcome,
                                         follow_ups_so_far=check.follow_ups,
                                         max_follow_ups=rule.max_follow_ups,
                                         interval_minutes=rule.interval_minutes)
        except checks.TransitionError as exc:
            raise ServiceError(409, "error.check_closed") from exc
        visit = None
        if session:
            visit = await db.get(Visit, session)
            if visit is None or visit.check_id != check.id or visit.viewer_id != user.id:
                raise ServiceError(404, "error.no_visit")
            visit.outcome = outcome.value
        check.state, check.reason = step.state, step.reason
        check.ended_at, check.actor = now, user.username
        await audit.append(db, user.username, "check.outcome", f"check:{check.id}",
                           {"outcome": outcome.value, "state": step.state.value,
                            "visit": session, "recipient": check.recipient_id,
                            "camera": visit.camera_id if visit else None})
        if step.follow_up_in_minutes is not None:
            await _add_follow_up(db, check, step.follow_up_in_minutes, found)
        pushed = None
        if step.alert is not None:
            alert = await raise_alert(db, check, step.alert, user.username,
                                      webhook_on=rt.settings.webhook_on)
            pushed = await patrol_view(db, alert)
    if pushed is not None:
        await rt.patrol.broadcast({"type": "alert", "alert": pushed})
    return check, pushed


async def _add_follow_up(db: AsyncSession, check: Check, minutes: int,
                         found: tuple[Any, schedules.Plan] | None) -> Check:
    plan = found[1] if found else schedules.Plan(check_times=())
    due = datetime.now(UTC) + timedelta(minutes=minutes)
    follow = Check(slot=f"{check.slot}/fu{check.follow_ups + 1}", recipient_id=check.recipient_id,
                   night=check.night, due_at=due,
                   opens_at=due - timedelta(minutes=plan.window_before_minutes),
                   closes_at=due + timedelta(minutes=plan.window_after_minutes),
                   state=State.PLANNED, follow_ups=check.follow_ups + 1, parent_id=check.id,
                   max_lookin_seconds=check.max_lookin_seconds)
    db.add(follow)
    await db.flush()
    return follow


async def on_agent_report(rt: Runtime, camera_id: str, msg: dict[str, Any]) -> None:
    """Heartbeats, refusals, camera open/release and look-in ends, as the agent saw them."""
    kind = msg["type"]
    now = datetime.now(UTC)
    async with rt.write() as db:
        camera = await db.get(Camera, camera_id)
        if camera is None:
            return
        camera.last_seen_at = now
        if kind == "heartbeat" and isinstance(msg.get("health"), dict):
            camera.health = msg["health"]
        elif kind == "refused":
            await audit.append(db, f"camera:{camera_id}", "lookin.refused",
                               f"visit:{str(msg.get('session') or '-')[:48]}",
                               {"reason": str(msg.get("reason"))[:64],
                                "detail": str(msg.get("detail", ""))[:256]})
        elif kind == "camera" and msg.get("state") in ("opened", "released"):
            # the agent's own clock too: when the device says it opened or let go
            agent_at = _finite(msg.get("at"))
            await audit.append(db, f"camera:{camera_id}", f"camera.{msg['state']}",
                               f"visit:{str(msg.get('session'))[:48]}", {"agent_at": agent_at})
        elif kind == "lookin_ended":
            visit = await db.get(Visit, str(msg.get("session")))
            if visit is not None and visit.camera_id == camera_id and visit.end_reason is None:
                visit.ended_at = now
                seconds = _finite(msg.get("seconds"))
                visit.seconds = seconds if seconds is not None and seconds >= 0 \
                    else (now - visit.requested_at).total_seconds()
                visit.end_reason = str(msg.get("reason", "ended"))[:128]
                detail = msg.get("detail")
                visit.end_detail = str(detail)[:256] if detail else None
                viewer = await db.get(User, visit.viewer_id)
                await audit.append(db, viewer.username if viewer else "?", "lookin.ended",
                                   f"visit:{visit.id}", {
                                       "check": visit.check_id, "camera": camera_id,
                                       "recipient": visit.recipient_id,
                                       "start": visit.requested_at.isoformat(),
                                       "end": now.isoformat(), "seconds": visit.seconds,
                                       "reason": visit.end_reason,
                                       "detail": visit.end_detail})


def _finite(value: object) -> float | None:
    """A number an agent sent, if it is one a record can hold (JSON allows NaN and
    Infinity through Python's parser; the audit chain's canonical JSON does not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
