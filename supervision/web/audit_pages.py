"""The log-review page a care manager shows a recipient who asks who looked at them."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from supervision.context import Who, runtime, translator, who
from supervision.log_review import recipient_lookins
from supervision.models import Recipient
from supervision.plans import current_plan
from supervision.runtime import Runtime
from supervision.web.pages import guard, render

router = APIRouter(include_in_schema=False)


@router.get("/audit/recipients/{recipient_id}")
async def lookins_page(recipient_id: int, request: Request, rt: Runtime = Depends(runtime),
                       current: Who | None = Depends(who)) -> Response:
    refused = guard(request, current, ("manager", "admin"))
    if refused is not None:
        return refused
    assert current is not None
    records = await recipient_lookins(rt, recipient_id)
    async with rt.read() as db:
        recipient = await db.get(Recipient, recipient_id)
        found = await current_plan(db, recipient_id)
    zone = ZoneInfo(found[1].timezone if found else "Europe/Stockholm")
    rows = [r.model_dump() | {"local_time": r.requested_at.astimezone(zone)
                              .strftime("%Y-%m-%d %H:%M:%S")} for r in records]
    return render(request, "audit_lookins.html", translator(request, current.user), current,
                  recipient=recipient, records=rows)
