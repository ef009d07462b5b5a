"""Dispatch alerts: written with the outcome that causes them, pushed to every patrol client,
re-sent until acknowledged, escalated when nobody acknowledges in time."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import WebSocket
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from supervision import audit, webhook
from supervision.checks import AlertEffect
from supervision.models import Alert, Check, Recipient

log = logging.getLogger("supervision.alerts")

ACTIVE = ("new", "acknowledged", "on-the-way", "arrived")
NEXT_STATE = {"acknowledged": ("new",), "on-the-way": ("new", "acknowledged"),
              "arrived": ("new", "acknowledged", "on-the-way"),
              "resolved": ("new", "acknowledged", "on-the-way", "arrived")}


async def raise_alert(db: AsyncSession, check: Check, effect: AlertEffect, actor: str) -> Alert:
    """Write the alert in the caller's transaction; push it after commit."""
    now = datetime.now(UTC)
    alert = Alert(check_id=check.id, recipient_id=check.recipient_id, priority=effect.priority,
                  reason=effect.reason, state="new", created_at=now, updated_at=now)
    db.add(alert)
    await db.flush()
    await audit.append(db, actor, "alert.raised", f"alert:{alert.id}",
                       {"check": check.id, "recipient": check.recipient_id,
                        "reason": effect.reason, "priority": effect.priority})
    await webhook.enqueue(db, alert, "alert.raised")
    return alert


async def patrol_view(db: AsyncSession, alert: Alert) -> dict[str, Any]:
    """The alert as patrol clients get it (with access information while active)."""
    recipient = await db.get(Recipient, alert.recipient_id)
    assert recipient is not None
    return alert_json(alert, recipient, with_access=True)


def alert_json(alert: Alert, recipient: Recipient, *, with_access: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": alert.id, "check": alert.check_id, "priority": alert.priority,
        "reason": alert.reason, "state": alert.state,
        "created_at": alert.created_at.isoformat(), "updated_at": alert.updated_at.isoformat(),
        "acknowledged_by": alert.acknowledged_by,
        "escalated": alert.escalated_at is not None,
        "recipient": {"id": recipient.id, "name": recipient.name, "address": recipient.address},
        "note": alert.note,
    }
    # door codes only while the alert is active
    if with_access and alert.state in ACTIVE:
        data["access_info"] = recipient.access_info
    return data


async def active_alerts(db: AsyncSession) -> list[dict[str, Any]]:
    rows = (await db.execute(
        select(Alert, Recipient).join(Recipient, Recipient.id == Alert.recipient_id)
        .where(Alert.state.in_(ACTIVE)).order_by(Alert.priority, Alert.created_at))).all()
    return [alert_json(a, r, with_access=True) for a, r in rows]


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
