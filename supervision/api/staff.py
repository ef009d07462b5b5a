"""Night staff: the rounds board, look-ins and outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from supervision import lookins
from supervision.api.deps import RowId, Who, require, runtime
from supervision.checks import ENDED, Outcome
from supervision.errors import error_responses
from supervision.models import Alert, Camera, Check, Recipient
from supervision.runtime import Runtime

router = APIRouter(prefix="/api", tags=["staff"])
staff = require("staff")
board_roles = require("staff", "admin")


class LookinRequest(BaseModel):
    offer: str = Field(min_length=10, max_length=60_000, description="SDP offer, recvonly video")


class LookinStarted(BaseModel):
    session: str
    sdp: str
    signature: str = Field(description="agent's Ed25519 signature over the answer")
    agent_key: str
    expires_at: datetime
    seconds: int
    ice_servers: list[dict[str, Any]]


class OutcomeRequest(BaseModel):
    outcome: Literal["calm", "not-visible", "needs-help", "technical-failure"]
    session: str | None = Field(default=None, max_length=64)


class CheckOut(BaseModel):
    id: int
    recipient: str
    address: str
    due_at: datetime
    opens_at: datetime
    closes_at: datetime
    state: str
    reason: str | None
    follow_ups: int
    camera_online: bool
    max_lookin_seconds: int
    alert: str | None = None


class Rounds(BaseModel):
    now: datetime
    checks: list[CheckOut]
    escalations: int


@router.get("/rounds", response_model=Rounds, responses=error_responses(401, 403))
async def rounds(rt: Runtime = Depends(runtime), _: Who = Depends(board_roles)) -> Rounds:
    """Open and overdue checks, those due in the next hours, and the last hour's results."""
    now = datetime.now(UTC)
    async with rt.read() as db:
        rows = (await db.execute(
            select(Check, Recipient).join(Recipient, Recipient.id == Check.recipient_id)
            .where(Check.closes_at >= now - timedelta(hours=1),
                   Check.opens_at <= now + timedelta(hours=6))
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
                    follow_ups=c.follow_ups, camera_online=online.get(r.id, False),
                    max_lookin_seconds=c.max_lookin_seconds, alert=alerts.get(c.id))
           for c, r in rows if c.state not in ENDED or c.ended_at is None
           or c.ended_at >= now - timedelta(hours=1)]
    return Rounds(now=now, checks=out, escalations=escalations)


@router.post("/checks/{check_id}/lookin", response_model=LookinStarted,
             responses=error_responses(400, 401, 403, 404, 409, 503, 504))
async def start_lookin(check_id: RowId, body: LookinRequest, rt: Runtime = Depends(runtime),
                       current: Who = Depends(staff)) -> LookinStarted:
    """Ask for a look-in: the service checks, signs a ticket, relays the offer to the agent."""
    started = await lookins.start(rt, current.user, check_id, body.offer)
    return LookinStarted(**started.__dict__, ice_servers=rt.settings.ice_servers)


@router.post("/lookins/{session}/end", status_code=204,
             responses=error_responses(401, 403, 404))
async def end_lookin(session: str, rt: Runtime = Depends(runtime),
                     current: Who = Depends(staff)) -> None:
    await lookins.end(rt, current.user, session)


class LookinStatus(BaseModel):
    session: str
    ended_at: datetime | None
    end_reason: str | None = Field(description="expired, ended, technical-failure:<why>, ...")
    seconds: float | None


@router.get("/lookins/{session}", response_model=LookinStatus,
            responses=error_responses(401, 403, 404))
async def lookin_status(session: str, rt: Runtime = Depends(runtime),
                        current: Who = Depends(staff)) -> LookinStatus:
    """How one's own look-in ended, as the camera reported it (e.g. a camera that failed)."""
    visit = await lookins.own_visit(rt, current.user, session)
    return LookinStatus(session=visit.id, ended_at=visit.ended_at, end_reason=visit.end_reason,
                        seconds=visit.seconds)


@router.post("/checks/{check_id}/outcome", responses=error_responses(400, 401, 403, 404, 409))
async def record_outcome(check_id: RowId, body: OutcomeRequest, rt: Runtime = Depends(runtime),
                         current: Who = Depends(staff)) -> dict[str, Any]:
    check, alert = await lookins.record_outcome(rt, current.user, check_id,
                                                Outcome(body.outcome), body.session)
    return {"check": check.id, "state": check.state, "alert": alert["id"] if alert else None}


