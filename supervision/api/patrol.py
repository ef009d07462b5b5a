"""Night patrol: live dispatch alerts and their states."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field

from supervision import dispatch
from supervision.alerts import active_alerts
from supervision.api.deps import Who, require, runtime
from supervision.auth import COOKIE, load_session
from supervision.runtime import Runtime

router = APIRouter(tags=["patrol"])
patrol = require("patrol", "admin")


class AlertStateRequest(BaseModel):
    state: Literal["acknowledged", "on-the-way", "arrived", "resolved"]
    note: str | None = Field(default=None, max_length=2000)


@router.get("/api/alerts")
async def alerts(rt: Runtime = Depends(runtime), _: Who = Depends(patrol)) -> list[dict[str, Any]]:
    async with rt.read() as db:
        return await active_alerts(db)


@router.post("/api/alerts/{alert_id}/state")
async def alert_state(alert_id: int, body: AlertStateRequest, rt: Runtime = Depends(runtime),
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
        await ws.close(code=4401, reason="not signed in as patrol")
        return
    await ws.accept()
    async with rt.read() as db:
        snapshot = await active_alerts(db)
    await rt.patrol.add(ws, snapshot)
    try:
        while True:
            text = await ws.receive_text()
            if len(text) > 4096:
                await ws.close(code=4413, reason="message too big")
                break
            try:
                msg = json.loads(text)
            except ValueError:
                await ws.close(code=4400, reason="garbled message")
                break
            if isinstance(msg, dict) and msg.get("type") == "ping":
                await ws.send_text('{"type":"pong"}')
    except (WebSocketDisconnect, asyncio.CancelledError, RuntimeError):
        pass
    finally:
        rt.patrol.remove(ws)
