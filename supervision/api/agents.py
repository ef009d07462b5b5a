"""Camera agents: registration and enrolment with a one-time code, the authenticated agent
link, revocation (cuts the live link at once) and the admins' camera list with the
refusals the devices reported. The work is done in ``supervision.cameras``."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Query, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, field_validator

from camera_agent.protocol import (
    AGENT_TYPES,
    AUTH,
    CHALLENGE,
    CLOSE_AUTH_FAILED,
    CLOSE_GARBLED,
    CLOSE_REPLACED,
    CLOSE_REVOKED,
    CLOSE_TOO_BIG,
    HEARTBEAT,
    HEARTBEAT_ACK,
    ICE_PROBE,
    ICE_SERVERS,
    WELCOME,
    Refusal,
    decode_message,
    encode_message,
    link_challenge_message,
    load_public_key,
    require_str,
    verify,
)
from supervision import cameras, lookins, turn
from supervision.cameras import CameraCreated, CameraOut
from supervision.context import MAX_ROW_ID, Who, require, runtime
from supervision.errors import error_responses
from supervision.models import Camera
from supervision.runtime import Runtime
from supervision.signaling import AgentConnection, close_socket

log = logging.getLogger("supervision.agents")
router = APIRouter(tags=["agents"])
admin = require("admin")


class CameraCreate(BaseModel):
    recipient_id: int = Field(ge=1, le=MAX_ROW_ID)


class EnrolRequest(BaseModel):
    code: str = Field(min_length=6, max_length=64)
    public_key: str = Field(min_length=40, max_length=64)

    @field_validator("public_key")
    @classmethod
    def _ed25519(cls, value: str) -> str:
        try:
            load_public_key(value)
        except ValueError as exc:  # Refusal is a ValueError
            raise ValueError("public_key is not an Ed25519 key") from exc
        return value


class EnrolReply(BaseModel):
    camera_id: str
    server_public_key: str


class CameraList(BaseModel):
    cameras: list[CameraOut]


class CameraRevoked(BaseModel):
    camera_id: str
    revoked: bool
    link_closed: bool = Field(description="a live link was open and has been cut")


@router.post("/api/cameras", response_model=CameraCreated,
             responses=error_responses(400, 401, 403, 404))
async def register_camera(body: CameraCreate, rt: Runtime = Depends(runtime),
                          current: Who = Depends(admin)) -> CameraCreated:
    """Register a camera for a recipient; returns a one-time enrolment code."""
    return await cameras.register(rt, body.recipient_id, current.user.username)


@router.get("/api/cameras", response_model=CameraList, responses=error_responses(401, 403))
async def list_cameras(rt: Runtime = Depends(runtime), _: Who = Depends(admin),
                       refusals: int = Query(20, ge=0, le=200)) -> CameraList:
    """Every camera with its link state, last heartbeat and its most recent refusals."""
    return CameraList(cameras=await cameras.listing(rt, refusals))


@router.post("/api/cameras/{camera_id}/revoke", response_model=CameraRevoked,
             responses=error_responses(401, 403, 404))
async def revoke_camera(camera_id: str, rt: Runtime = Depends(runtime),
                        current: Who = Depends(admin)) -> CameraRevoked:
    """Revoke a camera: its key is no longer accepted and its live link is cut at once."""
    closed = await cameras.revoke(rt, camera_id, current.user.username)
    return CameraRevoked(camera_id=camera_id, revoked=True, link_closed=closed)


@router.post("/api/agent/enrol", response_model=EnrolReply,
             responses=error_responses(400, 403))
async def enrol(body: EnrolRequest, rt: Runtime = Depends(runtime)) -> EnrolReply:
    """Bind a device key to the camera of a valid one-time code; the code is spent.
    (A public_key that is not an Ed25519 key is refused with 422 by EnrolRequest.)"""
    camera_id = await cameras.enrol(rt, body.code, body.public_key)
    return EnrolReply(camera_id=camera_id, server_public_key=rt.key.public_key_b64)


#: the camera link's path; ``app.served`` takes it around the middleware
AGENT_LINK_PATH = "/ws/agent"


@router.websocket(AGENT_LINK_PATH)
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
            raise Refusal("garbled", "expected auth")
        camera_id = require_str(msg, "camera", 64)
        signature = require_str(msg, "signature", 200)
        # the agent's own challenge to us (the installer's check sends one): answered in
        # the welcome with our key, so a device can verify the service it pinned
        theirs = require_str(msg, "nonce", 200) if "nonce" in msg else None
    except (Refusal, TimeoutError, WebSocketDisconnect, RuntimeError, KeyError) as exc:
        await close_socket(ws, CLOSE_AUTH_FAILED, f"authentication failed: {exc}")
        return
    async with rt.read() as db:
        camera = await db.get(Camera, camera_id)
    if camera is not None and camera.revoked:
        log.warning("revoked camera %s tried to link", camera_id)
        await close_socket(ws, CLOSE_REVOKED, "camera revoked")
        return
    if camera is None or camera.public_key is None or not verify(
            load_public_key(camera.public_key), signature,
            link_challenge_message(camera_id, nonce)):
        log.warning("link refused for camera %r: unknown or bad signature", camera_id[:64])
        await close_socket(ws, CLOSE_AUTH_FAILED, "unknown, revoked or unauthenticated camera")
        return
    conn = AgentConnection(camera_id, ws)
    old = rt.links.attach(conn)
    if old is not None:
        await close_socket(old.ws, CLOSE_REPLACED, "replaced by a newer link")
    async with rt.read() as db:  # a revocation that landed while this link authenticated
        camera = await db.get(Camera, camera_id)
    if camera is None or camera.revoked:
        rt.links.detach(conn)
        await close_socket(ws, CLOSE_REVOKED, "camera revoked")
        return
    log.info("agent %s linked", camera_id)
    try:
        await rt.presence.linked(camera_id)  # every node now reaches the camera through this one
        proof = {} if theirs is None else {"signature": rt.key.sign_welcome(camera_id, theirs)}
        await conn.send(WELCOME, server_time=time.time(), **proof)  # it measures its clock
        probed = -math.inf
        await cameras.push_plan(rt, camera_id)
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if not isinstance(text, str):
                await close_socket(ws, CLOSE_GARBLED, "binary messages are not in the protocol")
                break
            if len(text) > limit:
                await close_socket(ws, CLOSE_TOO_BIG, "message too big")
                break
            try:
                msg = decode_message(text, AGENT_TYPES)
            except Refusal as exc:
                await close_socket(ws, CLOSE_GARBLED, f"garbled message: {exc.detail}"[:120])
                break
            except RecursionError:  # JSON nested deeper than the parser goes
                await close_socket(ws, CLOSE_GARBLED, "garbled message: nested too deep")
                break
            if msg["type"] == HEARTBEAT:  # answered at once: the round trip bounds the error
                sent = msg.get("sent_at")
                await conn.send(HEARTBEAT_ACK, server_time=time.time(), sent_at=sent if (
                    isinstance(sent, float) and math.isfinite(sent)) else None)
            if msg["type"] == ICE_PROBE:  # a test credential, at most one per 5 s per link
                if time.monotonic() - probed >= 5:
                    probed = time.monotonic()
                    log.info("camera %s asked for a TURN test credential", camera_id)
                    await conn.send(ICE_SERVERS, **turn.probe_fields(
                        rt.settings, camera_id, datetime.now(UTC)))
                continue
            await rt.links.handle(camera_id, msg)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        # not replaced by a newer link here (None: cut, or never attached past a revocation)
        was_current = rt.links.connected.get(camera_id) in (conn, None)
        rt.links.detach(conn)
        log.info("agent %s unlinked", camera_id)
        if was_current:
            await rt.presence.unlinked(camera_id)  # unless a newer link elsewhere took it
            was_current = rt.presence.node_of(camera_id) is None
        if was_current:
            # look-ins in progress end in the record now; the device stops by itself
            await lookins.link_lost(rt, camera_id)
