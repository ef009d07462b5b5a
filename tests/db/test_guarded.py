"""State changes that cannot race, on SQLite and PostgreSQL: many writers at once on one
check or one alert, each in its own transaction and connection; exactly one wins, exactly
one alert, nobody gets an error that is not a clear refusal. Also: what an outcome rests
on, the follow-up's window, visits that end in the record, and door codes on notices."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from supervision import alerts, dispatch, lookins, outcomes, planning
from supervision.checks import AlertEffect, Outcome, State
from supervision.errors import ServiceError
from supervision.models import Alert, AuditEvent, Check, User, Visit
from supervision.runtime import Runtime
from supervision.sweep import sweep
from tests.evidence import seen

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def open_check(rt: Runtime) -> int:
    async with rt.write() as db:
        await planning.plan_all(db)
        check = (await db.execute(select(Check).order_by(Check.due_at).limit(1))).scalar_one()
        check.state = State.OPEN
        return check.id


async def user(rt: Runtime, username: str) -> User:
    async with rt.read() as db:
        return (await db.execute(select(User).where(User.username == username))).scalar_one()


async def count(rt: Runtime, what: type, *where: object) -> int:
    async with rt.read() as db:
        query = select(func.count()).select_from(what)
        for clause in where:
            query = query.where(clause)  # type: ignore[arg-type]
        return int((await db.execute(query)).scalar_one())


async def attempt(coro: object) -> str:
    """'ok', or the refusal's code; anything else fails the test."""
    try:
        await coro  # type: ignore[misc]
    except ServiceError as exc:
        return exc.code
    return "ok"


async def test_many_presses_on_one_check_one_winner_one_alert(rt: Runtime) -> None:
    check_id = await open_check(rt)
    natt, kvall = await user(rt, "natt"), await user(rt, "kvall")
    # both saw the picture (say, one after the other); then four presses land at once
    sessions = {natt.id: await seen(rt, natt, check_id), kvall.id: await seen(rt, kvall, check_id)}
    presses = [(natt, Outcome.NEEDS_HELP), (kvall, Outcome.NEEDS_HELP), (natt, Outcome.CALM),
               (kvall, Outcome.NOT_VISIBLE)]
    results = await asyncio.gather(*(attempt(outcomes.record(
        rt, who, check_id, what, sessions[who.id])) for who, what in presses))
    assert sorted(results) == ["error.check_recorded"] * 3 + ["ok"], results
    assert await count(rt, Alert) <= 1
    assert await count(rt, Check, Check.parent_id == check_id) <= 1
    async with rt.read() as db:
        check = await db.get(Check, check_id)
        assert check is not None and check.state != State.OPEN
        recorded = (await db.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.kind == "check.outcome"))).scalar_one()
    assert recorded == 1, "one outcome in the record"
    expected_alerts = 1 if check.state == State.DISPATCHED else 0
    assert await count(rt, Alert) == expected_alerts


async def test_outcome_against_the_sweep_at_the_window_end(rt: Runtime) -> None:
    check_id = await open_check(rt)
    natt = await user(rt, "natt")
    session = await seen(rt, natt, check_id)
    async with rt.write() as db:  # the window has just passed; the look-in is over
        check = await db.get(Check, check_id)
        assert check is not None
        check.closes_at = datetime.now(UTC) - timedelta(seconds=1)
        visit = await db.get(Visit, session)
        assert visit is not None
        visit.ended_at, visit.end_reason = datetime.now(UTC), "ended"
        visit.expires_at = datetime.now(UTC) - timedelta(minutes=5)
    results = await asyncio.gather(
        attempt(outcomes.record(rt, natt, check_id, Outcome.NEEDS_HELP, session)),
        attempt(sweep(rt, started_at=LONG_AGO)))
    async with rt.read() as db:
        check = await db.get(Check, check_id)
        assert check is not None
    assert check.state in (State.DISPATCHED, State.MISSED)
    assert results[1] == "ok"
    assert results[0] == ("ok" if check.state == State.DISPATCHED else "error.check_recorded")
    assert await count(rt, Alert, Alert.check_id == check_id) == 1, "one alert, whoever won"


async def test_two_patrol_members_move_one_alert_once(rt: Runtime) -> None:
    check_id = await open_check(rt)
    natt = await user(rt, "natt")
    await outcomes.record(rt, natt, check_id, Outcome.NEEDS_HELP, await seen(rt, natt, check_id))
    async with rt.read() as db:
        alert_id = (await db.execute(select(Alert.id))).scalar_one()
    patrol, admin = await user(rt, "patrull"), await user(rt, "admin")
    results = await asyncio.gather(*(attempt(dispatch.alert_state(
        rt, who, alert_id, "acknowledged", None)) for who in (patrol, admin, patrol, admin)))
    assert sorted(results) == ["error.alert_state"] * 3 + ["ok"], results
    acks = await count(rt, AuditEvent, AuditEvent.kind == "alert.acknowledged")
    assert acks == 1


async def test_an_outcome_needs_this_viewers_picture(rt: Runtime) -> None:
    check_id = await open_check(rt)
    natt, kvall = await user(rt, "natt"), await user(rt, "kvall")
    for what in (Outcome.CALM, Outcome.NOT_VISIBLE, Outcome.NEEDS_HELP):
        assert await attempt(outcomes.record(rt, natt, check_id, what, None)) == \
            "error.no_picture", "no look-in at all"
    # kvall was refused (the camera was busy): no picture, so no Calm; Technical failure
    # (with the refusal on record) is what kvall may record
    refused = await seen(rt, kvall, check_id, picture=False)
    assert await attempt(outcomes.record(rt, kvall, check_id, Outcome.CALM, refused)) == \
        "error.no_picture"
    # natt's look-in is connecting: the camera opened but no frame reached the browser
    connecting = await seen(rt, natt, check_id)
    async with rt.write() as db:
        visit = await db.get(Visit, connecting)
        assert visit is not None
        visit.first_frame_at = None
    assert await attempt(outcomes.record(rt, natt, check_id, Outcome.CALM, connecting)) == \
        "error.no_picture"
    # someone else's look-in is not this viewer's evidence
    assert await attempt(outcomes.record(rt, kvall, check_id, Outcome.CALM, connecting)) == \
        "error.no_visit"
    async with rt.read() as db:
        check = await db.get(Check, check_id)
        assert check is not None and check.state == State.OPEN, "nothing changed"
    # the browser reports the first frame: now Calm rests on something
    await lookins.picture(rt, natt, connecting, 420)
    assert await attempt(outcomes.record(rt, natt, check_id, Outcome.CALM, connecting)) == "ok"
    async with rt.read() as db:
        visit = await db.get(Visit, connecting)
        assert visit is not None and visit.ttff_ms == 420 and visit.outcome == "calm"


async def test_technical_failure_rests_on_a_failed_or_refused_look_in(rt: Runtime) -> None:
    check_id = await open_check(rt)
    natt = await user(rt, "natt")
    session = await seen(rt, natt, check_id)
    # the picture showed and nothing failed: Technical failure would send the patrol for
    # nothing (the camera is linked: links are in-process here, so say it is)
    rt.links.connected["cam-0001"] = object()  # type: ignore[assignment]
    rt.links.connected["cam-0002"] = object()  # type: ignore[assignment]
    rt.links.connected["cam-0003"] = object()  # type: ignore[assignment]
    assert await attempt(outcomes.record(rt, natt, check_id, Outcome.TECHNICAL_FAILURE,
                                         session)) == "error.no_failed_lookin"
    refused = await seen(rt, natt, check_id, picture=False)
    assert await attempt(outcomes.record(rt, natt, check_id, Outcome.TECHNICAL_FAILURE,
                                         refused)) == "ok"


async def test_the_staff_note_reaches_the_patrol(rt: Runtime) -> None:
    check_id = await open_check(rt)
    natt = await user(rt, "natt")
    _, pushed = await outcomes.record(rt, natt, check_id, Outcome.NEEDS_HELP,
                                      await seen(rt, natt, check_id), "Ligger på golvet")
    assert pushed is not None
    assert pushed["staff_note"] == "Ligger på golvet" and pushed["raised_by"] == "natt"
    async with rt.read() as db:
        snapshot = await alerts.active_alerts(db)
    assert snapshot[0]["staff_note"] == "Ligger på golvet"


async def test_a_follow_up_is_not_open_at_once(rt: Runtime) -> None:
    check_id = await open_check(rt)
    natt = await user(rt, "natt")
    before = datetime.now(UTC)
    await outcomes.record(rt, natt, check_id, Outcome.NOT_VISIBLE, await seen(rt, natt, check_id))
    async with rt.read() as db:
        follow = (await db.execute(select(Check).where(Check.parent_id == check_id))).scalar_one()
    # the demo plan: 15 minutes before and after, follow-up after 15 minutes
    assert timedelta(minutes=15) <= follow.due_at - before < timedelta(minutes=15, seconds=5)
    assert follow.opens_at - before >= timedelta(minutes=7), "looked at again later, not now"
    await sweep(rt, datetime.now(UTC), started_at=LONG_AGO)
    async with rt.read() as db:
        assert (await db.get(Check, follow.id)).state == State.PLANNED  # type: ignore[union-attr]


async def test_the_planner_never_reopens_or_rewrites_an_opened_check(rt: Runtime) -> None:
    async with rt.write() as db:
        await planning.plan_all(db)
        check = (await db.execute(select(Check).order_by(Check.due_at.desc()).limit(1))
                 ).scalar_one()
    # the planner read the check while planned; the sweep opened it meanwhile
    from supervision import check_rows
    async with rt.write() as db:
        row = await db.get(Check, check.id)
        assert row is not None
        row.state = State.OPEN
    stale = check  # as the planner read it: planned, opens later
    new = check_rows.Row(stale.slot, stale.recipient_id, stale.night,
                         stale.due_at + timedelta(minutes=5), stale.opens_at,
                         stale.closes_at, State.PLANNED.value, 0, None, None, None, None,
                         None, stale.max_lookin_seconds)
    async with rt.write() as db:
        assert not await check_rows.rederive(db, stale, new, datetime.now(UTC))
        assert await check_rows.delete_unopened(db, [stale.id], datetime.now(UTC)) == 0
    async with rt.read() as db:
        kept = await db.get(Check, check.id)
        assert kept is not None and kept.state == State.OPEN and kept.due_at == check.due_at


async def test_a_look_in_without_an_end_report_ends_in_the_record(rt: Runtime) -> None:
    check_id = await open_check(rt)
    natt = await user(rt, "natt")
    gone, lapsed = await seen(rt, natt, check_id), await seen(rt, natt, check_id)
    async with rt.write() as db:
        visit = await db.get(Visit, gone)
        assert visit is not None
        visit.camera_id = "cam-0002"  # another camera, whose link drops
        old = await db.get(Visit, lapsed)
        assert old is not None
        old.requested_at = datetime.now(UTC) - timedelta(minutes=10)
        old.expires_at = datetime.now(UTC) - timedelta(minutes=9, seconds=30)
    assert await lookins.link_lost(rt, "cam-0002") == 1
    await sweep(rt, datetime.now(UTC), started_at=LONG_AGO)
    async with rt.read() as db:
        a, b = await db.get(Visit, gone), await db.get(Visit, lapsed)
        assert a is not None and b is not None
        assert (a.end_reason, b.end_reason) == ("agent-gone", "unreported")
        assert b.ended_at == b.expires_at and b.seconds == pytest.approx(30, abs=0.01)
        ended = (await db.execute(select(AuditEvent.subject).where(
            AuditEvent.kind == "lookin.ended"))).scalars().all()
    assert {f"visit:{gone}", f"visit:{lapsed}"} <= set(ended)


@pytest.mark.parametrize("reason,has_code", [("missed-alert", False), ("missed", True),
                                             ("needs-help", True)])
async def test_a_door_code_goes_only_with_an_alert_that_sends_someone(
        rt: Runtime, reason: str, has_code: bool) -> None:
    check_id = await open_check(rt)
    async with rt.write() as db:
        check = await db.get(Check, check_id)
        assert check is not None
        alert = await alerts.raise_alert(db, check, AlertEffect(3, reason), "test",
                                         webhook_on=False)
        view = await alerts.patrol_view(db, alert)
        snapshot = await alerts.active_alerts(db)
    assert ("access_info" in view) is has_code
    assert ("access_info" in snapshot[0]) is has_code
