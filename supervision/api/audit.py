"""Log review: a recipient's look-ins (who looked, when, how long, outcome), chain checks."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse, Response
from pydantic import AwareDatetime, BaseModel, BeforeValidator

from supervision import audit, log_review
from supervision.context import RowId, Who, require, runtime
from supervision.errors import error_responses
from supervision.log_review import LookinRecord
from supervision.runtime import Runtime

router = APIRouter(prefix="/api/audit", tags=["audit"])
reviewers = require("manager", "admin")
admin = require("admin")


class ChainReport(BaseModel):
    entries: int
    intact: bool
    problems: list[dict[str, object]]


@router.get("/recipients/{recipient_id}/lookins", response_model=list[LookinRecord],
            responses=error_responses(401, 403, 404))
async def lookins_of(recipient_id: RowId, rt: Runtime = Depends(runtime),
                     _: Who = Depends(reviewers)) -> list[LookinRecord]:
    """Every look-in at this recipient, newest first: for the person who asks who looked."""
    return await log_review.recipient_lookins(rt, recipient_id)


@router.get("/verify", response_model=ChainReport, responses=error_responses(401, 403))
async def verify_chain(rt: Runtime = Depends(runtime), _: Who = Depends(admin)) -> ChainReport:
    async with rt.read() as db:
        problems = await audit.verify(db)
        count = await audit.count(db)
    return ChainReport(entries=count, intact=not problems,
                       problems=[{"entry": p.entry_id, "what": p.what} for p in problems])


class CsvResponse(PlainTextResponse):
    media_type = "text/csv"


def _date_time_text(value: object) -> object:
    """What the schema says (an RFC 3339 date-time), not a Unix timestamp pydantic would
    also take; the offset is required (AwareDatetime): the log is in UTC, a naive time is
    ambiguous and would reach the database as one."""
    if not isinstance(value, str) or not re.match(r"\d{4}-\d\d-\d\d[Tt ]", value):
        raise ValueError("expected a date-time with offset, e.g. 2026-01-31T22:00:00+01:00")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_date_time_text)]


# response_class=Response: refusals are documented as JSON (they are), the CSV as CSV
CSV_RESPONSES: dict[int | str, dict[str, object]] = {200: {
    "description": "the audit log as CSV",
    "content": {"text/csv": {"schema": {"type": "string"}}}}, **error_responses(401, 403)}


@router.get("/export", response_class=Response, responses=CSV_RESPONSES)
async def export(since: Instant | None = None, until: Instant | None = None,
                 rt: Runtime = Depends(runtime), _: Who = Depends(admin)) -> CsvResponse:
    """CSV of the audit log for log review (the same as `supervision audit export`)."""
    async with rt.read() as db:
        text = await audit.export_csv(db, since, until)
    return CsvResponse(text, headers={"Content-Disposition": "attachment; filename=audit.csv"})
