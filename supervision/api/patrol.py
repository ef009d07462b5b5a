"""Night patrol: live dispatch alerts and their states, and the phone's push subscription."""

from __future__ import annotations

import asyncio
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from camera_agent.protocol import CLOSE_AUTH_FAILED, CLOSE_GARBLED, CLOSE_TOO_BIG
from supervision import dispatch, push, vapid
from supervision.alerts import active_alerts
from supervision.auth import COOKIE, ROLES, live_sessions, load_session
from supervision.context import RowId, Who, require, runtime, translator
from supervision.errors import error_responses
from supervision.patrol import CLOSE_SESSION_ENDED, CLOSE_WRONG_ORIGIN, Holder, night_alerts
from supervision.runtime import Runtime
from supervision.signaling import close_socket

router = APIRouter(tags=["patrol"])
PATROL_ROLES = frozenset({"patrol", "admin"})
patrol = require(*sorted(PATROL_ROLES))
_DEFAULT_PORTS = {"http": 80, "https": 443}
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


@router.get("/api/alerts/tonight", responses=error_responses(401, 403))
async def alerts_tonight(rt: Runtime = Depends(runtime),
                         _: Who = Depends(patrol)) -> list[dict[str, Any]]:
    """The night's resolved alerts (the plan's night, and in the morning the night just
    ended), for a patrol taking over a shift (no access information)."""
    async with rt.read() as db:
        return await night_alerts(db)


# --- Web Push: the phone's subscription, the worker, the manifest (supervision/push.py) ---

signed_in = require(*ROLES)
STATIC = Path(__file__).parent.parent / "web" / "static"


class PushKey(BaseModel):
    public_key: str = Field(description="the VAPID key: the subscription's applicationServerKey")


class Unsubscribe(BaseModel):
    #: an endpoint as a subscription holds it: no control characters, nothing to look up
    endpoint: str = Field(min_length=10, max_length=1024, pattern=r"^https?://[^\x00-\x20\x7f]+$")


@router.get("/api/push/key", responses=error_responses(401))
async def push_key(rt: Runtime = Depends(runtime), _: Who = Depends(signed_in)) -> PushKey:
    return PushKey(public_key=vapid.current(vapid.key_file(rt.settings)).public_key)


@router.post("/api/push/subscriptions", status_code=201,
             responses=error_responses(400, 401, 403))
async def push_subscribe(body: push.SubscriptionIn, rt: Runtime = Depends(runtime),
                         current: Who = Depends(signed_in)) -> dict[str, int]:
    """This device gets alerts by push (a patrol member's every alert, a shift lead's the
    escalations); the endpoint must be one of the known push services."""
    return {"id": await push.subscribe(rt.database, rt.settings, current.user, body,
                                       current.session.id)}


@router.post("/api/push/unsubscribe", status_code=204,
             responses=error_responses(400, 401, 403))
async def push_unsubscribe(body: Unsubscribe, rt: Runtime = Depends(runtime),
                           current: Who = Depends(signed_in)) -> Response:
    await push.unsubscribe(rt.database, current.user, body.endpoint)
    return Response(status_code=204)


@router.get("/sw.js", include_in_schema=False)
async def service_worker() -> FileResponse:
    """The patrol's service worker, from the root so that its scope may be the whole site
    (it only shows pushes and answers their actions; it caches nothing)."""
    return FileResponse(STATIC / "sw.js", media_type="text/javascript",
                        headers={"Service-Worker-Allowed": "/"})


@router.get("/manifest.webmanifest", include_in_schema=False)
async def manifest(request: Request) -> JSONResponse:
    """The patrol page as an installable app (name in the asker's language)."""
    t = translator(request)
    icons = [{"src": f"/static/icons/patrol-{n}.png", "sizes": f"{n}x{n}",
              "type": "image/png", "purpose": "any maskable"} for n in (192, 512)]
    return JSONResponse({
        "name": t("push.app_name"), "short_name": t("push.app_short"),
        "start_url": "/patrol", "scope": "/", "display": "standalone",
        "orientation": "portrait", "background_color": "#000000",
        "theme_color": "#000000", "icons": icons, "lang": t.locale,
    }, media_type="application/manifest+json")


@lru_cache(maxsize=64)
def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL or an Origin header, with the default port
    made explicit and an international host name in its ASCII form; None if it is none."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme)
        host = host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return None
    if scheme not in _DEFAULT_PORTS or not host or port is None:
        return None
    return scheme, host, port


def same_origin(origin: str | None, public_url: str) -> bool:
    """A browser socket must come from a page of this service (``Settings.public_url``):
    scheme, host and port alike. Browsers always send Origin on a WebSocket handshake, and
    a WebSocket is not bound by CORS nor, for cookies, by the port, so a missing header,
    "null" or a page on another port of the same host are all refused.

    Only for browser sockets: the agent link (/ws/agent) is not one. Agents send no Origin;
    they prove who they are with their enrolled key (challenge and signature), so that
    link does not look at Origin and must not."""
    own = origin_of(public_url)
    return own is not None and origin is not None and origin_of(origin) == own


@router.websocket("/ws/patrol")
async def patrol_socket(ws: WebSocket) -> None:
    """Live alerts, for as long as the session that opened the socket lives (see
    ``patrol.PatrolFanout``). The client needs no messages of its own; anything it sends is
    ignored except that oversize or garbled input closes this one connection.

    Every refusal accepts first and then closes with a code: a refusal before the handshake
    is a bare HTTP 403 the page cannot tell from a network error. 4403: wrong origin (the
    page says so and stops); 4401: not signed in as patrol (the page goes to login)."""
    rt: Runtime = ws.app.state.runtime
    if not same_origin(ws.headers.get("origin"), rt.settings.public_url):
        await ws.accept()
        await close_socket(ws, CLOSE_WRONG_ORIGIN, "origin not allowed")
        return
    async with rt.read() as db:
        found = await load_session(db, ws.cookies.get(COOKIE))
    if found is None or found[0].role not in PATROL_ROLES:
        await ws.accept()
        await close_socket(ws, CLOSE_AUTH_FAILED, "not signed in as patrol")
        return
    user, session = found
    await ws.accept()
    holder = Holder(session_id=session.id, user_id=user.id, roles=PATROL_ROLES,
                    expires=session.expires_at.timestamp())
    rt.patrol.reserve(ws, holder)
    try:
        async with rt.read() as db:
            # again, now that the socket is registered: a logout committed before this
            # read found no socket to close, so it is caught here, before the snapshot
            live = (await live_sessions(db, {session.id})).get(session.id)
            snapshot = await active_alerts(db) if live and live[1] in PATROL_ROLES else None
    except Exception:
        rt.patrol.remove(ws)
        raise
    if snapshot is None:
        rt.patrol.remove(ws)
        await close_socket(ws, CLOSE_SESSION_ENDED, "session ended")
        return
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
