"""Dispatch alerts as rows: written in the transaction of the change that causes them,
with their audit entry and (when a receiver is configured) their webhook outbox row.

Every change of an alert's state is a guarded update on the state it was read in (see
``alert_states``), so two patrol members, or a patrol member and the escalation, never
both move one alert. Pushing alerts to patrol sockets is ``patrol.PatrolFanout``'s job,
after the commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from supervision import audit, webhook
from supervision.alert_states import ACTIVE, AlertState, sends_patrol
from supervision.checks import AlertEffect
from supervision.models import Alert, Check, Recipient

#: how far back the patrol's "tonight" list reaches: longer than any night shift


async def raise_alert(db: AsyncSession, check: Check, effect: AlertEffect, actor: str, *,
                      webhook_on: bool) -> Alert:
    """Write the alert in the caller's transaction; the caller pushes it after commit.

    The caller has just won the check's guarded transition, so this is the check's only
    alert (a unique index on ``alerts.check_id`` holds that even against a bug).
    ``webhook_on``: an alarm receiver is configured, so the outbox row is written too.
    """
    now = datetime.now(UTC)
    alert = Alert(check_id=check.id, recipient_id=check.recipient_id, priority=effect.priority,
                  reason=effect.reason, state=AlertState.NEW.value, created_at=now,
                  updated_at=now)
    db.add(alert)
    await db.flush()
    await audit.append(db, actor, "alert.raised", f"alert:{alert.id}",
                       {"check": check.id, "recipient": check.recipient_id,
                        "reason": effect.reason, "priority": effect.priority})
    if webhook_on:
        await webhook.enqueue(db, alert, "alert.raised")
    return alert


async def move(db: AsyncSession, alert: Alert, wanted: AlertState, actor: str,
               note: str | None, now: datetime) -> bool:
    """Move ``alert`` from the state it was read in to ``wanted``; whether this writer won.
    The caller has checked the transition with ``alert_states.advance``."""
    values: dict[str, Any] = {"state": wanted.value, "updated_at": now}
    if wanted is AlertState.ACKNOWLEDGED or alert.acknowledged_by is None:
        values["acknowledged_by"] = actor
    if note:
        values["note"] = note
    result = await db.execute(
        update(Alert).where(Alert.id == alert.id, Alert.state == alert.state)
        .values(**values).execution_options(synchronize_session=False))
    assert isinstance(result, CursorResult)
    if result.rowcount != 1:
        return False
    await db.refresh(alert)
    return True


async def escalate(db: AsyncSession, alert: Alert, now: datetime) -> bool:
    """Mark a new, unacknowledged alert escalated, once; whether this writer did."""
    result = await db.execute(
        update(Alert).where(Alert.id == alert.id, Alert.state == AlertState.NEW.value,
                            Alert.escalated_at.is_(None))
        .values(escalated_at=now).execution_options(synchronize_session=False))
    assert isinstance(result, CursorResult)
    if result.rowcount != 1:
        return False
    await db.refresh(alert)
    return True


async def patrol_view(db: AsyncSession, alert: Alert) -> dict[str, Any]:
    """The alert as patrol clients get it (with access information while it sends them)."""
    recipient = await db.get(Recipient, alert.recipient_id)
    check = await db.get(Check, alert.check_id) if alert.check_id is not None else None
    assert recipient is not None
    return alert_json(alert, recipient, check, with_access=True)


def alert_json(alert: Alert, recipient: Recipient, check: Check | None, *,
               with_access: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": alert.id, "check": alert.check_id, "priority": alert.priority,
        "reason": alert.reason, "state": alert.state,
        "created_at": alert.created_at.isoformat(), "updated_at": alert.updated_at.isoformat(),
        "acknowledged_by": alert.acknowledged_by,
        "escalated": alert.escalated_at is not None,
        "recipient": {"id": recipient.id, "name": recipient.name, "address": recipient.address},
        "note": alert.note,
        # what the staff member who raised it wrote with the outcome, and who that was
        "staff_note": check.note if check is not None else None,
        "raised_by": check.actor if check is not None else None,
    }
    # a door code, the contact people and the care notes travel only with an alert that
    # sends someone, and only while it does: never once it is resolved
    if with_access and alert.state in ACTIVE and sends_patrol(alert.reason):
        data["access_info"] = recipient.access_info
        data["contacts"] = [{k: str(c.get(k) or "") for k in ("name", "relation", "phone")}
                            for c in recipient.contacts or [] if isinstance(c, dict)]
        data["care_notes"] = recipient.care_notes or ""
    return data


async def active_alerts(db: AsyncSession) -> list[dict[str, Any]]:
    rows = (await db.execute(
        select(Alert, Recipient, Check).join(Recipient, Recipient.id == Alert.recipient_id)
        .outerjoin(Check, Check.id == Alert.check_id)
        .where(Alert.state.in_([s.value for s in ACTIVE]))
        .order_by(Alert.priority, Alert.created_at))).all()
    return [alert_json(a, r, c, with_access=True) for a, r, c in rows]


async def unacknowledged(db: AsyncSession) -> list[dict[str, Any]]:
    """New alerts, for the at-least-once re-send."""
    rows = (await db.execute(
        select(Alert, Recipient, Check).join(Recipient, Recipient.id == Alert.recipient_id)
        .outerjoin(Check, Check.id == Alert.check_id)
        .where(Alert.state == AlertState.NEW.value))).all()
    return [alert_json(a, r, c, with_access=True) for a, r, c in rows]


async def patrol_notes(db: AsyncSession, recipient_id: int, limit: int = 20
                       ) -> list[dict[str, Any]]:
    """The patrol's notes on a recipient's resolved alerts, newest first (the care
    manager's page): when, who, why, what was done."""
    rows = (await db.execute(
        select(Alert).where(Alert.recipient_id == recipient_id,
                            Alert.state == AlertState.RESOLVED.value, Alert.note.is_not(None))
        .order_by(Alert.updated_at.desc()).limit(limit))).scalars().all()
    return [{"id": a.id, "at": a.updated_at, "by": a.acknowledged_by or "",
             "reason": a.reason, "note": a.note} for a in rows]
