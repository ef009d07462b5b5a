"""Admin: what was sent to the external alarm receiver, and what could not be (the API and
a small page)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

import schedules
from supervision import webhook
from supervision.api.deps import Who, require, runtime, translator, who
from supervision.errors import error_responses
from supervision.models import WebhookDelivery
from supervision.runtime import Runtime
from supervision.web.pages import guard, render

router = APIRouter(tags=["admin"])
admin = require("admin")


class DeliveryAttempt(BaseModel):
    at: datetime
    status: int | None = Field(description="HTTP status; null when no answer came")
    error: str | None
    next: datetime | None = Field(default=None, description="when it was to be tried again")


class DeliveryOut(BaseModel):
    id: int = Field(description="also X-Nattillsyn-Delivery: receivers de-duplicate by it")
    alert_id: int
    event: str
    status: webhook.Status
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status: int | None
    last_error: str | None
    history: list[DeliveryAttempt]


def delivery_out(row: WebhookDelivery) -> DeliveryOut:
    history: list[dict[str, Any]] = row.history or []
    return DeliveryOut(id=row.id, alert_id=row.alert_id, event=row.event,
                       status=webhook.status_of(row), attempts=row.attempts,
                       created_at=row.created_at, next_attempt_at=row.next_attempt_at,
                       delivered_at=row.delivered_at, last_status=row.last_status,
                       last_error=row.last_error,
                       history=[DeliveryAttempt.model_validate(h) for h in history])


async def newest(rt: Runtime, limit: int) -> list[DeliveryOut]:
    async with rt.read() as db:
        rows = (await db.execute(select(WebhookDelivery).order_by(WebhookDelivery.id.desc())
                                 .limit(limit))).scalars().all()
    return [delivery_out(r) for r in rows]


@router.get("/api/webhook/deliveries", response_model=list[DeliveryOut],
            responses=error_responses(401, 403))
async def deliveries(limit: int = Query(100, ge=1, le=1000), rt: Runtime = Depends(runtime),
                     _: Who = Depends(admin)) -> list[DeliveryOut]:
    """Newest first, each with its status and every attempt so far."""
    return await newest(rt, limit)


@router.get("/admin/webhook", include_in_schema=False)
async def deliveries_page(request: Request, rt: Runtime = Depends(runtime),
                          current: Who | None = Depends(who)) -> Response:
    refused = guard(request, current, ("admin",))
    if refused is not None:
        return refused
    assert current is not None
    zone = ZoneInfo(schedules.DEFAULT_TZ)

    def local(when: datetime | None) -> str:
        return when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if when else "—"

    rows = [{"d": d, "created": local(d.created_at), "next": local(d.next_attempt_at),
             "delivered": local(d.delivered_at)} for d in await newest(rt, 200)]
    return render(request, "admin_webhook.html", translator(request, current.user), current,
                  rows=rows, enabled=bool(rt.settings.webhook_url))
