"""Log review: a recipient's look-ins (who looked, when, how long, outcome), chain checks."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import select

from supervision import audit
from supervision.api.deps import Who, require, runtime
from supervision.models import AuditEvent, Recipient, User, Visit
from supervision.runtime import Runtime

router = APIRouter(prefix="/api/audit", tags=["audit"])
reviewers = require("manager", "admin")
admin = require("admin")


class LookinRecord(BaseModel):
    session: str
    check: int
    camera: str
    viewer: str
    viewer_name: str
    requested_at: datetime
    ended_at: datetime | None
    seconds: float | None
    outcome: str | None
    end_reason: str | None


class ChainReport(BaseModel):
    entries: int
    intact: bool
    problems: list[dict[str, object]]


async def recipient_lookins(rt: Runtime, recipient_id: int) -> list[LookinRecord]:
    async with rt.read() as db:
        if await db.get(Recipient, recipient_id) is None:
            raise HTTPException(404, "no such recipient")
        rows = (await db.execute(
            select(Visit, User).join(User, User.id == Visit.viewer_id)
            .where(Visit.recipient_id == recipient_id)
            .order_by(Visit.requested_at.desc()))).all()
    return [LookinRecord(session=v.id, check=v.check_id, camera=v.camera_id, viewer=u.username,
                         viewer_name=u.display_name, requested_at=v.requested_at,
                         ended_at=v.ended_at, seconds=v.seconds, outcome=v.outcome,
                         end_reason=v.end_reason) for v, u in rows]


@router.get("/recipients/{recipient_id}/lookins", response_model=list[LookinRecord])
async def lookins_of(recipient_id: int, rt: Runtime = Depends(runtime),
                     _: Who = Depends(reviewers)) -> list[LookinRecord]:
    """Every look-in at this recipient, newest first: for the person who asks who looked."""
    return await recipient_lookins(rt, recipient_id)


@router.get("/verify", response_model=ChainReport)
async def verify_chain(rt: Runtime = Depends(runtime), _: Who = Depends(admin)) -> ChainReport:
    async with rt.read() as db:
        problems = await audit.verify(db)
        count = len((await db.execute(select(AuditEvent.id))).all())
    return ChainReport(entries=count, intact=not problems,
                       problems=[{"entry": p.entry_id, "what": p.what} for p in problems])


@router.get("/export", response_class=PlainTextResponse)
async def export(since: datetime | None = None, until: datetime | None = None,
                 rt: Runtime = Depends(runtime), _: Who = Depends(admin)) -> PlainTextResponse:
    """CSV of the audit log for log review (the same as `supervision audit export`)."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    async with rt.read() as db:
        text = audit.to_csv((await db.execute(query)).scalars())
    return PlainTextResponse(text, media_type="text/csv",
                             headers={"Content-Disposition": "attachment; filename=audit.csv"})
