"""Admin: what was sent to the external alarm receiver, and what could not be."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from supervision import webhook
from supervision.context import Who, require, runtime
from supervision.errors import error_responses
from supervision.runtime import Runtime

router = APIRouter(tags=["admin"])
admin = require("admin")


@router.get("/api/webhook/deliveries", response_model=list[webhook.DeliveryOut],
            responses=error_responses(401, 403))
async def deliveries(limit: int = Query(100, ge=1, le=1000), rt: Runtime = Depends(runtime),
                     _: Who = Depends(admin)) -> list[webhook.DeliveryOut]:
    """Newest first, each with its status and every attempt so far."""
    return await webhook.newest(rt.database, limit)
