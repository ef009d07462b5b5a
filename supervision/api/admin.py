"""Admin: what was sent to the external alarm receiver, and what could not be; people
(add, role, shift lead, disable, password links), and everyone's own password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from supervision import users, webhook
from supervision.auth import ROLES
from supervision.context import MAX_ROW_ID, Who, require, runtime
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


# --- people ------------------------------------------------------------------------------

everyone = require(*ROLES)
UserId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


@router.get("/api/users", response_model=list[users.UserOut],
            responses=error_responses(401, 403))
async def list_users(rt: Runtime = Depends(runtime),
                     _: Who = Depends(admin)) -> list[users.UserOut]:
    """Every user, active or not, with role, shift-lead flag and a pending password link."""
    return await users.listing(rt)


@router.post("/api/users", response_model=users.PasswordLinkOut, status_code=201,
             responses=error_responses(400, 401, 403, 409))
async def add_user(body: users.UserCreate, rt: Runtime = Depends(runtime),
                   current: Who = Depends(admin)) -> users.PasswordLinkOut:
    """A new user; the answer carries a one-time link (shown once) to choose a password."""
    return await users.add(rt, body, current.user.username)


@router.patch("/api/users/{user_id}", response_model=users.UserOut,
              responses=error_responses(400, 401, 403, 404, 409))
async def change_user(user_id: UserId, body: users.UserChange,
                      rt: Runtime = Depends(runtime),
                      current: Who = Depends(admin)) -> users.UserOut:
    """Name, role, shift-lead flag, active. A new role or disabling ends the user's
    sessions and sockets at once. 409: the last active admin cannot be demoted/disabled."""
    return await users.change(rt, user_id, body, current.user.username)


@router.post("/api/users/{user_id}/password-link", response_model=users.PasswordLinkOut,
             responses=error_responses(401, 403, 404))
async def reset_password(user_id: UserId, rt: Runtime = Depends(runtime),
                         current: Who = Depends(admin)) -> users.PasswordLinkOut:
    """Reset: the old password stops working and the user's sessions end; a one-time link
    (shown once) sets a new password."""
    return await users.reset(rt, user_id, current.user.username)


@router.post("/api/me/password", status_code=204,
             responses=error_responses(400, 401, 403))
async def change_own_password(body: users.OwnPassword, rt: Runtime = Depends(runtime),
                              current: Who = Depends(everyone)) -> Response:
    """One's own password, given the current one (422 with rule codes if the new one is
    too short, common or personal); one's other sessions end."""
    await users.change_own(rt, current.user.id, current.session.id, body)
    return Response(status_code=204)


@router.post("/api/password-links/{token}", response_model=users.UserOut,
             responses=error_responses(400, 404))
async def set_password(token: Annotated[str, Path(max_length=128)], body: users.NewPassword,
                       rt: Runtime = Depends(runtime)) -> users.UserOut:
    """Spend a one-time link: set the password it was issued for. No session: the link
    is the credential. 404 for a link unknown, used, expired or of a disabled user."""
    return await users.set_by_link(rt, token, body.password)
