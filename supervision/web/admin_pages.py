"""Admin pages: the cameras (link, health, refusals, enrolment codes, revocation), the
deliveries to the external alarm receiver and the people; and everyone's own password
pages (one's account, a one-time password link)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

import schedules
from schedules.localtime import zone
from supervision import passwords, users, webhook
from supervision.auth import ROLES
from supervision.context import Who, runtime, translator, who
from supervision.errors import ServiceError
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


@router.get("/admin/users")
async def users_page(request: Request, current: Who | None = Depends(who)) -> Response:
    """A shell; admin_users.js fills it from /api/users and makes the changes there."""
    refused = guard(request, current, ("admin",))
    if refused is not None:
        return refused
    assert current is not None
    return render(request, "admin_users.html", translator(request, current.user), current,
                  min_length=passwords.MIN_LENGTH)


@router.get("/account")
async def account_page(request: Request, current: Who | None = Depends(who)) -> Response:
    """Everyone's own page: change one's password."""
    refused = guard(request, current, ROLES)
    if refused is not None:
        return refused
    assert current is not None
    return render(request, "account.html", translator(request, current.user), current,
                  min_length=passwords.MIN_LENGTH)


@router.get("/account/password/{token}")
async def password_link_page(token: str, request: Request, rt: Runtime = Depends(runtime),
                             current: Who | None = Depends(who)) -> Response:
    """A one-time link: choose a password (set_password.js posts it to the API)."""
    t = translator(request, current.user if current else None)
    try:
        person = await users.link_user(rt, token)
    except ServiceError as exc:
        return render(request, "set_password.html", t, current, status=exc.status,
                      error=exc.code, person=None, min_length=passwords.MIN_LENGTH)
    return render(request, "set_password.html", t, current, person=person,
                  min_length=passwords.MIN_LENGTH)
