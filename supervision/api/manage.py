"""Care managers: recipients, their plans, the history of versions and a preview of nights.

The routes parse and shape; ``recipients``, ``plan_versions`` and ``preview`` do the work.
The plan's JSON form is documented by the domain's own schema (``PlanDocument``, from
``schedules.plan_json_schema``), not by a second description of it here.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from supervision import consent, plan_versions, recipients, reports
from supervision.context import RowId, Who, require, runtime
from supervision.errors import ServiceError, error_responses
from supervision.plan_versions import HistoryEntry, PlanSaved
from supervision.preview import MAX_NIGHTS, PREVIEW_YEARS, Preview, preview
from supervision.recipients import (
    RecipientCreate,
    RecipientDetail,
    RecipientSummary,
    RecipientUpdate,
)
from supervision.runtime import Runtime

router = APIRouter(prefix="/api", tags=["manage"])
managers = require("manager", "admin")

PLAN_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/PlanDocument"}}}}}


class PlanProblem(BaseModel):
    loc: list[str | int] = Field(description='["body", ...path of the field]')
    msg: str = Field(description="what is wrong (English, from the schedules domain)")
    type: str = Field(description='"plan" for a problem of the plan')
    field: str | None = Field(None, description="type plan: dotted path in the plan, e.g. "
                              "check_times.1.at; '' = the plan as a whole")
    code: str | None = Field(None, description=(
        "type plan: stable machine code of the problem, e.g. range, overlap, time.format, "
        "unknown-key ('' = none); a user interface shows its translation "
        "(key plan_error.<code>) instead of msg"), examples=["overlap"])
    params: dict[str, str | int] | None = Field(None, description=(
        "type plan: the values msg interpolates, by name, for the translated message; "
        "for code range, unit is a unit code (minutes, seconds, follow-ups)"),
        examples=[{"low": 10, "high": 120, "unit": "seconds", "value": 5}])


class PlanProblems(BaseModel):
    """422: every problem at once, nothing saved. Problems of the plan have type "plan" and
    a field; a bad query or path parameter gets the framework's usual items."""

    detail: list[PlanProblem]


READ = error_responses(401, 403, 404)
PLAN_WRITE: dict[int | str, dict[str, Any]] = {
    **error_responses(400, 401, 403, 404, 409), 422: {"model": PlanProblems}}
NIGHTS = Query(14, ge=1, le=MAX_NIGHTS)


async def _body(request: Request) -> object:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ServiceError(400, "manage.error.body") from exc


@router.get("/recipients", response_model=list[RecipientSummary],
            responses=error_responses(401, 403))
async def list_recipients(rt: Runtime = Depends(runtime),
                          _: Who = Depends(managers)) -> list[RecipientSummary]:
    """Every recipient with camera status, plan version, check times and consent tonight."""
    async with rt.read() as db:
        return await recipients.summaries(rt, db)


@router.post("/recipients", response_model=RecipientDetail, status_code=201,
             responses=error_responses(400, 401, 403))
async def create_recipient(body: RecipientCreate, rt: Runtime = Depends(runtime),
                           current: Who = Depends(managers)) -> RecipientDetail:
    """A new recipient, without plan (so without checks) until a plan is saved."""
    return await recipients.create(rt, body, current.user.username)


@router.get("/recipients/{rid}", response_model=RecipientDetail, responses=READ)
async def get_recipient(rid: RowId, rt: Runtime = Depends(runtime),
                        _: Who = Depends(managers)) -> RecipientDetail:
    """One recipient: consent, camera, and the newest plan with its version."""
    async with rt.read() as db:
        return await recipients.detail(rt, db, rid)


@router.put("/recipients/{rid}/plan", response_model=PlanSaved, openapi_extra=PLAN_BODY,
            responses=PLAN_WRITE)
async def save_plan(rid: RowId, request: Request,
                    base_version: int | None = Query(
                        None, ge=0, description="the version the editor started from; "
                        "409 if someone saved a newer one meanwhile (0 = none existed)"),
                    rt: Runtime = Depends(runtime),
                    current: Who = Depends(managers)) -> PlanSaved:
    """Save a plan (body: PlanDocument) as a new version.

    Invalid: 422 listing every problem by field, nothing saved. Valid: the version, the
    audit entry ``plan.changed`` and the re-planned not-yet-open checks commit together;
    then the plan in force is signed and sent to the recipient's camera.
    """
    return await plan_versions.save(rt, rid, await _body(request), base_version,
                                    current.user.username)


@router.get("/recipients/{rid}/plan/history", response_model=list[HistoryEntry],
            responses=READ)
async def plan_history(rid: RowId, rt: Runtime = Depends(runtime),
                       _: Who = Depends(managers)) -> list[HistoryEntry]:
    """Every version, newest first: who saved it, when, from which night, what changed."""
    return await plan_versions.history(rt, rid)


@router.get("/recipients/{rid}/preview", response_model=Preview, responses=READ)
async def preview_saved(rid: RowId, nights: int = NIGHTS,
                        start: date | None = Query(
                            None, description="first night; default tonight, at most "
                            f"{PREVIEW_YEARS} years away"),
                        rt: Runtime = Depends(runtime),
                        _: Who = Depends(managers)) -> Preview:
    """The coming nights under the saved versions: windows in local time and UTC, skipped
    nights with their reason, and nights with a clock change flagged."""
    async with rt.read() as db:
        return await preview(db, rid, nights, start)


@router.post("/recipients/{rid}/preview", response_model=Preview, openapi_extra=PLAN_BODY,
             responses=PLAN_WRITE)
async def preview_draft(rid: RowId, request: Request, nights: int = NIGHTS,
                        start: date | None = Query(None, description="as for GET"),
                        rt: Runtime = Depends(runtime),
                        _: Who = Depends(managers)) -> Preview:
    """Validate an unsaved plan (body: PlanDocument) and preview the nights it would give;
    422 exactly as saving would answer. Nothing is saved."""
    draft = plan_versions.validate(await _body(request), datetime.now(UTC))
    async with rt.read() as db:
        return await preview(db, rid, nights, start, draft)


@router.patch("/recipients/{rid}", response_model=RecipientDetail,
              responses=error_responses(400, 401, 403, 404, 409))
async def update_recipient(rid: RowId, body: RecipientUpdate, rt: Runtime = Depends(runtime),
                           current: Who = Depends(managers)) -> RecipientDetail:
    """Name, address, unit, access information, contacts, care notes: only those given
    change; audited (access information without its values). 409 once archived."""
    return await recipients.update(rt, rid, body, current.user.username)


@router.post("/recipients/{rid}/archive", response_model=RecipientDetail,
             responses=error_responses(401, 403, 404, 409))
async def archive_recipient(rid: RowId, rt: Runtime = Depends(runtime),
                            current: Who = Depends(managers)) -> RecipientDetail:
    """Archive: off every working list, planned and open checks ended, cameras revoked;
    the history stays. 409 if archived already."""
    return await recipients.archive(rt, rid, current.user.username)


@router.get("/recipients/{rid}/consent", response_model=consent.ConsentView, responses=READ)
async def get_consent(rid: RowId, rt: Runtime = Depends(runtime),
                      _: Who = Depends(managers)) -> consent.ConsentView:
    """Consent records (newest first), cohabitants, whether consent is complete, its nights
    and whether it runs out within 30 days."""
    async with rt.read() as db:
        return await consent.view(db, rid)


@router.post("/recipients/{rid}/consent", response_model=consent.ConsentView,
             status_code=201, responses=error_responses(400, 401, 403, 404, 409))
async def record_consent(rid: RowId, body: consent.ConsentIn, rt: Runtime = Depends(runtime),
                         current: Who = Depends(managers)) -> consent.ConsentView:
    """Record one party's consent; the coming checks are re-planned and the plan (with
    the consent on record) is pushed to the recipient's cameras."""
    return await consent.record(rt, rid, body, current.user.username)


@router.post("/recipients/{rid}/consent/{record_id}/withdraw",
             response_model=consent.ConsentView, responses=error_responses(401, 403, 404, 409))
async def withdraw_consent(rid: RowId, record_id: RowId, rt: Runtime = Depends(runtime),
                           current: Who = Depends(managers)) -> consent.ConsentView:
    """Withdrawal takes effect at once: no look-ins, open checks ended, a look-in in
    progress stopped, the camera's plan replaced."""
    return await consent.withdraw(rt, rid, record_id, current.user.username)


@router.put("/recipients/{rid}/cohabitants", response_model=consent.ConsentView,
            responses=error_responses(400, 401, 403, 404, 409))
async def set_cohabitants(rid: RowId, body: consent.Cohabitants,
                          rt: Runtime = Depends(runtime),
                          current: Who = Depends(managers)) -> consent.ConsentView:
    """Who lives with the recipient: each must consent too."""
    return await consent.set_cohabitants(rt, rid, body, current.user.username)


# --- reports ------------------------------------------------------------------------------

#: the night report is also the morning's shift handover, so night staff read it too
handover = require("staff", "manager", "admin")
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)
ReportDate = Annotated[date, Field(ge=EARLIEST, le=LATEST)]
NIGHT = Query(None, description="the night, named by its evening; default the one now "
              "running or just ended")
UNIT = Query(None, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$",
             description="a care unit; default every unit")
START = Query(None, description="week: its first night; month: any night of it; "
              "default now")
CSV_RESPONSES: dict[int | str, dict[str, Any]] = {200: {
    "description": "the table as CSV (cells a spreadsheet would run are quoted with ')",
    "content": {"text/csv": {"schema": {"type": "string"}}}}, **error_responses(401, 403)}


class CsvResponse(PlainTextResponse):
    media_type = "text/csv"


def _csv(text: str, name: str) -> CsvResponse:
    return CsvResponse(text, headers={"Content-Disposition": f"attachment; filename={name}"})


@router.get("/reports/night", response_model=reports.NightReport,
            responses=error_responses(401, 403))
async def night_report(night: ReportDate | None = NIGHT, unit: str | None = UNIT,
                       rt: Runtime = Depends(runtime),
                       _: Who = Depends(handover)) -> reports.NightReport:
    """Each check of the night in due order: look-ins (who, when), outcome, follow-ups,
    the dispatch with the patrol's times, notes; counts on time, late, missed, skipped."""
    return await reports.night(rt, night, unit)


@router.get("/reports/night.csv", response_class=Response, responses=CSV_RESPONSES)
async def night_report_csv(night: ReportDate | None = NIGHT, unit: str | None = UNIT,
                           rt: Runtime = Depends(runtime),
                           _: Who = Depends(handover)) -> CsvResponse:
    """The night report's checks as CSV, one line each."""
    report = await reports.night(rt, night, unit)
    return _csv(reports.night_csv(report), f"night-{report.night}.csv")


@router.get("/reports/period", response_model=reports.PeriodReport,
            responses=error_responses(401, 403))
async def period_report(period: reports.Period = Query("month"), start: ReportDate | None = START,
                        unit: str | None = UNIT, rt: Runtime = Depends(runtime),
                        _: Who = Depends(managers)) -> reports.PeriodReport:
    """A week or a month: checks by outcome per unit, skips by reason, dispatches by
    reason, time to acknowledgement and to arrival (median, 90th percentile), technical
    failures per camera, and the counts per night."""
    return await reports.period(rt, period, start, unit)


@router.get("/reports/period.csv", response_class=Response, responses=CSV_RESPONSES)
async def period_report_csv(table: Literal["by_unit", "skipped", "dispatches", "response",
                                           "cameras", "nights"] = "by_unit",
                            period: reports.Period = Query("month"),
                            start: ReportDate | None = START, unit: str | None = UNIT,
                            rt: Runtime = Depends(runtime),
                            _: Who = Depends(managers)) -> CsvResponse:
    """One table of the period report as CSV."""
    report = await reports.period(rt, period, start, unit)
    return _csv(reports.period_csv(report, table),
                f"{table}-{report.first_night}-{report.last_night}.csv")
