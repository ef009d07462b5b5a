"""Nodes: this process among the others that serve one database, and the messages between them.

Several nodes share one PostgreSQL database and coordinate through it alone (no broker):
each node is a row of ``nodes`` that it keeps fresh (``heard_at``), and messages go over
LISTEN/NOTIFY on one channel, ``CHANNEL``. A payload is small JSON that says what changed
and where to look, never the thing itself: "alert 17 changed" (every node reads the row
and pushes its own patrol sockets), "camera X is now linked on node N", "close the sockets
of session S". A message for one node (``call``: relay a look-in to the node holding the
camera's link) names it; a body over ``INLINE_BYTES`` (an SDP offer with its candidates, a
signed plan) goes in a ``node_messages`` row that the addressee deletes as it reads it.

A notification sent inside a transaction is delivered when, and only if, it commits, so an
alert and the news of it cannot part. A node whose listening connection dropped reconnects
with backoff and then reads the rows addressed to it; what it may have missed of the
broadcasts is made good by its ``on_reconnect`` hooks (presence reloaded, patrol snapshot).

SQLite: one node by definition; nothing is sent and every message is local.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from camera_agent.backoff import backoff
from supervision.db import Database
from supervision.models import Node, NodeMessage

log = logging.getLogger("supervision.nodes")

CHANNEL = "nattillsyn"
#: PostgreSQL refuses payloads of 8,000 bytes and more; a bigger body goes in a row
INLINE_BYTES = 7000
#: message rows nobody read (the addressee died) are deleted after this
MESSAGE_TTL = timedelta(minutes=10)
#: node rows not heard from for this long are deleted (their links are long gone)
NODE_TTL = timedelta(hours=1)

Handler = Callable[[dict[str, Any]], None]
Method = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class CallFailed(Exception):
    """The other node did not answer in time, or does not know the method."""


def new_node_id(port: int) -> str:
    """Unique per process start: a restarted node is a new node, so nothing a dead process
    left behind (its links, its messages) is taken for the new one's."""
    return f"{socket.gethostname()[:40]}:{port}:{os.getpid()}:{secrets.token_hex(3)}"


class Nodes:
    """This node's identity, its liveness row, and the messages between nodes."""

    def __init__(self, database: Database, database_url: str, *, node_id: str, name: str,
                 heartbeat_seconds: float, alive_seconds: float) -> None:
        self.id = node_id
        self.name = name[:128]
        self.database = database
        self.shared = make_url(database_url).get_backend_name() == "postgresql"
        self._engine: AsyncEngine | None = (
            create_async_engine(database_url, poolclass=NullPool) if self.shared else None)
        self._heartbeat = heartbeat_seconds
        self._alive_for = timedelta(seconds=alive_seconds)
        self._alive: set[str] = {node_id}
        self._handlers: dict[str, Handler] = {}
        self._methods: dict[str, Method] = {}
        self._calls: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._conn: AsyncConnection | None = None
        self._down = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []

    # --- who is alive -------------------------------------------------------------

    def alive(self, node_id: str | None) -> bool:
        """``node_id`` was heard within the alive window at the last look (or is this node).
        On SQLite this process is the only node: whatever an earlier one left is gone."""
        return node_id is not None and (node_id == self.id
                                        or (self.shared and node_id in self._alive))

    async def _beat(self) -> None:
        now = datetime.now(UTC)
        async with self.database.write() as db:
            found = await db.execute(update(Node).where(Node.id == self.id)
                                     .values(heard_at=now))
            if not found.rowcount:  # type: ignore[attr-defined]
                db.add(Node(id=self.id, name=self.name, started_at=now, heard_at=now))
            rows = await db.execute(select(Node.id).where(
                Node.heard_at > now - self._alive_for))
            self._alive = set(rows.scalars()) | {self.id}
            await db.execute(delete(Node).where(Node.heard_at < now - NODE_TTL))
            await db.execute(delete(NodeMessage).where(
                NodeMessage.created_at < now - MESSAGE_TTL))

    # --- registration -------------------------------------------------------------

    def on(self, kind: str, handler: Handler) -> None:
        """Run ``handler`` (at once, on the loop: it must not block) for every broadcast of
        ``kind`` from another node."""
        self._handlers[kind] = handler

    def serve(self, method: str, fn: Method) -> None:
        """Answer ``call``s of ``method`` from other nodes with what ``fn`` returns."""
        self._methods[method] = fn

    # --- sending ------------------------------------------------------------------

    async def tell(self, db: AsyncSession | None, kind: str, **fields: Any) -> None:
        """Broadcast to every other node; with ``db``, as part of its transaction (sent at
        its commit, not at all if it rolls back)."""
        if not self.shared:
            return
        payload = json.dumps({"k": kind, "o": self.id, **fields}, separators=(",", ":"))
        if len(payload.encode()) >= INLINE_BYTES:
            raise ValueError(f"a broadcast of {kind} is too big for a notification")
        if db is not None:
            await _notify(db, payload)
            return
        async with self.database.write() as own:
            await _notify(own, payload)

    async def call(self, node_id: str, method: str, args: dict[str, Any],
                   timeout: float) -> dict[str, Any]:
        """Ask ``node_id`` to run ``method`` with ``args``; its answer. Raises ``CallFailed``
        when no answer comes within ``timeout`` seconds (the node died, or is not there)."""
        if node_id == self.id:
            fn = self._methods.get(method)
            if fn is None:
                raise CallFailed(f"no method {method}")
            return await fn(args)
        if not self.shared:
            raise CallFailed("no other node shares this database")
        call_id = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        try:
            await self._send(node_id, {"m": method, "a": args, "c": call_id, "from": self.id})
            return await asyncio.wait_for(future, timeout)
        except TimeoutError as exc:
            raise CallFailed(f"{method} on {node_id}: no answer within {timeout:.1f} s") \
                from exc
        finally:
            self._calls.pop(call_id, None)

    async def _send(self, node_id: str, body: dict[str, Any]) -> None:
        """One message for one node: inline if it fits, else in a row the payload names."""
        raw = json.dumps(body, separators=(",", ":"))
        async with self.database.write() as db:
            payload = json.dumps({"k": "msg", "to": node_id, "b": raw}, separators=(",", ":"))
            if len(payload.encode()) >= INLINE_BYTES:
                row = NodeMessage(to_node=node_id, body=raw, created_at=datetime.now(UTC))
                db.add(row)
                await db.flush()
                payload = json.dumps({"k": "msg", "to": node_id, "id": row.id})
            await _notify(db, payload)

    # --- receiving ----------------------------------------------------------------

    def _received(self, payload: str) -> None:
        """A notification (asyncpg calls this on the loop, for every node's messages)."""
        try:
            msg = json.loads(payload)
            kind = msg["k"]
        except (ValueError, KeyError, TypeError):
            log.warning("garbled notification ignored")
            return
        if kind == "msg":
            if msg.get("to") == self.id:
                self._spawn(self._message(msg))
            return
        if msg.get("o") == self.id:
            return  # our own broadcast: this node acted on it before sending
        handler = self._handlers.get(kind)
        if handler is not None:
            try:
                handler(msg)
            except Exception:
                log.exception("handling a %s notification failed", kind)

    async def _message(self, msg: dict[str, Any]) -> None:
        if "b" in msg:
            raw = str(msg["b"])
        elif not isinstance(msg.get("id"), int):
            log.warning("a message without a body or a row ignored")
            return
        else:
            async with self.database.write() as db:
                raw = (await db.execute(delete(NodeMessage).where(
                    NodeMessage.id == int(msg["id"]), NodeMessage.to_node == self.id)
                    .returning(NodeMessage.body))).scalar() or ""
            if not raw:
                return  # read already (after a reconnect)
        await self._body(json.loads(raw))

    async def _body(self, body: dict[str, Any]) -> None:
        if "r" in body:  # an answer to one of our calls
            future = self._calls.get(str(body["r"]))
            if future is not None and not future.done():
                future.set_result(dict(body.get("v") or {}))
            return
        fn = self._methods.get(str(body.get("m")))
        if fn is None:
            log.warning("call of unknown method %r from %s", body.get("m"), body.get("from"))
            return
        try:
            answer = await fn(dict(body.get("a") or {}))
        except Exception:
            log.exception("method %s failed", body.get("m"))
            answer = {"failed": True}
        await self._send(str(body["from"]), {"r": body["c"], "v": answer})

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[None]) -> None:
        """A message handled: a failure is logged, never left unread on the task."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a message from another node failed", exc_info=task.exception())

    # --- the listening connection -------------------------------------------------

    async def start(self) -> None:
        """Register this node and, on PostgreSQL, listen; then keep both up until stop."""
        await self._beat()
        if self._engine is not None:
            await self._listen()
        self._runner = asyncio.create_task(self._run(), name="nodes")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._tasks):
            task.cancel()
        await self._close()
        with contextlib.suppress(Exception):  # gone at once for the others, not in 8 s
            async with self.database.write() as db:
                await db.execute(delete(Node).where(Node.id == self.id))
        if self._engine is not None:
            await self._engine.dispose()

    async def _listen(self) -> None:
        assert self._engine is not None
        conn = await asyncio.wait_for(self._engine.connect(), 5)
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.add_listener(CHANNEL, lambda _c, _pid, _ch, payload:
                                   self._received(payload))
            raw.add_termination_listener(lambda _c: self._down.set())
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            raise
        self._conn = conn
        self._down.clear()

    async def _run(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._down.wait(), self._heartbeat)
            try:
                await self._beat()
            except Exception as exc:
                log.warning("node heartbeat failed: %r", exc)
            if self._engine is None or not self._down.is_set():
                continue
            log.warning("lost the connection that listens to other nodes; reconnecting")
            await self._close()
            try:
                await self._listen()
            except Exception as exc:
                failures += 1
                delay = backoff(failures, 0.5, 10.0)
                log.warning("cannot listen to other nodes (%r); again in %.1f s", exc, delay)
                self._down.set()
                await asyncio.sleep(delay)
                continue
            failures = 0
            await self._caught_up()

    async def _caught_up(self) -> None:
        """After a gap: the messages addressed here, then each hook's own repair."""
        async with self.database.write() as db:
            bodies = list((await db.execute(delete(NodeMessage).where(
                NodeMessage.to_node == self.id).returning(NodeMessage.body))).scalars())
        for raw in bodies:
            self._spawn(self._body(json.loads(raw)))
        for hook in self.on_reconnect:
            try:
                await hook()
            except Exception:
                log.exception("a reconnect hook failed")

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.invalidate(), 5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)


async def _notify(db: AsyncSession, payload: str) -> None:
    await db.execute(text("SELECT pg_notify(:channel, :payload)"),
                     {"channel": CHANNEL, "payload": payload})
