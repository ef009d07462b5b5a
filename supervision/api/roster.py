"""The night roster: who is on tonight's shift for each unit on the board."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from supervision import roster
from supervision.context import Who, require, runtime
from supervision.errors import error_responses
from supervision.models import User
from supervision.roster import Roster
from supervision.runtime import Runtime

router = APIRouter(prefix="/api/roster", tags=["roster"])
#: night staff for themselves; shift leads (staff), managers and admins for others too
rostering = require("staff", "manager", "admin")

#: a unit's name as stored (Recipient.unit): no control characters
UNIT_TEXT = r"^[^\x00-\x1f\x7f]*$"


class ShiftChange(BaseModel):
    night: date = Field(description="the night's evening date (a shift the roster lists)")
    unit: str = Field(max_length=64, pattern=UNIT_TEXT)
    username: str | None = Field(default=None, min_length=1, max_length=64, description=(
        "whom it is for; default: oneself (naming another: shift leads, managers, admins)"))


class ShiftChanged(BaseModel):
    changed: bool = Field(description="false: it already was so (nothing audited)")
    roster: Roster = Field(description="the night's shifts after the change")


@router.get("", response_model=Roster, responses=error_responses(401, 403))
async def shifts(night: date | None = Query(None, description=(
                     "a night's shifts; default: those of the checks on the board now")),
                 rt: Runtime = Depends(runtime),
                 current: Who = Depends(rostering)) -> Roster:
    return await roster.view(rt, current.user, night)


@router.post("/join", response_model=ShiftChanged,
             responses=error_responses(400, 401, 403, 404, 409))
async def join(body: ShiftChange, rt: Runtime = Depends(runtime),
               current: Who = Depends(rostering)) -> ShiftChanged:
    """Take the shift (or put the person named on it)."""
    return await _change(roster.join, body, rt, current)


@router.post("/leave", response_model=ShiftChanged,
             responses=error_responses(400, 401, 403, 404, 409))
async def leave(body: ShiftChange, rt: Runtime = Depends(runtime),
                current: Who = Depends(rostering)) -> ShiftChanged:
    """Leave the shift (or take the person named off it)."""
    return await _change(roster.leave, body, rt, current)


async def _change(move: Callable[[Runtime, User, date, str, str | None], Awaitable[bool]],
                  body: ShiftChange, rt: Runtime, current: Who) -> ShiftChanged:
    """The change, and the night's roster as it is after it."""
    changed = await move(rt, current.user, body.night, body.unit, body.username)
    return ShiftChanged(changed=changed, roster=await roster.view(rt, current.user, body.night))
