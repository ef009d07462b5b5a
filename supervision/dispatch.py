"""The patrol's side of an alert: acknowledged -> on the way -> arrived -> resolved."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from supervision import audit, webhook
from supervision.alerts import NEXT_STATE, alert_json
from supervision.errors import ServiceError
from supervision.models import Alert, Recipient, User
from supervision.runtime import Runtime


async def alert_state(rt: Runtime, user: User, alert_id: int, state: str,
                      note: str | None) -> dict[str, Any]:
    if user.role not in ("patrol", "admin"):
        raise ServiceError(403, "error.role")
    if state not in NEXT_STATE:
        raise ServiceError(422, "error.bad_state")
    async with rt.write() as db:
        alert = await db.get(Alert, alert_id)
        if alert is None:
            raise ServiceError(404, "error.no_alert")
        if alert.state not in NEXT_STATE[state]:
            raise ServiceError(409, "error.alert_state", state=alert.state)
        alert.state, alert.updated_at = state, datetime.now(UTC)
        if state == "acknowledged" or alert.acknowledged_by is None:
            alert.acknowledged_by = user.username
        if note:
            alert.note = note[:2000]
        await audit.append(db, user.username, f"alert.{state}", f"alert:{alert.id}",
                           {"note": note} if note else {})
        recipient = await db.get(Recipient, alert.recipient_id)
        assert recipient is not None
        if rt.settings.webhook_on:
            await webhook.enqueue(db, alert, f"alert.{state}", recipient)
        data = alert_json(alert, recipient, with_access=True)
    await rt.patrol.broadcast({"type": "alert", "alert": data})
    return data
