"""The patrol's side of an alert: acknowledged -> on the way -> arrived -> resolved."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from supervision import alerts, audit, webhook
from supervision.alert_feed import announce, publish
from supervision.alert_states import AlertState, advance
from supervision.checks import TransitionError
from supervision.errors import ServiceError
from supervision.models import Alert, Check, Recipient, User
from supervision.runtime import Runtime

PATROL_ROLES = ("patrol", "admin")


async def alert_state(rt: Runtime, user: User, alert_id: int, state: str,
                      note: str | None) -> dict[str, Any]:
    """Move an alert forwards; of two patrol members pressing at once, one wins and the
    other is told the alert's state and who has it."""
    if user.role not in PATROL_ROLES:
        raise ServiceError(403, "error.role")
    try:
        wanted = AlertState(state)
    except ValueError as exc:
        raise ServiceError(422, "error.bad_state") from exc
    now = datetime.now(UTC)
    async with rt.write() as db:
        alert = await db.get(Alert, alert_id)
        if alert is None:
            raise ServiceError(404, "error.no_alert")
        try:
            advance(AlertState(alert.state), wanted)
        except TransitionError as exc:
            raise ServiceError(409, "error.alert_state", state=alert.state,
                               by=alert.acknowledged_by or "",
                               words={"state": f"alert.state.{alert.state}"}) from exc
        if not await alerts.move(db, alert, wanted, user.username, note and note[:2000], now):
            await db.refresh(alert)
            raise ServiceError(409, "error.alert_state", state=alert.state,
                               by=alert.acknowledged_by or "",
                               words={"state": f"alert.state.{alert.state}"})
        await audit.append(db, user.username, f"alert.{state}", f"alert:{alert.id}",
                           {"note": note} if note else {})
        recipient = await db.get(Recipient, alert.recipient_id)
        check = await db.get(Check, alert.check_id) if alert.check_id is not None else None
        assert recipient is not None
        if rt.settings.webhook_on:
            await webhook.enqueue(db, alert, f"alert.{state}", recipient)
        await announce(rt, db, alert.id)
        data = alerts.alert_json(alert, recipient, check, with_access=True)
    await publish(rt, data)
    return data
