"""Camera agents: registration and enrolment with a one-time code, the authenticated agent
link, revocation (cuts the live link at once) and the admins' camera list with the
refusals the devices reported."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select

from camera_agent.protocol import (
    AGENT_TYPES,
    AUTH,
    CHALLENGE,
    CLOSE_AUTH_FAILED,
    CLOSE_GARBLED,
    CLOSE_REPLACED,
    CLOSE_REVOKED,
    CLOSE_TOO_BIG,
    PLAN,
    WELCOME,
    ProtocolError,
    decode_message,
    encode_message,
    link_challenge_message,
    load_public_key,
    require_str,
    verify,
)
from supervision import audit
from supervision.api.deps import MAX_ROW_ID, Who, require, runtime
from supervision.errors import error_responses
from supervision.models import AuditEvent, Camera, Recipient, Visit
from supervision.planning import current_plan
from supervision.runtime import Runtime
from supervision.signaling import AgentConnection

REFUSED_KIND = "lookin.refused"

log = logging.getLogger("supervision.agents")
router = APIRouter(tags=["agents"])
admin = require("admin")


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


class CameraCreate(BaseModel):
    recipient_id: int = Field(ge=1, le=MAX_ROW_ID)


class CameraCreated(BaseModel):
    camera_id: str
    enrolment_code: str
    expires_at: datetime


class EnrolRequest(BaseModel):
    code: str = Field(min_length=6, max_length=64)
    public_key: str = Field(min_length=40, max_length=64)

    @field_validator("public_key")
    @classmethod
    def _ed25519(cls, value: str) -> str:
        try:
            load_public_key(value)
        except ValueError as exc:  # ProtocolError is a ValueError
            raise ValueError("public_key is not an Ed25519 key") from exc
        return value


class EnrolReply(BaseModel):
    camera_id: str
    server_public_key: str


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
        description="last heartbeat: camera_present, last_lookin, version, free_memory_mb, ...")
    refusals: list[RefusalOut] = Field(description="most recent first")


class CameraList(BaseModel):
    cameras: list[CameraOut]


class CameraRevoked(BaseModel):
    camera_id: str
    revoked: bool
    link_closed: bool = Field(description="a live link was open and has been cut")


async def new_camera(rt: Runtime, recipient_id: int, actor: str) -> CameraCreated:
    code = "-".join(secrets.token_hex(2).upper() for _ in range(3))
    expires = datetime.now(UTC) + timedelta(hours=rt.settings.enrolment_hours)
    async with rt.write() as db:
        if await db.get(Recipient, recipient_id) is None:
            raise HTTPException(404, "no such recipient")
        camera = Camera(id="cam-" + secrets.token_hex(4), recipient_id=recipient_id,
                        enrol_code_hash=code_hash(code), enrol_expires_at=expires)
        db.add(camera)
        await audit.append(db, actor, "camera.registered", f"camera:{camera.id}",
                           {"recipient": recipient_id})
    return CameraCreated(camera_id=camera.id, enrolment_code=code, expires_at=expires)


@router.post("/api/cameras", response_model=CameraCreated,
             responses=error_responses(400, 401, 403, 404))
async def register_camera(body: CameraCreate, rt: Runtime = Depends(runtime),
                          current: Who = Depends(admin)) -> CameraCreated:
    """Register a camera for a recipient; returns a one-time enrolment code."""
    return await new_camera(rt, body.recipient_id, current.user.username)


@router.get("/api/cameras", response_model=CameraList, responses=error_responses(401, 403))
async def list_cameras(rt: Runtime = Depends(runtime), _: Who = Depends(admin),
                       refusals: int = Query(20, ge=0, le=200)) -> CameraList:
    """Every camera with its link state, last heartbeat and its most recent refusals."""
    async with rt.read() as db:
        rows = (await db.execute(select(Camera, Recipient).join(
            Recipient, Recipient.id == Camera.recipient_id).order_by(Camera.id))).all()
        recent: dict[str, list[RefusalOut]] = {}
        if refusals and rows:
            actors = {f"camera:{camera.id}": camera.id for camera, _ in rows}
            events = (await db.execute(
                select(AuditEvent).where(AuditEvent.kind == REFUSED_KIND,
                                         AuditEvent.actor.in_(list(actors)))
                .order_by(AuditEvent.id.desc()).limit(min(5000, refusals * len(rows))),
            )).scalars()
            for event in events:
                kept = recent.setdefault(actors[event.actor], [])
                if len(kept) < refusals:
                    session = event.subject.removeprefix("visit:")
                    kept.append(RefusalOut(at=event.at,
                                           session=None if session in ("", "-") else session,
                                           reason=str(event.data.get("reason", "")),
                                           detail=str(event.data.get("detail", ""))))
    return CameraList(cameras=[CameraOut(
        camera_id=camera.id, recipient_id=recipient.id, recipient=recipient.name,
        enrolled=camera.public_key is not None, enrolment_expires_at=camera.enrol_expires_at,
        revoked=camera.revoked, online=rt.links.is_online(camera.id),
        last_seen_at=camera.last_seen_at, health=camera.health,
        refusals=recent.get(camera.id, [])) for camera, recipient in rows])


@router.post("/api/cameras/{camera_id}/revoke", response_model=CameraRevoked,
             responses=error_responses(401, 403, 404))
async def revoke_camera(camera_id: str, rt: Runtime = Depends(runtime),
                        current: Who = Depends(admin)) -> CameraRevoked:
    """Revoke a camera: its key is no longer accepted and its live link is cut at once.

    A look-in in progress is stopped by the agent itself when it sees the revocation; its
    visit is closed here, since the agent can no longer report.
    """
    now = datetime.now(UTC)
    async with rt.write() as db:
        camera = await db.get(Camera, camera_id)
        if camera is None:
            raise HTTPException(404, "no such camera")
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
            await audit.append(db, current.user.username, "camera.revoked",
                               f"camera:{camera_id}", {"recipient": camera.recipient_id,
                                                      "visits_ended": len(visits)})
    closed = await cut_link(rt, camera_id)
    log.warning("camera %s revoked by %s (link %s)", camera_id, current.user.username,
                "cut" if closed else "was not up")
    return CameraRevoked(camera_id=camera_id, revoked=True, link_closed=closed)


async def cut_link(rt: Runtime, camera_id: str) -> bool:
    """Close the camera's live link (if any) with CLOSE_REVOKED; the agent cannot log back in."""
    conn = rt.links.connected.get(camera_id)
    if conn is None:
        return False
    rt.links.detach(conn)
    async with conn.lock:
        await _close(conn.ws, CLOSE_REVOKED, "camera revoked")
    return True


@router.post("/api/agent/enrol", response_model=EnrolReply,
             responses=error_responses(400, 403))
async def enrol(body: EnrolRequest, rt: Runtime = Depends(runtime)) -> EnrolReply:
    """Bind a device key to the camera of a valid one-time code; the code is spent.
    (A public_key that is not an Ed25519 key is refused with 422 by EnrolRequest.)"""
    async with rt.write() as db:
        camera = (await db.execute(select(Camera).where(
            Camera.enrol_code_hash == code_hash(body.code)))).scalar()
        if camera is None or camera.revoked:
            raise HTTPException(403, "unknown or already used enrolment code")
        if camera.enrol_expires_at is None or camera.enrol_expires_at < datetime.now(UTC):
            raise HTTPException(403, "enrolment code has expired")
        camera.public_key = body.public_key
        camera.enrol_code_hash = None
        camera.enrol_expires_at = None
        await audit.append(db, f"camera:{camera.id}", "camera.enrolled", f"camera:{camera.id}",
                           {"public_key": body.public_key})
        camera_id = camera.id
    return EnrolReply(camera_id=camera_id, server_public_key=rt.key.public_key_b64)


async def push_plan(rt: Runtime, camera_id: str) -> bool:
    """Send the camera its recipient's current plan, signed for that camera."""
    async with rt.read() as db:
        camera = await db.get(Camera, camera_id)
        if camera is None:
            return False
        found = await current_plan(db, camera.recipient_id)
    if found is None:
        return False
    row, plan = found
    plan_json, signature = rt.key.sign_plan(camera_id, plan)
    return await rt.links.send(camera_id, PLAN, plan_json=plan_json, signature=signature,
                               version=row.version)


@router.websocket("/ws/agent")
async def agent_link(ws: WebSocket) -> None:
    """Challenge, verify the camera's signature, then relay its reports until it goes."""
    rt: Runtime = ws.app.state.runtime
    limit = rt.settings.ws_max_message_bytes
    await ws.accept()
    nonce = secrets.token_urlsafe(24)
    try:
        await ws.send_text(encode_message(CHALLENGE, nonce=nonce))
        raw = await asyncio.wait_for(ws.receive_text(), 10)
        msg = decode_message(raw, AGENT_TYPES)
        if msg["type"] != AUTH:
            raise ProtocolError("garbled", "expected auth")
        camera_id = require_str(msg, "camera", 64)
        signature = require_str(msg, "signature", 200)
    except (ProtocolError, TimeoutError, WebSocketDisconnect, RuntimeError, KeyError) as exc:
        await _close(ws, CLOSE_AUTH_FAILED, f"authentication failed: {exc}")
        return
    async with rt.read() as db:
        camera = await db.get(Camera, camera_id)
    if camera is not None and camera.revoked:
        log.warning("revoked camera %s tried to link", camera_id)
        await _close(ws, CLOSE_REVOKED, "camera revoked")
        return
    if camera is None or camera.public_key is None or not verify(
            load_public_key(camera.public_key), signature,
            link_challenge_message(camera_id, nonce)):
        log.warning("link refused for camera %r: unknown or bad signature", camera_id[:64])
        await _close(ws, CLOSE_AUTH_FAILED, "unknown, revoked or unauthenticated camera")
        return
    conn = AgentConnection(camera_id, ws)
    old = rt.links.attach(conn)
    if old is not None:
        await _close(old.ws, CLOSE_REPLACED, "replaced by a newer link")
    async with rt.read() as db:  # a revocation that landed while this link authenticated
        camera = await db.get(Camera, camera_id)
    if camera is None or camera.revoked:
        rt.links.detach(conn)
        await _close(ws, CLOSE_REVOKED, "camera revoked")
        return
    log.info("agent %s linked", camera_id)
    try:
        await conn.send(WELCOME)
        await push_plan(rt, camera_id)
        await rt.links.handle(camera_id, {"type": "heartbeat", "health": None})
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if not isinstance(text, str):
                await _close(ws, CLOSE_GARBLED, "binary messages are not part of the protocol")
                break
            if len(text) > limit:
                await _close(ws, CLOSE_TOO_BIG, "message too big")
                break
            try:
                msg = decode_message(text, AGENT_TYPES)
            except ProtocolError as exc:
                await _close(ws, CLOSE_GARBLED, f"garbled message: {exc.detail}"[:120])
                break
            except RecursionError:  # JSON nested deeper than the parser goes
                await _close(ws, CLOSE_GARBLED, "garbled message: nested too deep")
                break
            await rt.links.handle(camera_id, msg)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        rt.links.detach(conn)
        log.info("agent %s unlinked", camera_id)


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    # a close frame holds 123 bytes of reason; the reason may quote what the peer sent
    try:
        await ws.close(code=code, reason=reason.encode()[:120].decode("utf-8", "ignore"))
    except (RuntimeError, WebSocketDisconnect):
        pass


