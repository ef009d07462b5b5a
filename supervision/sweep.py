"""The sweep: moves checks through their windows and escalates unacknowledged alerts.

Idempotent and driven only by the database and the clock, so after a crash the first
sweep puts everything right: overdue checks end as missed with their alerts, follow-ups
open on time, and escalations happen late rather than never. What each due check needs
(its recipient's unit, cameras, unfinished look-ins) is read in one query per kind, not
one per check, since the writer is held meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from supervision import audit, check_rows, checks, lookins, webhook
from supervision.alert_feed import announce, publish, publish_again
from supervision.alert_states import AlertState
from supervision.alerts import escalate, patrol_view, raise_alert, unacknowledged
from supervision.checks import State
from supervision.models import Alert, Camera, Check, Recipient, Visit
from supervision.runtime import Runtime

log = logging.getLogger("supervision.sweep")

#: a look-in that started inside the window may finish and be recorded this long after it
LOOKIN_GRACE = timedelta(minutes=2)


async def sweep(rt: Runtime, now: datetime | None = None, *, started_at: datetime) -> None:
    now = now or datetime.now(UTC)
    s = rt.settings
    pushed: list[dict[str, Any]] = []
    grace = now - started_at < timedelta(seconds=s.agent_offline_seconds)
    async with rt.write() as db:
        # deadline queries: what is due to open, and what is due to close; open checks
        # inside their windows are not read at all
        due = (await db.execute(select(Check).where(or_(
            (Check.state == State.PLANNED) & (Check.opens_at <= now),
            (Check.state == State.OPEN) & (Check.closes_at < now)))
            .order_by(Check.opens_at))).scalars().all()
        closing = [c for c in due if c.closes_at < now]
        opening = [c for c in due if c.closes_at >= now and c.state == State.PLANNED]
        viewing = await _lookins_in_progress(db, closing, now)
        units = await _units(db, closing)
        alive = set() if grace else await _cameras_alive(rt, db, opening, now)
        opened = checks.open_window(State.PLANNED)
        to_open: list[int] = []  # a window that opens for thousands at once: one statement
        for check in due:
            step = None
            if check.closes_at < now:
                if check.id in viewing:
                    continue
                step = checks.close_window(State(check.state), missed_action=s.missed_action_for(
                    units.get(check.recipient_id, "")))
            elif check.state == State.PLANNED:
                if not grace and check.recipient_id not in alive:
                    step = checks.agent_offline(State(check.state))
                else:
                    to_open.append(check.id)
                    continue
            if step is None:
                continue
            if not await check_rows.move(db, check.id, State(check.state), step, now=now,
                                         actor="sweep"):
                continue  # an outcome (or another sweep) got there first
            await audit.append(db, "sweep", f"check.{step.state.value}", f"check:{check.id}",
                               {"reason": step.reason})
            if step.alert is not None:
                alert = await raise_alert(db, check, step.alert, "sweep", webhook_on=s.webhook_on)
                await announce(rt, db, alert.id)
                pushed.append(await patrol_view(db, alert))
        won = await check_rows.move_many(db, to_open, State.PLANNED, opened, now=now,
                                         actor="sweep")  # an outcome may have won some
        await audit.append_many(db, [("sweep", f"check.{opened.state.value}", f"check:{cid}",
                                      {"reason": opened.reason}) for cid in won])
        late = now - timedelta(minutes=s.escalate_after_minutes)
        candidates = (await db.execute(select(Alert).where(
            Alert.state == AlertState.NEW.value, Alert.escalated_at.is_(None),
            Alert.created_at <= late))).scalars().all()
        for alert in candidates:
            if not await escalate(db, alert, now):
                continue  # acknowledged meanwhile
            await audit.append(db, "sweep", "alert.escalated", f"alert:{alert.id}", {})
            if s.webhook_on:
                await webhook.enqueue(db, alert, "alert.escalated")
            await announce(rt, db, alert.id, escalation=True)
            pushed.append(await patrol_view(db, alert) | {"escalation": True})
        await lookins.close_lapsed(db, now)
    for data in pushed:
        await publish(rt, data)


async def next_deadline(rt: Runtime, now: datetime) -> datetime | None:
    """The next moment the sweep has work: a window that opens or closes, an alert that
    comes due for escalation. The scheduler runs the sweep then, not at its next turn, so a
    window opens on time to within the sweep's own run, whatever ``sweep_seconds`` is."""
    late = timedelta(minutes=rt.settings.escalate_after_minutes)
    async with rt.read() as db:
        opens = (await db.execute(select(func.min(Check.opens_at)).where(
            Check.state == State.PLANNED, Check.opens_at > now))).scalar()
        closes = (await db.execute(select(func.min(Check.closes_at)).where(
            Check.state == State.OPEN, Check.closes_at >= now))).scalar()
        raised = (await db.execute(select(func.min(Alert.created_at)).where(
            Alert.state == AlertState.NEW.value, Alert.escalated_at.is_(None)))).scalar()
    moments = [t for t in (opens, closes + timedelta(microseconds=1) if closes else None,
                           raised + late if raised else None) if t is not None]
    return min(moments) if moments else None


async def redeliver(rt: Runtime) -> None:
    """At least once: unacknowledged alerts go out again until someone acknowledges."""
    async with rt.read() as db:
        items = await unacknowledged(db)
    await publish_again(rt, items)  # to this node's sockets: every node re-sends to its own


async def _lookins_in_progress(db: AsyncSession, closing: Sequence[Check],
                               now: datetime) -> set[int]:
    """Checks whose window passed while a look-in (not a refused one) may still end."""
    if not closing:
        return set()
    rows = await db.execute(select(Visit.check_id).where(
        Visit.check_id.in_([c.id for c in closing]), Visit.outcome.is_(None),
        Visit.expires_at > now - LOOKIN_GRACE,
        (Visit.end_reason.is_(None)) | (Visit.end_reason != "refused")))
    return set(rows.scalars())


async def _units(db: AsyncSession, closing: Sequence[Check]) -> dict[int, str]:
    ids = {c.recipient_id for c in closing}
    if not ids:
        return {}
    rows = await db.execute(select(Recipient.id, Recipient.unit).where(Recipient.id.in_(ids)))
    return {rid: unit for rid, unit in rows.all()}


async def _cameras_alive(rt: Runtime, db: AsyncSession, opening: Sequence[Check],
                         now: datetime) -> set[int]:
    """Recipients (of ``opening``) with a camera linked or heard from recently."""
    ids = {c.recipient_id for c in opening}
    if not ids:
        return set()
    limit = timedelta(seconds=rt.settings.agent_offline_seconds)
    rows = await db.execute(select(Camera.recipient_id, Camera.id, Camera.last_seen_at).where(
        Camera.recipient_id.in_(ids), Camera.revoked.is_(False)))
    return {rid for rid, cid, seen in rows.all()
            if rt.relay.is_online(cid) or (seen is not None and now - seen < limit)}
