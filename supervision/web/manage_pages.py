"""The care manager's pages: the recipients list and one recipient's plan editor.

The list is rendered here from the same data the JSON API gives; the editor is a form
built by static/plan_editor.js (and the modules it imports) on top of the API (draft
preview for inline errors and the timeline, then save), so the page and the API can never
disagree about a plan.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

import schedules
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
    except ServiceError as exc:
        return render(request, "manage.html", t, current, status=exc.status, recipients=[],
                      error=exc.code)
    return render(request, "manage_recipient.html", t, current, recipient=recipient,
                  recipient_json=recipient.model_dump(mode="json"),
                  blank_plan=schedules.plan_to_dict(BLANK))


#: what a new plan starts from in the editor: the domain's defaults, no check times yet
BLANK = schedules.Plan(check_times=())
