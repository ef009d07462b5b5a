"""The patrol's live sockets on this node: the fan-out hub beside ``signaling.AgentLinks``.

It holds sockets and queues, never alert rows: ``alerts`` writes the rows, and whoever
committed a change hands the patrol's view of it to ``broadcast``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import WebSocket

log = logging.getLogger("supervision.patrol")


class _Outbox:
    """One patrol client's queue and the task that writes it out. Sends on a healthy socket
    complete without suspending, so a broadcast is one enqueue per client, not one task and
    one timer per client; a slow client holds up only its own queue."""

    __slots__ = ("first", "queue", "task", "ws")

    def __init__(self, ws: WebSocket, limit: int) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue(limit)
        self.task: asyncio.Task[None] | None = None
        self.first: str | None = None  # the snapshot, sent before anything queued

    async def run(self, fanout: PatrolFanout) -> None:
        try:
            if self.first is not None:
                await self.ws.send_text(self.first)
            while True:
                text = await self.queue.get()
                await self.ws.send_text(text)
        except asyncio.CancelledError:
            raise
        except Exception:  # gone; its socket handler ends too
            fanout.remove(self.ws)


class PatrolFanout:
    """Connected patrol clients on this node. Delivery is at least once: a client gets every
    active alert on connect, each new one at once, and unacknowledged ones again and again.

    A client too slow to take what is sent is dropped and closed, never silently skipped: its
    app reconnects and gets the snapshot of active alerts again."""

    def __init__(self, queue_limit: int = 1000) -> None:
        self._outboxes: dict[WebSocket, _Outbox] = {}
        self._limit = queue_limit
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def clients(self) -> set[WebSocket]:
        return set(self._outboxes)

    def reserve(self, ws: WebSocket) -> None:
        """Register before reading the snapshot: an alert committed meanwhile is queued,
        not lost between the read and the registration."""
        self._outboxes[ws] = _Outbox(ws, self._limit)

    async def add(self, ws: WebSocket, alerts: list[dict[str, Any]]) -> None:
        outbox = self._outboxes.get(ws)
        if outbox is None:
            outbox = self._outboxes[ws] = _Outbox(ws, self._limit)
        outbox.first = json.dumps({"type": "snapshot", "alerts": alerts})
        outbox.task = asyncio.create_task(outbox.run(self), name="patrol-outbox")

    def remove(self, ws: WebSocket) -> None:
        outbox = self._outboxes.pop(ws, None)
        if outbox is not None and outbox.task is not None \
                and outbox.task is not asyncio.current_task():
            outbox.task.cancel()

    async def broadcast(self, message: dict[str, Any]) -> int:
        """Serialised once, queued for every client; returns how many clients it was queued for."""
        text = json.dumps(message)
        queued = 0
        for ws, outbox in list(self._outboxes.items()):
            try:
                outbox.queue.put_nowait(text)
                queued += 1
            except asyncio.QueueFull:
                log.warning("patrol client too slow: %d messages waiting; closing it",
                            outbox.queue.qsize())
                self.remove(ws)
                task = asyncio.create_task(self._close(ws))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        return queued

    @staticmethod
    async def _close(ws: WebSocket) -> None:
        try:
            async with asyncio.timeout(5):
                await ws.close(code=1013, reason="too slow")
        except Exception:  # uvicorn's keepalive ends a socket that cannot even take a close
            pass
