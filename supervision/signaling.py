"""The hub between staff browsers and agent links. It relays SDP; media never comes here.

It also delivers signed plans and waits for the agent's word on each: ``plan_ack
{version}`` or a ``refused`` carrying the plan's version. A plan counts as delivered only
when acknowledged, so nobody is told a camera holds a plan it never got (one over the
agent's message limit closes its link instead, which ends the wait at once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from camera_agent.protocol import (
    MAX_MESSAGE_BYTES,
    PLAN,
    PLAN_ACK,
    PLAN_REFUSALS,
    REFUSED,
    Refusal,
    encode_message,
)

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


class MessageTooBig(ValueError):
    """Not sent: the agent refuses a message over ``MAX_MESSAGE_BYTES`` by closing its link,
    so sending it would only cut the camera off (and again after every redial)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes, over the agent's {MAX_MESSAGE_BYTES}")
        self.size = size


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


@dataclass
class AgentConnection:
    camera_id: str
    ws: WebSocket
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: the task that made the connection, which is the one reading the agent's messages
    reader: asyncio.Task[Any] | None = field(default_factory=_current_task)

    async def send(self, msg_type: str, **fields: Any) -> None:
        await self.send_text(encode_message(msg_type, **fields))

    async def send_text(self, text: str) -> None:
        """Raises ``MessageTooBig`` for a message the agent would refuse, sending nothing."""
        size = len(text.encode("utf-8"))  # encode_message's text always encodes
        if size > MAX_MESSAGE_BYTES:
            raise MessageTooBig(size)
        async with self.lock:
            await self.ws.send_text(text)


@dataclass
class _PlanWait:
    """One plan delivery waiting for the agent's word."""

    conn: AgentConnection
    version: int
    answer: asyncio.Future[bool]


class AgentLinks:
    def __init__(self) -> None:
        self.connected: dict[str, AgentConnection] = {}
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._plan_waits: list[_PlanWait] = []
        #: called for agent reports that change the database (set by the app)
        self.on_report: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None

    def attach(self, conn: AgentConnection) -> AgentConnection | None:
        """A newer link for the same camera replaces the older one (returned to close it)."""
        old = self.connected.get(conn.camera_id)
        self.connected[conn.camera_id] = conn
        if old is not None:
            self._answer_plans(lambda w: w.conn is old, False)
        return old

    def detach(self, conn: AgentConnection) -> None:
        """The link is gone: plans sent on it will not be acknowledged now."""
        if self.connected.get(conn.camera_id) is conn:
            del self.connected[conn.camera_id]
        self._answer_plans(lambda w: w.conn is conn, False)

    def is_online(self, camera_id: str) -> bool:
        """Linked to this node (``relay.Relay.is_online`` asks every node)."""
        return camera_id in self.connected

    async def cut(self, camera_id: str, code: int, reason: str) -> bool:
        """Close the camera's link on this node, if it is here; whether it was."""
        conn = self.connected.get(camera_id)
        if conn is None:
            return False
        self.detach(conn)
        async with conn.lock:
            await close_socket(conn.ws, code, reason)
        return True

    async def send(self, camera_id: str, msg_type: str, **fields: Any) -> bool:
        return await self._send_text(camera_id, encode_message(msg_type, **fields))

    async def _send_text(self, camera_id: str, text: str) -> bool:
        conn = self.connected.get(camera_id)
        if conn is None:
            return False
        try:
            await conn.send_text(text)
            return True
        except MessageTooBig as exc:
            log.error("message to %s not sent: %s", camera_id, exc)
            return False
        except Exception:
            log.info("send to %s failed", camera_id)
            return False

    async def request_lookin(self, camera_id: str, session: str, ticket: str, offer: str,
                             timeout: float, **fields: Any) -> dict[str, Any]:
        """Relay {ticket, offer} (and ``fields``, e.g. ICE servers); wait for the agent's
        signed answer or its refusal.

        An offer too big for the agent's link is refused here (``bad-offer``), as the agent
        would refuse a malformed one, instead of being sent to cut the camera's link."""
        text = encode_message("lookin", session=session, ticket=ticket, offer=offer, **fields)
        if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
            raise Refusal("bad-offer", f"the offer is too big for the camera's link "
                          f"(at most {MAX_MESSAGE_BYTES} bytes a message)")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[session] = future
        try:
            if not await self._send_text(camera_id, text):
                raise AgentUnavailable(camera_id)
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(session, None)
        if reply["type"] == "refused":
            raise Refusal(str(reply.get("reason", "refused")), str(reply.get("detail", "")))
        return reply

    async def deliver_plan(self, camera_id: str, version: int, timeout: float,
                           **fields: Any) -> bool:
        """Send a signed plan; True only once the agent acknowledged this version.

        False when the camera is not linked, the message would exceed the agent's limit
        (it would close the link: not sent), the agent refused the plan, the link dropped,
        or no answer came within ``timeout`` seconds. On the task that reads this link
        (the push when an agent links) no answer can be read while waiting, so it is not
        waited for there: True only if it had already come.
        """
        conn = self.connected.get(camera_id)
        if conn is None:
            return False
        wait = _PlanWait(conn, version, asyncio.get_running_loop().create_future())
        self._plan_waits.append(wait)
        try:
            try:
                await conn.send_text(encode_message(PLAN, version=version, **fields))
            except MessageTooBig as exc:  # stored before the plan's bounds existed
                log.error("plan version %s for %s not sent: %s", version, camera_id, exc)
                return False
            except Exception:
                log.info("plan to %s not sent: the link failed", camera_id)
                return False
            if conn.reader is not None and conn.reader is asyncio.current_task():
                return wait.answer.done() and wait.answer.result()
            try:
                return await asyncio.wait_for(asyncio.shield(wait.answer), timeout)
            except TimeoutError:
                log.warning("camera %s did not acknowledge plan version %s within %.1f s",
                            camera_id, version, timeout)
                return False
        finally:
            self._plan_waits.remove(wait)

    def _answer_plans(self, which: Callable[[_PlanWait], bool], answer: bool) -> None:
        for wait in self._plan_waits:
            if which(wait) and not wait.answer.done():
                wait.answer.set_result(answer)

    def _plan_answer(self, camera_id: str, msg: dict[str, Any]) -> None:
        """Resolve deliveries waiting on this camera's plan_ack or plan refusal."""
        kind, version = msg["type"], msg.get("version")
        known = isinstance(version, int) and not isinstance(version, bool)
        if kind == PLAN_ACK and known:
            self._answer_plans(
                lambda w: w.conn.camera_id == camera_id and w.version == version, True)
        elif kind == REFUSED and not msg.get("session"):
            if known:
                self._answer_plans(
                    lambda w: w.conn.camera_id == camera_id and w.version == version, False)
            elif msg.get("reason") in PLAN_REFUSALS:  # an agent that names no version
                self._answer_plans(lambda w: w.conn.camera_id == camera_id, False)

    async def handle(self, camera_id: str, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind in ("answer", "refused"):
            future = self._pending.get(str(msg.get("session", "")))
            if future is not None and not future.done():
                future.set_result(msg)
        if kind in (PLAN_ACK, REFUSED):
            self._plan_answer(camera_id, msg)
        if self.on_report is not None and kind != "answer":
            await self.on_report(camera_id, msg)
