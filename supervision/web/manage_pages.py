"""The care manager's pages: the recipients list and one recipient's plan editor.

The list is rendered here from the same data the JSON API gives; the editor is a form
built by static/plan_editor.js (and the modules it imports) on top of the API (draft
preview for inline errors and the timeline, then save), so the page and the API can never
disagree about a plan.
"""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

import schedules
from schedules.localtime import zone
from supervision import reports
from supervision.alerts import patrol_notes
from supervision.context import Who, runtime, translator, who
from supervision.errors import ServiceError
from supervision.recipients import detail, summaries
from supervision.runtime import Runtime
from supervision.web.pages import PAGE_ROLES, guard, render

router = APIRouter(include_in_schema=False)
ROLES = PAGE_ROLES["/manage"]


@router.get("/manage")
async def recipients_page(request: Request, rt: Runtime = Depends(runtime),
                          current: Who | None = Depends(who)) -> Response:
    refused = guard(request, current, ROLES)
    if refused is not None:
        return refused
    assert current is not None
    async with rt.read() as db:
        rows = await summaries(rt, db)
    return render(request, "manage.html", translator(request, current.user), current,
                  recipients=rows)


@router.get("/manage/roster")
async def roster_page(request: Request, current: Who | None = Depends(who)) -> Response:
    """The night roster for care managers (staff and leads use the rounds board); the list
    is drawn by static/roster.js from /api/roster."""
    refused = guard(request, current, ROLES)
    if refused is not None:
        return refused
    assert current is not None
    return render(request, "manage_roster.html", translator(request, current.user), current)


@router.get("/manage/recipients/{rid}")
async def recipient_page(rid: int, request: Request, rt: Runtime = Depends(runtime),
                         current: Who | None = Depends(who)) -> Response:
    refused = guard(request, current, ROLES)
    if refused is not None:
        return refused
    assert current is not None
    t = translator(request, current.user)
    try:
        async with rt.read() as db:
            recipient = await detail(rt, db, rid)
            notes = await patrol_notes(db, rid)  # what the patrol did at the door
    except ServiceError as exc:
        return render(request, "manage.html", t, current, status=exc.status, recipients=[],
                      error=exc.code)
    return render(request, "manage_recipient.html", t, current, recipient=recipient,
                  patrol_notes=notes, recipient_json=recipient.model_dump(mode="json"),
                  blank_plan=schedules.plan_to_dict(BLANK))


#: what a new plan starts from in the editor: the domain's defaults, no check times yet
BLANK = schedules.Plan(check_times=())


# --- reports: server-rendered tables (printable); the period's chart is drawn by
# report_chart.js with the vendored uPlot from the data block in the page

HANDOVER_ROLES = ("staff", "manager", "admin")


def _report_query(value: str | None) -> date | None:
    try:
        chosen = date.fromisoformat(value) if value else None
    except ValueError:
        return None
    return chosen if chosen is None or date(2000, 1, 1) <= chosen <= date(2100, 12, 31) else None


@router.get("/reports/night")
async def night_page(request: Request, night: str | None = Query(None, max_length=10),
                     unit: str | None = Query(None, max_length=64),
                     rt: Runtime = Depends(runtime),
                     current: Who | None = Depends(who)) -> Response:
    """The night report per unit, also the morning's shift handover page."""
    refused = guard(request, current, HANDOVER_ROLES)
    if refused is not None:
        return refused
    assert current is not None
    report = await reports.night(rt, _report_query(night), unit or None)
    local = zone(schedules.DEFAULT_TZ)

    def clock(when: object) -> str:
        return when.astimezone(local).strftime("%H:%M") if isinstance(when, datetime) else ""

    return render(request, "report_night.html", translator(request, current.user), current,
                  report=report, clock=clock, categories=reports.CATEGORIES,
                  may_period=current.user.role in ROLES)


@router.get("/reports/period")
async def period_page(request: Request, period: str = Query("month", max_length=5),
                      start: str | None = Query(None, max_length=10),
                      unit: str | None = Query(None, max_length=64),
                      rt: Runtime = Depends(runtime),
                      current: Who | None = Depends(who)) -> Response:
    """A week or a month per unit and for the whole service, with charts and CSV."""
    refused = guard(request, current, ROLES)
    if refused is not None:
        return refused
    assert current is not None
    kind: reports.Period = "week" if period == "week" else "month"
    report = await reports.period(rt, kind, _report_query(start), unit or None)
    return render(request, "report_period.html", translator(request, current.user), current,
                  report=report, tables=reports.PERIOD_TABLES,
                  columns=reports.PERIOD_COLUMNS,
                  chart={"nights": [n.model_dump(mode="json") for n in report.nights]})
