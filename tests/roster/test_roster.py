"""The night roster, in process on SQLite and PostgreSQL: night staff take tonight's shift
for a unit on the board and leave it; only shift leads, managers and admins name others;
only active night staff are on a roster; every change is audited with who made it, and a
change that changes nothing is not; no input gives a 5xx. The log review flags a look-in by
a viewer who was not on the check's night's shift for the recipient's unit when it began,
and not one by a viewer who was."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, update

from supervision import roster
from supervision.models import AuditEvent, Check, Recipient, User, Visit
from tests.manage.inproc import Browser, InProcess, running

pytestmark = pytest.mark.asyncio(loop_scope="module")

UNIT = "Demo"  # the demo world's recipients' unit


async def _tonight(svc: InProcess) -> Check | None:
    async with svc.rt.read() as db:
        return (await db.execute(
            select(Check).join(Recipient, Recipient.id == Check.recipient_id)
            .where(Recipient.unit == UNIT).order_by(Check.due_at).limit(1))).scalar()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(database: tuple[str, Path]) -> AsyncIterator[InProcess]:
    async with running(*database) as service:
        async with service.rt.write() as db:  # kvall leads the night shift
            await db.execute(update(User).where(User.username == "kvall")
                             .values(shift_lead=True))
        for _ in range(300):  # the scheduler plans the demo night as the service starts
            check = await _tonight(service)
            if check is not None:
                break
            await asyncio.sleep(0.05)
        assert check is not None, "the demo night was planned"
        service.world["check"] = check
        yield service


def shift_of(body: dict[str, Any], night: date) -> dict[str, Any]:
    found = [s for s in body["shifts"] if s["night"] == night.isoformat() and s["unit"] == UNIT]
    assert len(found) == 1, body
    return found[0]


async def entries(svc: InProcess, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    async with svc.rt.read() as db:
        rows = (await db.execute(select(AuditEvent).where(AuditEvent.kind == kind)
                                 .order_by(AuditEvent.id))).scalars()
        return [(e.actor, e.subject, e.data) for e in rows]


async def test_staff_take_tonights_shift_and_leave_it(svc: InProcess) -> None:
    night: date = svc.world["check"].night
    natt = await svc.login("natt")
    body = (await natt.get("/api/roster")).json()
    shift = shift_of(body, night)
    assert shift == {"night": night.isoformat(), "unit": UNIT, "members": [], "mine": False}
    assert body["may_manage"] is False and body["staff"] == []
    change = {"night": night.isoformat(), "unit": UNIT}
    joined = await natt.send("POST", "/api/roster/join", change)
    assert joined.status_code == 200, joined.text
    assert joined.json()["changed"] is True
    shift = shift_of(joined.json()["roster"], night)
    assert shift["mine"] is True
    assert [(m["username"], m["name"], m["joined_by"]) for m in shift["members"]] == [
        ("natt", "Nora Natt", "natt")]
    again = await natt.send("POST", "/api/roster/join", change)
    assert again.status_code == 200 and again.json()["changed"] is False
    left = await natt.send("POST", "/api/roster/leave", change)
    assert left.status_code == 200 and left.json()["changed"] is True
    assert shift_of(left.json()["roster"], night) | {"members": [], "mine": False} == shift_of(
        left.json()["roster"], night)
    gone = await natt.send("POST", "/api/roster/leave", change)
    assert gone.status_code == 200 and gone.json()["changed"] is False
    data = {"night": night.isoformat(), "unit": UNIT}
    assert await entries(svc, "roster.joined") == [("natt", "user:natt", data)]
    assert await entries(svc, "roster.left") == [("natt", "user:natt", data)]
    # the page says what the roster is called, in the person's language
    page = await natt.get("/rounds")
    assert "Nattpasset" in page.text or "Tonight's shift" in page.text


async def test_leads_and_managers_name_others_and_only_night_staff_are_on_it(
        svc: InProcess) -> None:
    night = svc.world["check"].night.isoformat()
    natt, kvall, chef = [await svc.login(u) for u in ("natt", "kvall", "chef")]

    async def send(who: Browser, action: str, **body: Any) -> tuple[int, Any]:
        reply = await who.send("POST", f"/api/roster/{action}",
                               {"night": night, "unit": UNIT} | body)
        return reply.status_code, reply.json()

    status, body = await send(natt, "join", username="kvall")
    assert (status, body["detail"]["code"]) == (403, "roster.error.not_lead")
    status, body = await send(kvall, "join", username="natt")
    assert status == 200 and body["changed"] is True, body
    member = shift_of(body["roster"], night=svc.world["check"].night)["members"][0]
    assert (member["username"], member["joined_by"]) == ("natt", "kvall")
    status, body = await send(chef, "leave", username="natt")
    assert status == 200 and body["changed"] is True, body
    assert (await entries(svc, "roster.joined"))[-1][:2] == ("kvall", "user:natt")
    assert (await entries(svc, "roster.left"))[-1][:2] == ("chef", "user:natt")
    listed = (await chef.get(f"/api/roster?night={night}")).json()
    assert listed["may_manage"] is True
    assert {p["username"] for p in listed["staff"]} == {"natt", "kvall"}
    assert [s["unit"] for s in listed["shifts"]] == [UNIT]
    # a manager is not night staff; nor is the patrol; nobody is nobody
    assert (await send(chef, "join"))[1]["detail"]["code"] == "roster.error.not_staff"
    assert (await send(chef, "join", username="patrull"))[0] == 409
    status, body = await send(chef, "join", username="ingen")
    assert (status, body["detail"]["code"]) == (404, "roster.error.no_person")
    # a shift is a unit with checks that night
    status, body = await send(natt, "join", unit="Ingenstans")
    assert (status, body["detail"]["code"]) == (404, "roster.error.no_shift")
    assert (await send(natt, "join", night="2001-01-01"))[0] == 404
    patrol = await svc.login("patrull")
    assert (await patrol.get("/api/roster")).status_code == 403
    page = await chef.get("/manage/roster")
    assert page.status_code == 200 and 'id="roster-night"' in page.text
    assert "/static/roster.js" in page.text


HOSTILE: list[Any] = [
    {}, {"night": "igår", "unit": UNIT}, {"night": "2025-02-30", "unit": UNIT},
    {"night": "2025-01-01", "unit": "x" * 65}, {"night": "2025-01-01", "unit": "a\x00b"},
    {"night": "2025-01-01", "unit": UNIT, "username": ""},
    {"night": "2025-01-01", "unit": UNIT, "username": "x" * 65},
    {"night": "0001-01-01", "unit": UNIT}, {"night": "9999-12-31", "unit": UNIT},
    {"night": "2025-01-01", "unit": ["Demo"]}, {"night": 20250101, "unit": UNIT},
    [], "Demo", None,
]


async def test_no_input_gives_a_5xx(svc: InProcess) -> None:
    natt = await svc.login("natt")
    for body in HOSTILE:
        for action in ("join", "leave"):
            reply = await natt.send("POST", f"/api/roster/{action}", body)
            assert reply.status_code in (200, 404, 409, 422), (action, body, reply.text)
    for query in ("night=nope", "night=9999-12-31", "night=0001-01-01", "night="):
        reply = await natt.get(f"/api/roster?{query}")
        assert reply.status_code in (200, 422), (query, reply.text)


async def test_the_log_review_flags_a_lookin_off_the_roster(svc: InProcess) -> None:
    check: Check = svc.world["check"]
    camera = next(c["camera_id"] for c in svc.world["cameras"]
                  if c["recipient_id"] == check.recipient_id)
    async with svc.rt.write() as db:
        on, off = (User(username=u, display_name=u.title(), password_hash="x", role="staff")
                   for u in ("pass-rut", "pass-sam"))
        db.add_all([on, off])
    await roster.join(svc.rt, on, check.night, UNIT)
    n = 0

    async def lookin(viewer: User, at: datetime) -> None:
        nonlocal n
        n += 1
        async with svc.rt.write() as db:
            db.add(Visit(id=f"roster{n}", check_id=check.id, camera_id=camera,
                         recipient_id=check.recipient_id, viewer_id=viewer.id,
                         nonce=f"roster-nonce-{n}", requested_at=at,
                         expires_at=at + timedelta(seconds=30), ended_at=at + timedelta(
                             seconds=10), seconds=10.0, end_reason="ended", outcome="calm"))

    async with svc.rt.read() as db:
        joined = (await db.execute(select(AuditEvent.at).where(
            AuditEvent.subject == "user:pass-rut"))).scalar_one()
    await lookin(on, joined - timedelta(seconds=1))  # before Rut took the shift
    await lookin(on, datetime.now(UTC))  # on the shift
    await lookin(off, datetime.now(UTC))  # Sam never took it
    await roster.leave(svc.rt, on, check.night, UNIT)
    await lookin(on, datetime.now(UTC))  # after Rut left it
    chef = await svc.login("chef")
    seen = []
    for who in ("pass-rut", "pass-sam"):
        reply = await chef.get(f"/api/audit/log?person={who}&kind=lookin")
        assert reply.status_code == 200, reply.text
        seen += [(who, e["at"], e["flags"]) for e in reply.json()["entries"]]
    flagged = sorted((who, "not-on-roster" in flags) for who, _, flags in seen)
    assert flagged == [("pass-rut", False), ("pass-rut", True), ("pass-rut", True),
                       ("pass-sam", True)], seen
    assert all("not-staff" not in flags for _, _, flags in seen)
    # the one not flagged is the look-in while Rut was on the shift
    rut = sorted((at, flags) for who, at, flags in seen if who == "pass-rut")
    assert ["not-on-roster" in flags for _, flags in rut] == [True, False, True]
    page = await chef.get("/audit/log")
    assert "not-on-roster" in page.text or "inte på passet" in page.text


async def test_the_same_join_at_the_same_moment_is_one_change(svc: InProcess) -> None:
    """Taken at once from two tabs (on PostgreSQL in parallel transactions): one row, one
    audit entry, and no refusal for either."""
    check: Check = svc.world["check"]
    async with svc.rt.write() as db:
        twice = User(username="pass-tva", display_name="Tva", password_hash="x", role="staff")
        db.add(twice)
    results = await asyncio.gather(*(roster.join(svc.rt, twice, check.night, UNIT)
                                     for _ in range(4)))
    assert sorted(results) == [False, False, False, True]
    joined = [e for e in await entries(svc, "roster.joined") if e[1] == "user:pass-tva"]
    assert len(joined) == 1
