"""Outcomes: what night staff record after a look-in, and what it rests on.

Invariants:
- Calm, Not visible and Needs help are recorded only by the viewer whose own look-in on
  this check reached the picture: the agent reported the camera opened for that session
  and the viewer's browser reported its first decoded frame (``lookins.picture``).
- Technical failure is recorded only after this viewer's look-in on this check failed or
  was refused (the refusal's reason is on the visit), or while the camera is offline.
- Exactly one outcome per check: the check moves from open with a guarded update, so of
  several presses (two staff, a double click, the sweep closing the window) one wins, and
  the others are told who recorded what. Its follow-up and alert commit with it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from supervision import audit, check_rows, checks
from supervision.alert_feed import announce, publish
from supervision.alerts import patrol_view, raise_alert
from supervision.checks import Outcome, State, Transition
from supervision.errors import ServiceError
from supervision.lookins import check_of, require_viewer
from supervision.models import Camera, Check, User, Visit
from supervision.plans import current_plan
from supervision.runtime import Runtime

SEEN = frozenset({Outcome.CALM, Outcome.NOT_VISIBLE, Outcome.NEEDS_HELP})
#: how a look-in that reached the picture may still have failed
FAILED_ENDS = frozenset({"technical-failure", "peer-failed", "agent-gone", "unreported"})
MAX_NOTE = 500


async def record(rt: Runtime, user: User, check_id: int, outcome: Outcome,
                 session: str | None, note: str | None = None
                 ) -> tuple[State, dict[str, Any] | None]:
    """The outcome, its follow-up and its alert commit together, or not at all. Returns
    the check's new state and the alert as the patrol sees it (if one was raised)."""
    require_viewer(user)
    now = datetime.now(UTC)
    async with rt.write() as db:
        check = await check_of(db, check_id)
        if check.state != State.OPEN:
            raise await _taken(db, check)
        visit = await _visit(db, user, check, session)
        await _rests_on(rt, db, check, visit, outcome)
        found = await current_plan(db, check.recipient_id)
        rule = found[1].follow_up if found else schedules.FollowUpRule()
        step = checks.record_outcome(State.OPEN, outcome, follow_ups_so_far=check.follow_ups,
                                     max_follow_ups=rule.max_follow_ups,
                                     interval_minutes=rule.interval_minutes)
        if not await check_rows.move(db, check.id, State.OPEN, step, now=now,
                                     actor=user.username, note=note):
            await db.refresh(check)
            raise await _taken(db, check)
        if visit is not None:
            visit.outcome = outcome.value
        await audit.append(db, user.username, "check.outcome", f"check:{check.id}", {
            "outcome": outcome.value, "state": step.state.value,
            "visit": visit.id if visit else None, "recipient": check.recipient_id,
            "camera": visit.camera_id if visit else None, "note": note,
            "ttff_ms": visit.ttff_ms if visit else None})
        if step.follow_up_in_minutes is not None:
            await _add_follow_up(db, check, step, found[1] if found else None, now)
        pushed = None
        if step.alert is not None:
            await db.refresh(check)  # the note and actor the patrol sees
            alert = await raise_alert(db, check, step.alert, user.username,
                                      webhook_on=rt.settings.webhook_on)
            await announce(rt, db, alert.id)
            pushed = await patrol_view(db, alert)
    if pushed is not None:
        await publish(rt, pushed)
    return step.state, pushed


async def _visit(db: AsyncSession, user: User, check: Check, session: str | None) -> Visit | None:
    """The look-in the outcome rests on: the one named, else this viewer's latest here."""
    if session:
        visit = await db.get(Visit, session[:64])
        if visit is None or visit.check_id != check.id or visit.viewer_id != user.id:
            raise ServiceError(404, "error.no_visit")
        return visit
    found: Visit | None = (await db.execute(select(Visit).where(
        Visit.check_id == check.id, Visit.viewer_id == user.id)
        .order_by(Visit.requested_at.desc()).limit(1))).scalar()
    return found


async def _rests_on(rt: Runtime, db: AsyncSession, check: Check, visit: Visit | None,
                    outcome: Outcome) -> None:
    """Refuse an outcome that no look-in of this viewer backs (409, in words)."""
    seen = visit is not None and visit.camera_opened_at is not None \
        and visit.first_frame_at is not None
    if outcome in SEEN:
        if not seen:
            raise ServiceError(409, "error.no_picture")
        return
    failed = visit is not None and (not seen or visit.end_reason in FAILED_ENDS)
    if failed:
        return
    cameras = (await db.execute(select(Camera.id).where(
        Camera.recipient_id == check.recipient_id, Camera.revoked.is_(False)))).scalars().all()
    if not any(rt.relay.is_online(c) for c in cameras):
        return  # no picture can be had now: sending someone is the safe side
    raise ServiceError(409, "error.no_failed_lookin")


async def _taken(db: AsyncSession, check: Check) -> ServiceError:
    """Someone else ended the check: say who, and what they recorded."""
    who = (await db.execute(select(User.display_name).where(
        User.username == check.actor))).scalar() if check.actor else None
    return ServiceError(409, "error.check_recorded", by=who or check.actor or "",
                        state=check.state, reason=check.reason or "",
                        words={"reason": f"reason.{check.reason}",
                               "state": f"state.{check.state}"})


async def _add_follow_up(db: AsyncSession, check: Check, step: Transition,
                         plan: schedules.Plan | None, now: datetime) -> Check:
    """The next look-in, due ``interval`` minutes from now. Its window opens the plan's
    before-margin ahead of that, but not before half the interval has passed: a person
    not seen now is looked at again later, not at once (with the default 15 minutes
    before and a 15-minute interval the window would otherwise open immediately)."""
    plan = plan or schedules.Plan(check_times=())
    assert step.follow_up_in_minutes is not None
    due = now + timedelta(minutes=step.follow_up_in_minutes)
    follow = Check(slot=f"{check.slot}/fu{check.follow_ups + 1}", recipient_id=check.recipient_id,
                   night=check.night, due_at=due,
                   opens_at=max(now + (due - now) / 2,
                                due - timedelta(minutes=plan.window_before_minutes)),
                   closes_at=due + timedelta(minutes=plan.window_after_minutes),
                   state=State.PLANNED, follow_ups=check.follow_ups + 1, parent_id=check.id,
                   max_lookin_seconds=check.max_lookin_seconds)
    db.add(follow)
    await db.flush()
    return follow
