"""The rounds board: the checks night staff work through, with camera and alert state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import func, select

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


class Rounds(BaseModel):
    now: datetime
    checks: list[CheckOut]
    escalations: int


async def board(rt: Runtime) -> Rounds:
    """Open and overdue checks, those due in the next hours, and the last hour's results."""
    now = datetime.now(UTC)
    async with rt.read() as db:
        rows = (await db.execute(
            select(Check, Recipient).join(Recipient, Recipient.id == Check.recipient_id)
            .where(Check.closes_at >= now - KEPT,
                   Check.opens_at <= now + AHEAD)
            .order_by(Check.due_at))).all()
        cams = (await db.execute(select(Camera.recipient_id, Camera.id)
                                 .where(Camera.revoked.is_(False)))).all()
        shown = [c.id for c, _ in rows]
        alerts = dict((await db.execute(select(Alert.check_id, Alert.state)
                                        .where(Alert.check_id.in_(shown)))).all())
        escalations = (await db.execute(select(func.count(Alert.id)).where(
            Alert.escalated_at.is_not(None), Alert.state == "new"))).scalar_one()
    online: dict[int, bool] = {}
    for rid, cid in cams:
        online[rid] = online.get(rid, False) or rt.links.is_online(cid)
    out = [CheckOut(id=c.id, recipient=r.name, address=r.address, due_at=c.due_at,
                    opens_at=c.opens_at, closes_at=c.closes_at, state=c.state, reason=c.reason,
                    reason_detail=c.reason_detail,
                    follow_ups=c.follow_ups, camera_online=online.get(r.id, False),
                    max_lookin_seconds=c.max_lookin_seconds, alert=alerts.get(c.id))
           for c, r in rows if c.state not in ENDED or c.ended_at is None
           or c.ended_at >= now - KEPT]
    return Rounds(now=now, checks=out, escalations=escalations)
