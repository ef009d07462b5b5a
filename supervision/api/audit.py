"""Log review: a recipient's look-ins (who looked, when, how long, outcome), chain checks."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import AwareDatetime, BaseModel, BeforeValidator

from supervision import audit, audit_anchor, log_review
from supervision.context import MAX_ROW_ID, RowId, Who, require, runtime, translator
from supervision.errors import error_responses
from supervision.log_review import ChainStatus, LookinRecord, ReviewEntry, ReviewFilter
from supervision.runtime import Runtime

router = APIRouter(prefix="/api/audit", tags=["audit"])
reviewers = require("manager", "admin")
admin = require("admin")


class CheckpointProblem(BaseModel):
    code: str  # audit.problem.<code>
    what: str  # in the reader's language
    entry: int | None  # the chain entry it is about
    source: str | None  # the witness (file) it is about
    line: int | None  # the witness line it is about


class LatestCheckpoint(BaseModel):
    entry: int
    hash: str
    count: int
    at: str
    reason: str


class CheckpointReport(BaseModel):
    """The chain against the signed checkpoints in the service's witness file."""
    witnesses: list[str]
    verified: int  # checkpoints whose signature verified with the server's key
    latest: LatestCheckpoint | None  # the one naming the newest entry
    unanchored: int  # entries after it: not yet covered by any checkpoint
    problems: list[CheckpointProblem]


class ChainReport(BaseModel):
    entries: int
    intact: bool  # no problem in the chain nor against the checkpoints
    problems: list[dict[str, object]]  # the chain's own, per entry
    checkpoints: CheckpointReport


@router.get("/recipients/{recipient_id}/lookins", response_model=list[LookinRecord],
            responses=error_responses(401, 403, 404))
async def lookins_of(recipient_id: RowId, rt: Runtime = Depends(runtime),
                     _: Who = Depends(reviewers)) -> list[LookinRecord]:
    """Every look-in at this recipient, newest first: for the person who asks who looked."""
    return await log_review.recipient_lookins(rt, recipient_id)


@router.get("/verify", response_model=ChainReport, responses=error_responses(401, 403))
async def verify_chain(request: Request, rt: Runtime = Depends(runtime),
                       who: Who = Depends(admin)) -> ChainReport:
    """The same as `supervision audit verify` with the service's own witness and key."""
    t = translator(request, who.user)
    async with rt.read() as db:
        report = await audit_anchor.check(db, [audit_anchor.Witness(rt.settings.audit_witness)],
                                   [rt.key.public_key_b64])
    latest = report.latest
    return ChainReport(
        entries=report.entries, intact=report.intact,
        problems=[{"entry": p.entry_id, "code": p.code, "what": p.text(t)}
                  for p in report.chain],
        checkpoints=CheckpointReport(
            witnesses=report.witnesses, verified=report.verified,
            latest=LatestCheckpoint(entry=latest.entry, hash=latest.hash, count=latest.count,
                                    at=latest.at, reason=latest.reason) if latest else None,
            unanchored=report.unanchored,
            problems=[CheckpointProblem(code=p.code, what=p.text(t), entry=p.entry_id,
                                        source=p.source, line=p.line)
                      for p in report.anchor]))


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


class Review(BaseModel):
    """The log review: entries newest first, the chain's last background verification, and
    the rules of the unusual-access flags in the reader's language."""

    entries: list[ReviewEntry]
    chain: ChainStatus
    rules: dict[str, str]


@router.get("/log", response_model=Review, responses=error_responses(401, 403))
async def review_log(request: Request,
                     person: str | None = Query(None, max_length=64, pattern=r"^[^\x00]*$"),
                     recipient: int | None = Query(None, ge=1, le=MAX_ROW_ID),
                     since: Instant | None = None, until: Instant | None = None,
                     kind: Literal["lookin", "refusal", "plan", "consent", "recipient"]
                     | None = None,
                     rt: Runtime = Depends(runtime), who: Who = Depends(reviewers)) -> Review:
    """Look-ins, refusals and changes of plan, consent and details, filtered by person,
    recipient, time and kind (at most 500, newest first), each look-in with its flags."""
    t = translator(request, who.user)
    f = ReviewFilter(person=person, recipient=recipient, since=since, until=until, kind=kind)
    async with rt.read() as db:
        entries = await log_review.review(db, f)
    return Review(entries=entries, chain=log_review.chain_status(rt),
                  rules={code: t(f"audit.flag.{code}.rule", **log_review.RULE_VALUES)
                         for code in log_review.FLAGS})
