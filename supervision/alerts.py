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

from supervision import audit
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
    return alert


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


class PatrolFanout:
    """Connected patrol clients on this node. Delivery is at least once: a client gets every
    active alert on connect, each new one at once, and unacknowledged ones again and again."""

    def __init__(self) -> None:
        self.clients: set[WebSocket] = set()

    async def add(self, ws: WebSocket, alerts: list[dict[str, Any]]) -> None:
        self.clients.add(ws)
        await self._send(ws, {"type": "snapshot", "alerts": alerts})

    def remove(self, ws: WebSocket) -> None:
        self.clients.discard(ws)

    async def broadcast(self, message: dict[str, Any]) -> int:
        clients = list(self.clients)
        results = await asyncio.gather(*(self._send(ws, message) for ws in clients))
        return sum(results)

    async def _send(self, ws: WebSocket, message: dict[str, Any]) -> bool:
        try:
            await asyncio.wait_for(ws.send_text(json.dumps(message)), 5)
            return True
        except Exception:  # a dead client must not block the others
            self.clients.discard(ws)
            return False
