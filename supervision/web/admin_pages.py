"""Admin pages: the cameras (link, health, refusals, enrolment codes, revocation) and the
deliveries to the external alarm receiver."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

import schedules
from schedules.localtime import zone
from supervision import webhook
from supervision.context import Who, runtime, translator, who
from supervision.runtime import Runtime
from supervision.web.pages import guard, render

router = APIRouter(include_in_schema=False)


@router.get("/admin/cameras")
async def cameras_page(request: Request, current: Who | None = Depends(who)) -> Response:
    """A shell; cameras.js fills it from /api/cameras, so the list is always live."""
    refused = guard(request, current, ("admin",))
    if refused is not None:
        return refused
    assert current is not None
    return render(request, "admin_cameras.html", translator(request, current.user), current)


@router.get("/admin/webhook")
async def deliveries_page(request: Request, rt: Runtime = Depends(runtime),
                          current: Who | None = Depends(who)) -> Response:
    refused = guard(request, current, ("admin",))
    if refused is not None:
        return refused
    assert current is not None
    local_zone = zone(schedules.DEFAULT_TZ)

    def local(when: datetime | None) -> str:
        return when.astimezone(local_zone).strftime("%Y-%m-%d %H:%M:%S") if when else "—"

    rows = [{"d": d, "created": local(d.created_at), "next": local(d.next_attempt_at),
             "delivered": local(d.delivered_at)} for d in await webhook.newest(rt.database, 200)]
    return render(request, "admin_webhook.html", translator(request, current.user), current,
                  rows=rows, enabled=rt.settings.webhook_on)
