"""Night staff: the rounds board, look-ins and outcomes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from supervision import lookins, outcomes, rounds_board, turn
from supervision.checks import Outcome
from supervision.context import RowId, Who, require, runtime
from supervision.errors import error_responses
from supervision.outcomes import MAX_NOTE
from supervision.rounds_board import Rounds
from supervision.runtime import Runtime

router = APIRouter(prefix="/api", tags=["staff"])
staff = require("staff")
board_roles = require("staff", "admin")


class LookinRequest(BaseModel):
    offer: str = Field(min_length=10, max_length=60_000, description="SDP offer, recvonly video")


class LookinStarted(BaseModel):
    session: str
    sdp: str
    signature: str = Field(description="agent's Ed25519 signature over the answer")
    agent_key: str
    expires_at: datetime
    seconds: int


#: a note may hold line breaks and tabs, no other control characters
NOTE_TEXT = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"


class OutcomeRequest(BaseModel):
    outcome: Literal["calm", "not-visible", "needs-help", "technical-failure"]
    session: str | None = Field(default=None, max_length=64, description=(
        "the look-in the outcome rests on; default: this viewer's latest on this check"))
    note: str | None = Field(default=None, max_length=MAX_NOTE, pattern=NOTE_TEXT,
                             description="a short note for the patrol (shown on the alert)")


class OutcomeRecorded(BaseModel):
    check: int
    state: str
    alert: int | None


class PictureReport(BaseModel):
    ttff_ms: int = Field(ge=0, le=600_000, description="time to the first decoded frame")


@router.get("/rounds", response_model=Rounds, responses=error_responses(401, 403))
async def rounds(rt: Runtime = Depends(runtime), _: Who = Depends(board_roles)) -> Rounds:
    """Open and overdue checks, those due in the next hours, and the last hour's results."""
    return await rounds_board.board(rt)


@router.post("/checks/{check_id}/ice", response_model=turn.IceConfig,
             response_model_exclude_none=True, responses=error_responses(401, 403, 404, 409))
async def lookin_ice(check_id: RowId, rt: Runtime = Depends(runtime),
                     current: Who = Depends(staff)) -> turn.IceConfig:
    """STUN/TURN servers for a look-in about to start, with a TURN credential minted for
    this viewer that ends no later than the look-in could (asked before the offer, which
    must carry the relayed candidates). Only while the check may be looked in on."""
    return await lookins.ice(rt, current.user, check_id)


@router.post("/checks/{check_id}/lookin", response_model=LookinStarted,
             responses=error_responses(400, 401, 403, 404, 409, 503, 504))
async def start_lookin(check_id: RowId, body: LookinRequest, rt: Runtime = Depends(runtime),
                       current: Who = Depends(staff)) -> LookinStarted:
    """Ask for a look-in: the service checks, signs a ticket, relays the offer to the agent."""
    started = await lookins.start(rt, current.user, check_id, body.offer)
    return LookinStarted(**started.__dict__)


@router.post("/lookins/{session}/end", status_code=204,
             responses=error_responses(401, 403, 404))
async def end_lookin(session: str, rt: Runtime = Depends(runtime),
                     current: Who = Depends(staff)) -> None:
    await lookins.end(rt, current.user, session)


class LookinStatus(BaseModel):
    session: str
    ended_at: datetime | None
    end_reason: str | None = Field(description="a code: expired, ended, technical-failure, ...")
    end_detail: str | None = Field(description="e.g. open-failed after technical-failure")
    seconds: float | None
    camera_opened_at: datetime | None = Field(description="the agent reported the camera open")
    first_frame_at: datetime | None = Field(description="the viewer's browser saw the picture")


@router.get("/lookins/{session}", response_model=LookinStatus,
            responses=error_responses(401, 403, 404))
async def lookin_status(session: str, rt: Runtime = Depends(runtime),
                        current: Who = Depends(staff)) -> LookinStatus:
    """How one's own look-in ended, as the camera reported it (e.g. a camera that failed)."""
    visit = await lookins.own_visit(rt, current.user, session)
    return LookinStatus(session=visit.id, ended_at=visit.ended_at, end_reason=visit.end_reason,
                        end_detail=visit.end_detail, seconds=visit.seconds,
                        camera_opened_at=visit.camera_opened_at,
                        first_frame_at=visit.first_frame_at)


@router.post("/lookins/{session}/picture", status_code=204,
             responses=error_responses(400, 401, 403, 404, 409))
async def lookin_picture(session: str, body: PictureReport, rt: Runtime = Depends(runtime),
                         current: Who = Depends(staff)) -> None:
    """The browser decoded the look-in's first frame: what Calm, Not visible and Needs
    help rest on, with the agent's report that the camera opened."""
    await lookins.picture(rt, current.user, session, body.ttff_ms)


@router.post("/checks/{check_id}/outcome", response_model=OutcomeRecorded,
             responses=error_responses(400, 401, 403, 404, 409))
async def record_outcome(check_id: RowId, body: OutcomeRequest, rt: Runtime = Depends(runtime),
                         current: Who = Depends(staff)) -> OutcomeRecorded:
    """Record what the look-in showed. Calm, Not visible and Needs help only after this
    viewer's own look-in reached the picture; Technical failure after a failed or refused
    one. One outcome per check: a second gets 409 saying who recorded what."""
    note = body.note.strip() if body.note and body.note.strip() else None
    state, alert = await outcomes.record(rt, current.user, check_id, Outcome(body.outcome),
                                         body.session, note)
    return OutcomeRecorded(check=check_id, state=state.value,
                           alert=alert["id"] if alert else None)


