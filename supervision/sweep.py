"""The sweep: moves checks through their windows and escalates unacknowledged alerts.

Idempotent and driven only by the database and the clock, so after a crash the first
sweep puts everything right: overdue checks end as missed with their alerts, follow-ups
open on time, and escalations happen late rather than never.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from supervision import audit, checks, webhook
from supervision.alerts import alert_json, patrol_view, raise_alert
from supervision.checks import State
from supervision.models import Alert, Camera, Check, Recipient, Visit
from supervision.runtime import Runtime

log = logging.getLogger("supervision.sweep")


async def sweep(rt: Runtime, now: datetime | None = None, *, started_at: datetime) -> None:
    now = now or datetime.now(UTC)
    pushed: list[dict[str, Any]] = []
    grace = now - started_at < timedelta(seconds=rt.settings.agent_offline_seconds)
    async with rt.write() as db:
        due = (await db.execute(select(Check).where(
            Check.state.in_((State.PLANNED, State.OPEN)), Check.opens_at <= now)
            .order_by(Check.opens_at))).scalars().all()
        for check in due:
            step = None
            if check.closes_at < now:
                if await _lookin_in_progress(db, check, now):
                    continue
                recipient = await db.get(Recipient, check.recipient_id)
                unit = recipient.unit if recipient else ""
                step = checks.close_window(State(check.state),
                                           missed_action=rt.settings.missed_action_for(unit))
            elif check.state == State.PLANNED:
                if not grace and not await _camera_alive(rt, db, check, now):
                    step = checks.agent_offline(State(check.state))
                else:
                    step = checks.open_window(State(check.state))
            if step is None:
                continue
            check.state, check.reason = step.state, step.reason
            if step.state in checks.ENDED:
                check.ended_at, check.actor = now, "sweep"
            await audit.append(db, "sweep", f"check.{step.state.value}", f"check:{check.id}",
                               {"reason": step.reason})
            if step.alert is not None:
                alert = await raise_alert(db, check, step.alert, "sweep")
                pushed.append(await patrol_view(db, alert))
        late = now - timedelta(minutes=rt.settings.escalate_after_minutes)
        rows = (await db.execute(select(Alert, Recipient).join(
            Recipient, Recipient.id == Alert.recipient_id).where(
            Alert.state == "new", Alert.escalated_at.is_(None), Alert.created_at <= late))).all()
        for alert, recipient in rows:
            alert.escalated_at = now
            await audit.append(db, "sweep", "alert.escalated", f"alert:{alert.id}", {})
            await webhook.enqueue(db, alert, "alert.escalated", recipient)
            pushed.append(alert_json(alert, recipient, with_access=True) | {"escalation": True})
    for data in pushed:
        await rt.patrol.broadcast({"type": "alert", "alert": data})


async def redeliver(rt: Runtime) -> None:
    """At least once: unacknowledged alerts go out again until someone acknowledges."""
    async with rt.read() as db:
        rows = (await db.execute(select(Alert, Recipient).join(
            Recipient, Recipient.id == Alert.recipient_id).where(Alert.state == "new"))).all()
        items = [alert_json(a, r, with_access=True) for a, r in rows]
    for data in items:
        await rt.patrol.broadcast({"type": "alert", "alert": data, "repeat": True})


async def _lookin_in_progress(db: Any, check: Check, now: datetime) -> bool:
    """A look-in that started inside the window may finish and be recorded after it."""
    visit = (await db.execute(select(Visit).where(
        Visit.check_id == check.id, Visit.outcome.is_(None),
        Visit.expires_at > now - timedelta(minutes=2)).limit(1))).scalar()
    return visit is not None and (visit.end_reason is None
                                  or not visit.end_reason.startswith("refused"))


async def _camera_alive(rt: Runtime, db: Any, check: Check, now: datetime) -> bool:
    cameras = (await db.execute(select(Camera).where(
        Camera.recipient_id == check.recipient_id, Camera.revoked.is_(False)))).scalars().all()
    limit = timedelta(seconds=rt.settings.agent_offline_seconds)
    return any(rt.links.is_online(c.id) or (c.last_seen_at and now - c.last_seen_at < limit)
               for c in cameras)
