"""The hub between staff browsers and agent links. It relays SDP; media never comes here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from camera_agent.protocol import Refusal, encode_message

log = logging.getLogger("supervision.signaling")


async def close_socket(ws: WebSocket, code: int, reason: str) -> None:
    """Close one socket with a code and reason; a peer that has already gone is fine.

    A close frame holds 123 bytes of reason, which may quote what the peer sent, so it is
    cut on a character boundary."""
    try:
        await ws.close(code=code, reason=reason.encode()[:120].decode("utf-8", "ignore"))
    except (RuntimeError, WebSocketDisconnect):
        pass


class AgentUnavailable(Exception):
    pass


@dataclass
class AgentConnection:
    camera_id: str
    ws: WebSocket
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, msg_type: str, **fields: Any) -> None:
        async with self.lock:
            await self.ws.send_text(encode_message(msg_type, **fields))


class AgentLinks:
    def __init__(self) -> None:
        self.connected: dict[str, AgentConnection] = {}
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        #: called for agent reports that change the database (set by the app)
        self.on_report: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None

    def attach(self, conn: AgentConnection) -> AgentConnection | None:
        """A newer link for the same camera replaces the older one (returned to close it)."""
        old = self.connected.get(conn.camera_id)
        self.connected[conn.camera_id] = conn
        return old

    def detach(self, conn: AgentConnection) -> None:
        if self.connected.get(conn.camera_id) is conn:
            del self.connected[conn.camera_id]

    def is_online(self, camera_id: str) -> bool:
        return camera_id in self.connected

    async def send(self, camera_id: str, msg_type: str, **fields: Any) -> bool:
        conn = self.connected.get(camera_id)
        if conn is None:
            return False
        try:
            await conn.send(msg_type, **fields)
            return True
        except Exception:
            log.info("send to %s failed", camera_id)
            return False

    async def request_lookin(self, camera_id: str, session: str, ticket: str, offer: str,
                             timeout: float) -> dict[str, Any]:
        """Relay {ticket, offer}; wait for the agent's signed answer or its refusal."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[session] = future
        try:
            if not await self.send(camera_id, "lookin", session=session, ticket=ticket,
                                   offer=offer):
                raise AgentUnavailable(camera_id)
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(session, None)
        if reply["type"] == "refused":
            raise Refusal(str(reply.get("reason", "refused")), str(reply.get("detail", "")))
        return reply

    async def handle(self, camera_id: str, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind in ("answer", "refused"):
            future = self._pending.get(str(msg.get("session", "")))
            if future is not None and not future.done():
                future.set_result(msg)
        if self.on_report is not None and kind != "answer":
            await self.on_report(camera_id, msg)
