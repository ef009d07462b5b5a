"""Cameras: registration with a one-time enrolment code, enrolment, revocation, the signed
plan each camera holds, and the admins' camera list with the refusals devices reported."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from supervision import audit, plans
from supervision.errors import ServiceError
from supervision.models import AuditEvent, Camera, Recipient, Visit
from supervision.runtime import Runtime

log = logging.getLogger("supervision.cameras")

#: the audit kind of a refusal a camera reported (the admins' list reads these)
REFUSED_KIND = "lookin.refused"


def code_hash(code: str) -> str:
    """What is stored of an enrolment code: its hash, so a database copy enrols nothing."""
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def new_code() -> str:
    return "-".join(secrets.token_hex(2).upper() for _ in range(3))


class CameraCreated(BaseModel):
    camera_id: str
    enrolment_code: str
    expires_at: datetime


class RefusalOut(BaseModel):
    at: datetime
    session: str | None = Field(description="look-in session, or null (e.g. a rejected plan)")
    reason: str = Field(description="machine code, e.g. bad-signature, outside-window, busy")
    detail: str


class CameraOut(BaseModel):
    camera_id: str
    recipient_id: int
    recipient: str
    enrolled: bool
    enrolment_expires_at: datetime | None
    revoked: bool
    online: bool
    last_seen_at: datetime | None
    health: dict[str, Any] | None = Field(
        description="last heartbeat: camera_present, last_lookin (a code), last_lookin_detail, "
        "version, free_memory_mb, ...")
    refusals: list[RefusalOut] = Field(description="most recent first")


class CameraStatus(BaseModel):
    """A recipient's camera as care managers see it."""

    id: str
    enrolled: bool
    online: bool
    last_seen_at: datetime | None


async def register(rt: Runtime, recipient_id: int, actor: str) -> CameraCreated:
    code = new_code()
    expires = datetime.now(UTC) + timedelta(hours=rt.settings.enrolment_hours)
    async with rt.write() as db:
        if await db.get(Recipient, recipient_id) is None:
            raise ServiceError(404, "manage.error.no_recipient")
        camera = Camera(id="cam-" + secrets.token_hex(4), recipient_id=recipient_id,
                        enrol_code_hash=code_hash(code), enrol_expires_at=expires)
        db.add(camera)
        await audit.append(db, actor, "camera.registered", f"camera:{camera.id}",
                           {"recipient": recipient_id})
    return CameraCreated(camera_id=camera.id, enrolment_code=code, expires_at=expires)


async def enrol(rt: Runtime, code: str, public_key: str) -> str:
    """Bind a device key to the camera of a valid one-time code; the code is spent."""
    async with rt.write() as db:
        camera = (await db.execute(select(Camera).where(
            Camera.enrol_code_hash == code_hash(code)))).scalar()
        if camera is None or camera.revoked:
            raise ServiceError(403, "agents.error.code_unknown")
        if camera.enrol_expires_at is None or camera.enrol_expires_at < datetime.now(UTC):
            raise ServiceError(403, "agents.error.code_expired")
        camera.public_key = public_key
        camera.enrol_code_hash = None
        camera.enrol_expires_at = None
        await audit.append(db, f"camera:{camera.id}", "camera.enrolled", f"camera:{camera.id}",
                           {"public_key": public_key})
        return camera.id


async def listing(rt: Runtime, refusals: int) -> list[CameraOut]:
    """Every camera with its link state, last heartbeat and its most recent refusals."""
    async with rt.read() as db:
        rows = (await db.execute(select(Camera, Recipient).join(
            Recipient, Recipient.id == Camera.recipient_id).order_by(Camera.id))).all()
        recent = await _refusals(db, [camera.id for camera, _ in rows], refusals)
    out = []
    for camera, recipient in rows:
        seen, health = rt.presence.seen(camera.id, camera.last_seen_at, camera.health)
        out.append(CameraOut(
            camera_id=camera.id, recipient_id=recipient.id, recipient=recipient.name,
            enrolled=camera.public_key is not None,
            enrolment_expires_at=camera.enrol_expires_at, revoked=camera.revoked,
            online=rt.relay.is_online(camera.id), last_seen_at=seen, health=health,
            refusals=recent.get(camera.id, [])))
    return out


async def _refusals(db: AsyncSession, camera_ids: list[str],
                    per_camera: int) -> dict[str, list[RefusalOut]]:
    if not per_camera or not camera_ids:
        return {}
    actors = {f"camera:{cid}": cid for cid in camera_ids}
    events = (await db.execute(
        select(AuditEvent).where(AuditEvent.kind == REFUSED_KIND,
                                 AuditEvent.actor.in_(list(actors)))
        .order_by(AuditEvent.id.desc()).limit(min(5000, per_camera * len(camera_ids))),
    )).scalars()
    recent: dict[str, list[RefusalOut]] = {}
    for event in events:
        kept = recent.setdefault(actors[event.actor], [])
        if len(kept) < per_camera:
            session = event.subject.removeprefix("visit:")
            kept.append(RefusalOut(at=event.at, session=None if session in ("", "-") else session,
                                   reason=str(event.data.get("reason", "")),
                                   detail=str(event.data.get("detail", ""))))
    return recent


async def statuses(rt: Runtime, db: AsyncSession,
                   recipient_ids: list[int] | None = None) -> dict[int, CameraStatus]:
    """Each recipient's best camera (online before enrolled before the rest)."""
    query = select(Camera).where(Camera.revoked.is_(False)).order_by(Camera.id)
    if recipient_ids is not None:
        query = query.where(Camera.recipient_id.in_(recipient_ids))
    out: dict[int, CameraStatus] = {}
    for cam in (await db.execute(query)).scalars():
        status = CameraStatus(id=cam.id, enrolled=cam.public_key is not None,
                              online=rt.relay.is_online(cam.id),
                              last_seen_at=rt.presence.seen(cam.id, cam.last_seen_at, None)[0])
        best = out.get(cam.recipient_id)
        if best is None or (status.online, status.enrolled) > (best.online, best.enrolled):
            out[cam.recipient_id] = status
    return out


async def revoke(rt: Runtime, camera_id: str, actor: str) -> bool:
    """Revoke a camera: its key is no longer accepted and its live link is cut at once.

    A look-in in progress is stopped by the agent itself when it sees the revocation; its
    visit is closed here, since the agent can no longer report. Returns whether a live
    link was cut.
    """
    now = datetime.now(UTC)
    async with rt.write() as db:
        camera = await db.get(Camera, camera_id)
        if camera is None:
            raise ServiceError(404, "agents.error.no_camera")
        was_revoked = camera.revoked
        camera.revoked = True
        camera.enrol_code_hash = None
        camera.enrol_expires_at = None
        visits = (await db.execute(select(Visit).where(
            Visit.camera_id == camera_id, Visit.ended_at.is_(None)))).scalars().all()
        for visit in visits:
            visit.ended_at = now
            visit.seconds = max(0.0, (now - visit.requested_at).total_seconds())
            visit.end_reason = "revoked"
        if not was_revoked:
            await audit.append(db, actor, "camera.revoked", f"camera:{camera_id}",
                               {"recipient": camera.recipient_id, "visits_ended": len(visits)})
    closed = await cut_link(rt, camera_id)
    log.warning("camera %s revoked by %s (link %s)", camera_id, actor,
                "cut" if closed else "was not up")
    return closed


async def cut_link(rt: Runtime, camera_id: str) -> bool:
    """Close the camera's live link (if any, on any node) with CLOSE_REVOKED; the agent
    cannot log back in."""
    return await rt.relay.cut(camera_id)


#: How long a plan push waits for the agent's acknowledgement (a linked agent answers in
#: milliseconds; a save is not held longer than this per camera).
PLAN_ACK_SECONDS = 5.0


async def push_plan(rt: Runtime, camera_id: str, *,
                    timeout: float = PLAN_ACK_SECONDS) -> bool:
    """Send the camera its recipient's current plan, signed for that camera.

    True only when the agent acknowledged that version (``plan_ack``) within ``timeout``
    seconds; False when it is not linked, refused the plan, did not answer, or the plan
    cannot be signed or sent (a stored plan over the link's limit). Never raises for a
    plan: a push that fails must not take the agent's link down with it.
    """
    async with rt.read() as db:
        camera = await db.get(Camera, camera_id)
        if camera is None:
            return False
        found = await plans.current_plan(db, camera.recipient_id)
    if found is None:
        return False
    row, plan = found
    try:
        plan_json, signature = rt.key.sign_plan(camera_id, plan)
    except (ValueError, TypeError):  # stored before today's rules (e.g. a lone surrogate)
        log.exception("plan version %s for %s cannot be signed", row.version, camera_id)
        return False
    return await rt.relay.deliver_plan(camera_id, row.version, timeout,
                                       plan_json=plan_json, signature=signature)


async def enrolled_cameras(db: AsyncSession, recipient_ids: list[int]) -> list[str]:
    if not recipient_ids:
        return []
    return list((await db.execute(select(Camera.id).where(
        Camera.recipient_id.in_(recipient_ids), Camera.revoked.is_(False),
        Camera.public_key.is_not(None)))).scalars())


async def push_switched(rt: Runtime, now: datetime | None = None) -> list[str]:
    """Send plans to cameras whose recipient's in-force version changed at tonight's start.

    A version saved with a future ``effective_from`` is not sent at save time (the agent
    must enforce the old version until then); the planning job calls this so the agent
    gets it once its first night has begun. Repeats during that night are harmless.
    """
    now = now or datetime.now(UTC)
    async with rt.read() as db:
        versions = await plans.versions_of(db)
        due = []
        for rid, vs in versions.items():
            if not any(v.effective_from is not None for v in vs):
                continue
            current = await plans.current_plan(db, rid, now)
            if current is not None and current[1].effective_from == plans.tonight(
                    current[1], now):
                due.append(rid)
        cameras = await enrolled_cameras(db, due)
    # at once, so one camera that does not answer does not hold up the others
    delivered = await asyncio.gather(*(push_plan(rt, cid) for cid in cameras))
    return [cid for cid, ok in zip(cameras, delivered, strict=True) if ok]
