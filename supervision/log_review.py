"""Log review: who looked at a recipient, when, for how long, and with what outcome."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import select

from supervision.errors import ServiceError
from supervision.models import Recipient, User, Visit
from supervision.runtime import Runtime


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
    end_reason: str | None = Field(description="a code: expired, ended, refused, ...")
    end_detail: str | None = Field(description="what the code leaves open, e.g. busy")


async def recipient_lookins(rt: Runtime, recipient_id: int) -> list[LookinRecord]:
    async with rt.read() as db:
        if await db.get(Recipient, recipient_id) is None:
            raise ServiceError(404, "manage.error.no_recipient")
        rows = (await db.execute(
            select(Visit, User).join(User, User.id == Visit.viewer_id)
            .where(Visit.recipient_id == recipient_id)
            .order_by(Visit.requested_at.desc()))).all()
    return [LookinRecord(session=v.id, check=v.check_id, camera=v.camera_id, viewer=u.username,
                         viewer_name=u.display_name, requested_at=v.requested_at,
                         ended_at=v.ended_at, seconds=v.seconds, outcome=v.outcome,
                         end_reason=v.end_reason, end_detail=v.end_detail) for v, u in rows]
