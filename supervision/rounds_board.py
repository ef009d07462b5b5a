"""The rounds board: the checks night staff work through, with camera and alert state."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from supervision import plans
from supervision.checks import ENDED
from supervision.models import Alert, Camera, Check, Recipient
from supervision.runtime import Runtime

#: how far ahead the board looks, and how long an ended check stays on it
AHEAD = timedelta(hours=6)
KEPT = timedelta(hours=1)


class CheckOut(BaseModel):
    id: int
    recipient: str
    address: str
    due_at: datetime
    opens_at: datetime
    closes_at: datetime
    state: str
    reason: str | None = Field(description="a code: window-opened, paused, calm, ...")
    reason_detail: str | None = Field(description="the words with it, e.g. a pause's reason")
    follow_ups: int
    camera_online: bool
    max_lookin_seconds: int
    alert: str | None = None
    alert_note: str | None = Field(default=None, description="the patrol's note on the "
                                   "alert (what was done at the door)")
    timezone: str = Field(description="the zone of the recipient's plan for the check's "
                          "night (IANA name): its times are shown on that wall clock")


class Rounds(BaseModel):
    now: datetime
    checks: list[CheckOut]
    escalations: int
    timezone: str = Field(description="the board's own zone (the checks' zone when they "
                          "share one, else the service's default) for times not of a check")


async def board(rt: Runtime) -> Rounds:
    """Open and overdue checks, those due in the next hours, and the last hour's results."""
    now = datetime.now(UTC)
    async with rt.read() as db:
        rows = (await db.execute(
            select(Check, Recipient).join(Recipient, Recipient.id == Check.recipient_id)
            .where(Check.closes_at >= now - KEPT,
                   Check.opens_at <= now + AHEAD,
                   Recipient.archived_at.is_(None))  # archived: off the board at once
            .order_by(Check.due_at))).all()
        cams = (await db.execute(select(Camera.recipient_id, Camera.id)
                                 .where(Camera.revoked.is_(False)))).all()
        shown = [c.id for c, _ in rows]
        alert_rows = (await db.execute(select(Alert.check_id, Alert.state, Alert.note)
                                       .where(Alert.check_id.in_(shown)))).all()
        alerts = {check_id: state for check_id, state, _ in alert_rows}
        alert_notes = {check_id: note for check_id, _, note in alert_rows}
        escalations = (await db.execute(select(func.count(Alert.id)).where(
            Alert.escalated_at.is_not(None), Alert.state == "new"))).scalar_one()
        zones = await _zones(db, {(c.recipient_id, c.night) for c, _ in rows})
    online: dict[int, bool] = {}
    for rid, cid in cams:
        online[rid] = online.get(rid, False) or rt.relay.is_online(cid)
    out = [CheckOut(id=c.id, recipient=r.name, address=r.address, due_at=c.due_at,
                    opens_at=c.opens_at, closes_at=c.closes_at, state=c.state, reason=c.reason,
                    reason_detail=c.reason_detail,
                    follow_ups=c.follow_ups, camera_online=online.get(r.id, False),
                    max_lookin_seconds=c.max_lookin_seconds, alert=alerts.get(c.id),
                    alert_note=alert_notes.get(c.id),
                    timezone=zones.get((r.id, c.night), schedules.DEFAULT_TZ))
           for c, r in rows if c.state not in ENDED or c.ended_at is None
           or c.ended_at >= now - KEPT]
    shared = {c.timezone for c in out}
    return Rounds(now=now, checks=out, escalations=escalations,
                  timezone=shared.pop() if len(shared) == 1 else schedules.DEFAULT_TZ)


async def _zones(db: AsyncSession, nights: set[tuple[int, date]]) -> dict[tuple[int, date], str]:
    """Each (recipient, night)'s plan zone: the version in force that night, in one query
    for the versions and one for the plans (parsed plans are cached by content)."""
    versions = await plans.versions_of(db, sorted({rid for rid, _ in nights}))
    chosen = {(rid, night): plans.in_force(versions.get(rid, []), night)
              for rid, night in nights}
    loaded = await plans.load_plans(db, [v.id for v in chosen.values() if v is not None],
                                    bulk=True)
    return {key: loaded[v.id].timezone for key, v in chosen.items()
            if v is not None and v.id in loaded}
