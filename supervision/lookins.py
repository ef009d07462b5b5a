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
from supervision import audit, turn
from supervision.checks import State
from supervision.errors import ServiceError
from supervision.models import Camera, Check, User, Visit
from supervision.plans import current_plan
from supervision.runtime import Runtime
from supervision.signaling import AgentUnavailable

log = logging.getLogger("supervision.lookins")

VIEWER_ROLES = ("staff",)


def require_viewer(user: User) -> None:
    """Only night staff look in and record what they saw."""
    if user.role not in VIEWER_ROLES:
        raise ServiceError(403, "error.role")


async def check_of(db: AsyncSession, check_id: int) -> Check:
    check = await db.get(Check, check_id)
    if check is None:
        raise ServiceError(404, "error.no_check")
    return check


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


def _visit(session: str, check: Check, camera_id: str, viewer: User, nonce: str,
           now: datetime, seconds: int, *, refused: str | None = None) -> Visit:
    visit = Visit(id=session, check_id=check.id, camera_id=camera_id,
                  recipient_id=check.recipient_id, viewer_id=viewer.id, nonce=nonce,
                  requested_at=now, expires_at=now + timedelta(seconds=seconds))
    if refused is not None:
        visit.ended_at, visit.seconds = now, 0.0
        visit.end_reason, visit.end_detail = "refused", refused
    return visit


async def lookable(db: AsyncSession, check_id: int, now: datetime) -> tuple[Check, datetime]:
    """The check, if it may be looked in on now (open, inside its window, allowed by the
    plan: the agent asks the same question, refused here first), and the latest a look-in
    on it may last to. The window's end is a hard limit, and so is the end of the plan
    window that allows it (a follow-up's is extended), where the agent stops by its own
    plan too: no ticket and no TURN credential reaches past it."""
    check = await check_of(db, check_id)
    if check.state != State.OPEN or not (check.opens_at <= now < check.closes_at):
        raise ServiceError(409, "error.outside_window")
    found = await current_plan(db, check.recipient_id)
    if found is None:
        raise ServiceError(409, "error.no_plan")
    decision = schedules.authorise(found[1], now, check.follow_ups)
    if not decision.allowed:
        raise ServiceError(409, "error.not_authorised", reason=decision.code,
                           words={"reason": f"agents.reason.{decision.code}"})
    return check, min(check.closes_at, decision.until) if decision.until else check.closes_at


async def ice(rt: Runtime, user: User, check_id: int) -> turn.IceConfig:
    """The browser's ICE servers, before its offer: only while this check may be looked in
    on now, with a TURN credential of its own that ends no later than a ticket for it could
    (the plan's maximum, the window's end)."""
    require_viewer(user)
    now = datetime.now(UTC)
    async with rt.read() as db:
        check, end = await lookable(db, check_id, now)
    limit = min(end, now + timedelta(seconds=check.max_lookin_seconds))
    if limit - now < timedelta(seconds=1):  # as for a ticket: no look-in fits any more
        raise ServiceError(409, "error.outside_window")
    return turn.ice_config(rt.settings, f"check{check.id}-user{user.id}-{secrets.token_hex(4)}",
                           now, limit)


async def start(rt: Runtime, user: User, check_id: int, offer: str) -> Started:
    """Every server-side condition, then a ticket, then the relay. The agent checks again."""
    require_viewer(user)
    now = datetime.now(UTC)
    async with rt.write() as db:
        check, end = await lookable(db, check_id, now)
        # the camera's row is locked (PostgreSQL) so two viewers cannot both get a ticket
        camera = (await db.execute(select(Camera).where(
            Camera.recipient_id == check.recipient_id, Camera.revoked.is_(False),
            Camera.public_key.is_not(None)).order_by(Camera.id).limit(1)
            .with_for_update())).scalar()
        if camera is None or camera.public_key is None:
            raise ServiceError(409, "error.no_camera")
        busy = await active_visit(db, camera.id, now)
        if busy is not None:
            viewer = await db.get(User, busy.viewer_id)
            raise ServiceError(409, "error.being_viewed",
                               viewer=viewer.display_name if viewer else "?")
        seconds = math.floor(min(check.max_lookin_seconds, (end - now).total_seconds()))
        if seconds < 1:
            raise ServiceError(409, "error.outside_window")
        session = secrets.token_hex(8)
        if not rt.relay.is_online(camera.id):
            # recorded, so Technical failure can rest on this refused attempt
            db.add(_visit(session, check, camera.id, user, secrets.token_hex(16), now, 0,
                          refused="camera-offline"))
            await audit.append(db, user.username, "lookin.refused", f"visit:{session}",
                               {"check": check.id, "camera": camera.id,
                                "reason": "camera-offline"})
            offline = True
        else:
            offline = False
            ticket, token = rt.key.issue(check_id=check.id, camera_id=camera.id,
                                         viewer=user.username, session=session,
                                         seconds=seconds, follow_ups=check.follow_ups,
                                         now=now.timestamp())
            db.add(_visit(session, check, camera.id, user, ticket.nonce, now, seconds))
            await audit.append(db, user.username, "lookin.requested", f"visit:{session}",
                               {"check": check.id, "camera": camera.id,
                                "recipient": check.recipient_id, "seconds": seconds})
        camera_id, agent_key = camera.id, camera.public_key
    if offline:
        raise ServiceError(503, "error.camera_offline", session=session)
    try:
        # the camera's own TURN credential, named for the visit, ending with the ticket
        ice = turn.lookin_fields(rt.settings, session, now, now + timedelta(seconds=seconds))
        reply = await rt.relay.request_lookin(camera_id, session, token, offer,
                                              rt.settings.lookin_answer_timeout, **ice)
    except (Refusal, AgentUnavailable, TimeoutError) as exc:
        reason = exc.reason if isinstance(exc, Refusal) else (
            "agent-unavailable" if isinstance(exc, AgentUnavailable) else "agent-timeout")
        async with rt.write() as db:
            visit = await db.get(Visit, session)
            if visit is not None and visit.ended_at is None:
                visit.ended_at, visit.seconds = datetime.now(UTC), 0.0
                visit.end_reason, visit.end_detail = "refused", reason[:256]
        if isinstance(exc, Refusal):
            raise ServiceError(409, "error.agent_refused", reason=reason, session=session,
                               words={"reason": f"agents.reason.{reason}"}) from exc
        raise ServiceError(504, "error.agent_timeout", session=session) from exc
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
    await rt.relay.send(visit.camera_id, "end", session=session)


async def on_agent_report(rt: Runtime, camera_id: str, msg: dict[str, Any]) -> None:
    """Heartbeats, refusals, camera open/release and look-in ends, as the agent saw them."""
    kind = msg["type"]
    now = datetime.now(UTC)
    health = msg.get("health")
    rt.presence.heard(camera_id, health if kind == "heartbeat" and isinstance(health, dict)
                      else None)
    if kind == "heartbeat":
        return  # written in the presence's next batch, not a transaction each
    async with rt.write() as db:
        camera = await db.get(Camera, camera_id)
        if camera is None:
            return
        if kind == "refused":
            await audit.append(db, f"camera:{camera_id}", "lookin.refused",
                               f"visit:{str(msg.get('session') or '-')[:48]}",
                               {"reason": str(msg.get("reason"))[:64],
                                "detail": str(msg.get("detail", ""))[:256]})
        elif kind == "camera" and msg.get("state") in ("opened", "released"):
            # the agent's own clock too: when the device says it opened or let go
            agent_at = _finite(msg.get("at"))
            session = str(msg.get("session"))[:48]
            await audit.append(db, f"camera:{camera_id}", f"camera.{msg['state']}",
                               f"visit:{session}", {"agent_at": agent_at})
            visit = await db.get(Visit, session)
            if msg["state"] == "opened" and visit is not None \
                    and visit.camera_id == camera_id and visit.camera_opened_at is None:
                visit.camera_opened_at = now  # half of what an outcome rests on
        elif kind == "lookin_ended":
            visit = await db.get(Visit, str(msg.get("session")))
            if visit is not None and visit.camera_id == camera_id and visit.end_reason in (
                    LINK_LOST, UNREPORTED):
                # closed here when the camera went away; keep the device's own account too
                await audit.append(db, f"camera:{camera_id}", "lookin.reported",
                                   f"visit:{visit.id}", {
                                       "seconds": _finite(msg.get("seconds")),
                                       "reason": str(msg.get("reason", ""))[:64],
                                       "detail": str(msg.get("detail") or "")[:256]})
            elif visit is not None and visit.camera_id == camera_id \
                    and visit.end_reason is None:
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


#: end reasons the service writes when the camera cannot report the end itself
LINK_LOST = "agent-gone"
UNREPORTED = "unreported"
#: how long after its ticket expired a look-in may still be reported by its camera
REPORT_GRACE = timedelta(seconds=15)


async def picture(rt: Runtime, user: User, session: str, ttff_ms: int) -> None:
    """The viewer's browser decoded the first frame: the other half of what an outcome
    rests on (the agent's "camera opened" is the first). Kept with the visit, with the
    time to first frame; a repeat changes nothing."""
    now = datetime.now(UTC)
    async with rt.write() as db:
        visit = await db.get(Visit, session[:64])
        if visit is None or visit.viewer_id != user.id:
            raise ServiceError(404, "error.no_visit")
        if visit.end_reason == "refused":
            raise ServiceError(409, "error.lookin_refused")
        if visit.first_frame_at is not None:
            return
        visit.first_frame_at, visit.ttff_ms = now, ttff_ms
        await audit.append(db, user.username, "lookin.picture", f"visit:{visit.id}",
                           {"check": visit.check_id, "ttff_ms": ttff_ms})


async def link_lost(rt: Runtime, camera_id: str) -> int:
    """The camera's link dropped: its look-ins in progress end in the record now (the agent
    itself stops at the ticket's expiry at the latest); how many were closed."""
    now = datetime.now(UTC)
    async with rt.write() as db:
        visits = (await db.execute(select(Visit).where(
            Visit.camera_id == camera_id, Visit.ended_at.is_(None)))).scalars().all()
        for visit in visits:
            await _close(db, visit, now, LINK_LOST, "the camera's link dropped")
    return len(visits)


async def close_lapsed(db: AsyncSession, now: datetime) -> int:
    """Look-ins whose ticket expired and whose end nobody reported (a camera that died)
    end in the record; called by the sweep in its transaction."""
    visits = (await db.execute(select(Visit).where(
        Visit.ended_at.is_(None), Visit.expires_at < now - REPORT_GRACE))).scalars().all()
    for visit in visits:
        await _close(db, visit, min(now, visit.expires_at), UNREPORTED,
                     "no end reported by the camera")
    return len(visits)


async def _close(db: AsyncSession, visit: Visit, at: datetime, reason: str,
                 detail: str) -> None:
    visit.ended_at = at
    visit.seconds = max(0.0, (min(at, visit.expires_at) - visit.requested_at).total_seconds())
    visit.end_reason, visit.end_detail = reason, detail
    viewer = await db.get(User, visit.viewer_id)
    await audit.append(db, viewer.username if viewer else "?", "lookin.ended",
                       f"visit:{visit.id}", {
                           "check": visit.check_id, "camera": visit.camera_id,
                           "recipient": visit.recipient_id,
                           "start": visit.requested_at.isoformat(), "end": at.isoformat(),
                           "seconds": visit.seconds, "reason": reason, "detail": detail})
