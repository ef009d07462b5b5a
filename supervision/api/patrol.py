"""Night patrol: live dispatch alerts and their states."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field

from camera_agent.protocol import CLOSE_AUTH_FAILED, CLOSE_GARBLED, CLOSE_TOO_BIG
from supervision import dispatch
from supervision.alerts import active_alerts
from supervision.auth import COOKIE, load_session
from supervision.context import RowId, Who, require, runtime
from supervision.errors import error_responses
from supervision.runtime import Runtime
from supervision.signaling import close_socket

router = APIRouter(tags=["patrol"])
patrol = require("patrol", "admin")
#: bytes; a patrol client only ever sends pings
MAX_CLIENT_MESSAGE = 4096


class AlertStateRequest(BaseModel):
    state: Literal["acknowledged", "on-the-way", "arrived", "resolved"]
    note: str | None = Field(default=None, max_length=2000)


@router.get("/api/alerts", responses=error_responses(401, 403))
async def alerts(rt: Runtime = Depends(runtime), _: Who = Depends(patrol)) -> list[dict[str, Any]]:
    async with rt.read() as db:
        return await active_alerts(db)


@router.post("/api/alerts/{alert_id}/state",
             responses=error_responses(400, 401, 403, 404, 409))
async def alert_state(alert_id: RowId, body: AlertStateRequest, rt: Runtime = Depends(runtime),
                      current: Who = Depends(patrol)) -> dict[str, Any]:
    return await dispatch.alert_state(rt, current.user, alert_id, body.state, body.note)


@router.websocket("/ws/patrol")
async def patrol_socket(ws: WebSocket) -> None:
    """Live alerts. The client needs no messages of its own; anything it sends is ignored
    except that oversize or garbled input closes this one connection."""
    rt: Runtime = ws.app.state.runtime
    async with rt.read() as db:
        found = await load_session(db, ws.cookies.get(COOKIE))
    if found is None or found[0].role not in ("patrol", "admin"):
        # accept first: a refusal before the handshake is a bare HTTP 403 the page cannot
        # tell from a network error; 4401 tells it to send the person to the login page
        await ws.accept()
        await close_socket(ws, CLOSE_AUTH_FAILED, "not signed in as patrol")
        return
    await ws.accept()
    rt.patrol.reserve(ws)
    try:
        async with rt.read() as db:
            snapshot = await active_alerts(db)
    except Exception:
        rt.patrol.remove(ws)
        raise
    await rt.patrol.add(ws, snapshot)
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                await close_socket(ws, CLOSE_GARBLED, "binary messages are not accepted")
                break
            if len(text) > MAX_CLIENT_MESSAGE or len(text.encode()) > MAX_CLIENT_MESSAGE:
                await close_socket(ws, CLOSE_TOO_BIG, "message too big")
                break
            try:
                msg = json.loads(text)
            except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
                await close_socket(ws, CLOSE_GARBLED, "garbled message")
                break
            if isinstance(msg, dict) and msg.get("type") == "ping":
                await ws.send_text('{"type":"pong"}')
    except (WebSocketDisconnect, asyncio.CancelledError, RuntimeError):
        pass
    finally:
        rt.patrol.remove(ws)
