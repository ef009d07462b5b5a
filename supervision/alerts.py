"""Dispatch alerts as rows: written in the transaction of the change that causes them,
with their audit entry and (when a receiver is configured) their webhook outbox row.

Pushing them to patrol sockets is ``patrol.PatrolFanout``'s job, after the commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from supervision import audit, webhook
from supervision.checks import AlertEffect
from supervision.models import Alert, Check, Recipient

ACTIVE = ("new", "acknowledged", "on-the-way", "arrived")
NEXT_STATE = {"acknowledged": ("new",), "on-the-way": ("new", "acknowledged"),
              "arrived": ("new", "acknowledged", "on-the-way"),
              "resolved": ("new", "acknowledged", "on-the-way", "arrived")}


async def raise_alert(db: AsyncSession, check: Check, effect: AlertEffect, actor: str, *,
                      webhook_on: bool) -> Alert:
    """Write the alert in the caller's transaction; the caller pushes it after commit.

    ``webhook_on``: an alarm receiver is configured, so the outbox row is written too.
    """
    now = datetime.now(UTC)
    alert = Alert(check_id=check.id, recipient_id=check.recipient_id, priority=effect.priority,
                  reason=effect.reason, state="new", created_at=now, updated_at=now)
    db.add(alert)
    await db.flush()
    await audit.append(db, actor, "alert.raised", f"alert:{alert.id}",
                       {"check": check.id, "recipient": check.recipient_id,
                        "reason": effect.reason, "priority": effect.priority})
    if webhook_on:
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
