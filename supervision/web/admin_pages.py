"""Admin pages: the cameras (link, health, refusals, enrolment codes, revocation)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from supervision.api.deps import Who, translator, who
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
