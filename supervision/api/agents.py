"""Camera agents: enrolment with a one-time code, and the authenticated agent link."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field
from sqlalchemy import select

from camera_agent.protocol import (
    AGENT_TYPES,
    AUTH,
    CHALLENGE,
    CLOSE_AUTH_FAILED,
    CLOSE_GARBLED,
    CLOSE_REPLACED,
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
from supervision.api.deps import Who, require, runtime
from supervision.models import Camera, Recipient
from supervision.planning import current_plan
from supervision.runtime import Runtime
from supervision.signaling import AgentConnection

log = logging.getLogger("supervision.agents")
router = APIRouter(tags=["agents"])
admin = require("admin")


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


class CameraCreate(BaseModel):
    recipient_id: int


class CameraCreated(BaseModel):
    camera_id: str
    enrolment_code: str
    expires_at: datetime


class EnrolRequest(BaseModel):
    code: str = Field(min_length=6, max_length=64)
    public_key: str = Field(min_length=40, max_length=64)


class EnrolReply(BaseModel):
    camera_id: str
    server_public_key: str


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


@router.post("/api/cameras", response_model=CameraCreated)
async def register_camera(body: CameraCreate, rt: Runtime = Depends(runtime),
                          current: Who = Depends(admin)) -> CameraCreated:
    """Register a camera for a recipient; returns a one-time enrolment code."""
    return await new_camera(rt, body.recipient_id, current.user.username)


@router.post("/api/agent/enrol", response_model=EnrolReply)
async def enrol(body: EnrolRequest, rt: Runtime = Depends(runtime)) -> EnrolReply:
    """Bind a device key to the camera of a valid one-time code; the code is spent."""
    try:
        load_public_key(body.public_key)
    except (ProtocolError, ValueError) as exc:
        raise HTTPException(422, "public_key is not an Ed25519 key") from exc
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
    except (ProtocolError, TimeoutError, WebSocketDisconnect, RuntimeError) as exc:
        await _close(ws, CLOSE_AUTH_FAILED, f"authentication failed: {exc}")
        return
    async with rt.read() as db:
        camera = await db.get(Camera, camera_id)
    if camera is None or camera.revoked or camera.public_key is None or not verify(
            load_public_key(camera.public_key), signature,
            link_challenge_message(camera_id, nonce)):
        await _close(ws, CLOSE_AUTH_FAILED, "unknown, revoked or unauthenticated camera")
        return
    conn = AgentConnection(camera_id, ws)
    old = rt.links.attach(conn)
    if old is not None:
        await _close(old.ws, CLOSE_REPLACED, "replaced by a newer link")
    await conn.send(WELCOME)
    await push_plan(rt, camera_id)
    await rt.links.handle(camera_id, {"type": "heartbeat", "health": None})
    log.info("agent %s linked", camera_id)
    try:
        while True:
            raw = await ws.receive_text()
            if len(raw) > limit:
                await _close(ws, CLOSE_TOO_BIG, "message too big")
                break
            try:
                msg = decode_message(raw, AGENT_TYPES)
            except ProtocolError as exc:
                await _close(ws, CLOSE_GARBLED, f"garbled message: {exc.detail}"[:120])
                break
            await rt.links.handle(camera_id, msg)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        rt.links.detach(conn)
        log.info("agent %s unlinked", camera_id)


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    try:
        await ws.close(code=code, reason=reason[:120])
    except RuntimeError:
        pass


