"""Managers edit recipients (audited, access information without values), archive them
(checks ended, camera revoked, off every working list, history kept), and keep consent on
record: no record, or incomplete or withdrawn consent, means checks skipped ``no-consent``,
refused look-ins and a plan for the camera without consent, whatever the plan itself says.
In process, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

import schedules
from supervision import planning, plans
from supervision.demo import demo_plan
from supervision.models import AuditEvent, Camera, Check, Plan
from tests.manage.inproc import InProcess, running

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(database: tuple[str, Path]) -> AsyncIterator[InProcess]:
    async with running(*database) as service:
        yield service


async def audit_of(svc: InProcess, kind: str) -> list[dict[str, Any]]:
    async with svc.rt.read() as db:
        rows = (await db.execute(select(AuditEvent).where(AuditEvent.kind == kind)
                                 .order_by(AuditEvent.id))).scalars().all()
    return [{"actor": e.actor, **e.data} for e in rows]


async def checks_of(svc: InProcess, rid: int) -> list[Check]:
    async with svc.rt.read() as db:
        return list((await db.execute(select(Check).where(Check.recipient_id == rid)
                                      .order_by(Check.due_at))).scalars())


async def test_edit_is_audited_without_access_values(svc: InProcess) -> None:
    chef = await svc.login("chef")
    contacts = [{"name": "Eva Lindqvist", "relation": "dotter", "phone": "+46 70-123 45 67"}]
    reply = await chef.send("PATCH", "/api/recipients/1", {
        "unit": "Norr", "access_info": "Portkod 7777", "contacts": contacts,
        "care_notes": "Hör dåligt; rullator"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["unit"] == "Norr" and body["contacts"] == contacts
    assert body["care_notes"] == "Hör dåligt; rullator" and body["access_info"] == "Portkod 7777"
    entry = (await audit_of(svc, "recipient.changed"))[-1]
    assert entry["changes"]["access_info"] == {"changed": True}
    assert entry["changes"]["unit"] == {"old": "Demo", "new": "Norr"}
    assert "7777" not in str(entry) and "1234" not in str(entry)
    assert (await chef.send("PATCH", "/api/recipients/1",
                            {"contacts": [{"name": "x", "phone": "ring mig"}]})).status_code == 422
    assert (await chef.send("PATCH", "/api/recipients/1", {"name": ""})).status_code == 422
    assert (await chef.send("PATCH", "/api/recipients/999", {"unit": "x"})).status_code == 404
    staff = await svc.login("natt")
    assert (await staff.send("PATCH", "/api/recipients/1", {"unit": "x"})).status_code == 403
    page = await chef.get("/manage/recipients/1")
    assert page.status_code == 200 and "Eva Lindqvist" in page.text


async def test_consent_on_record_decides_checks_and_the_plan(svc: InProcess) -> None:
    chef = await svc.login("chef")
    rid = 2
    seeded = (await chef.get(f"/api/recipients/{rid}/consent")).json()
    assert seeded["complete"] is True, "the demo records the person's written consent"
    assert [r["document_ref"] for r in seeded["records"]] == [f"DEMO-{rid}"]
    today = schedules.night_of(datetime.now(UTC))
    # a cohabitant listed: consent on record and incomplete, so nothing may be looked at
    listed = await chef.send("PUT", f"/api/recipients/{rid}/cohabitants", {"names": ["Olle Ek"]})
    assert listed.status_code == 200 and listed.json()["missing"] == ["Olle Ek"]
    coming = [c for c in await checks_of(svc, rid) if c.opens_at > datetime.now(UTC)]
    assert coming and all(c.state == "skipped" and c.reason == "no-consent" for c in coming)
    async with svc.rt.read() as db:
        found = await plans.current_plan(db, rid)
    assert found is not None and found[1].consent is None, "the camera's plan has none"
    person = {"party": "person", "name": "Bertil Ek", "method": "written",
              "document_ref": "DNR 2024/118", "given_on": (today - timedelta(days=3)).isoformat(),
              "valid_until": (today + timedelta(days=200)).isoformat()}
    assert (await chef.send("POST", f"/api/recipients/{rid}/consent", person)).status_code == 201
    oral = {"party": "cohabitant", "name": "olle ek", "method": "oral",
            "given_on": (today - timedelta(days=1)).isoformat(),
            "valid_until": (today + timedelta(days=20)).isoformat()}
    assert (await chef.send("POST", f"/api/recipients/{rid}/consent", oral)).status_code == 422
    backwards = dict(person, valid_until=(today - timedelta(days=9)).isoformat())
    assert (await chef.send("POST", f"/api/recipients/{rid}/consent", backwards)
            ).status_code == 422
    done = await chef.send("POST", f"/api/recipients/{rid}/consent",
                           dict(oral, witness="Sara Sjuksköterska"))
    view = done.json()
    assert done.status_code == 201 and view["complete"] is True and view["expiring"] is True
    assert view["given_on"] == (today - timedelta(days=1)).isoformat()
    assert view["valid_until"] == (today + timedelta(days=20)).isoformat()
    coming = [c for c in await checks_of(svc, rid) if c.opens_at > datetime.now(UTC)]
    assert coming and all(c.state == "planned" for c in coming)
    async with svc.rt.read() as db:
        found = await plans.current_plan(db, rid)
    assert found is not None and found[1].consent == schedules.Consent(
        today - timedelta(days=1), today + timedelta(days=20))
    # the preview shows the nights the records leave uncovered, not the plan's own consent
    shown = await chef.get(f"/api/recipients/{rid}/preview?nights=3&start="
                           f"{(today + timedelta(days=19)).isoformat()}")
    nights = shown.json()["nights"]
    assert shown.status_code == 200 and nights[0]["skip"] is None, nights[0]
    assert nights[2]["skip"]["code"] == "no-consent", nights[2]
    listed_row = next(r for r in (await chef.get("/api/recipients")).json() if r["id"] == rid)
    assert listed_row["consent"]["state"] == "valid"
    assert listed_row["consent"]["on_record"] and listed_row["consent"]["expiring"]
    page = await chef.get("/manage")
    assert "consent-expiring" in page.text
    # withdrawal: at once, audited; open checks end without an alert
    olle = next(r for r in view["records"] if r["party"] == "cohabitant")
    gone = await chef.send("POST", f"/api/recipients/{rid}/consent/{olle['id']}/withdraw")
    assert gone.status_code == 200 and gone.json()["withdrawn"] == ["Olle Ek"]
    assert (await chef.send("POST", f"/api/recipients/{rid}/consent/{olle['id']}/withdraw")
            ).status_code == 409
    now = datetime.now(UTC)
    for c in await checks_of(svc, rid):
        if c.closes_at > now and c.parent_id is None:
            assert c.state in ("skipped", "dispatched", "missed"), (c.slot, c.state)
            if c.state == "skipped":
                assert c.reason == "no-consent"
    entry = (await audit_of(svc, "consent.withdrawn"))[-1]
    assert entry["actor"] == "chef" and entry["name"] == "olle ek" and not entry["complete"]
    async with svc.rt.read() as db:
        found = await plans.current_plan(db, rid)
    assert found is not None and found[1].consent is None
    assert not schedules.authorise(found[1], now, 0).allowed


async def test_a_plans_own_consent_gives_no_lookins_until_one_is_recorded(
        svc: InProcess) -> None:
    """An installation upgrading: a plan version stored with consent dates of its own, and
    a check the version before opened under them, but no consent record. Nothing may be
    looked at, the camera's plan carries no consent, and the list says why; recording the
    consent gives the look-ins back. A plan carrying consent is refused (422)."""
    chef, staff = await svc.login("chef"), await svc.login("natt")
    made = await chef.send("POST", "/api/recipients", {
        "name": "Ulla Uppgradering", "address": "Gamla vägen 1", "access_info": "Kod 5"})
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    now = datetime.now(UTC)
    data = demo_plan(now, [2, 122], schedules.DEFAULT_TZ)
    given = (schedules.night_of(now) - timedelta(days=10)).isoformat()
    old = schedules.parse_plan(data | {"consent": {"given_on": given, "valid_until": None}})
    night = plans.tonight(old, now)
    first = schedules.expand(old, night)[0]
    assert first.opens <= now < first.closes
    async with svc.rt.write() as db:
        db.add(Plan(recipient_id=rid, version=1, data=schedules.plan_to_dict(old),
                    created_at=now - timedelta(days=10), created_by="before"))
        db.add(Check(slot=f"{rid}:{night.isoformat()}:{first.local_time.strftime('%H:%M')}",
                     recipient_id=rid, night=night, due_at=first.due, opens_at=first.opens,
                     closes_at=first.closes, state="open", max_lookin_seconds=30))
        await db.flush()
        await planning.materialise(db, now, recipient_ids=[rid], replace=True)
    opened, *coming = await checks_of(svc, rid)
    assert opened.state == "open" and coming
    assert all(c.state == "skipped" and c.reason == "no-consent" for c in coming)
    refused = await staff.send("POST", f"/api/checks/{opened.id}/ice")
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"]["reason"] == "no-consent"
    async with svc.rt.read() as db:
        found = await plans.current_plan(db, rid)
    assert found is not None and found[1].consent is None
    signed, _ = svc.rt.key.sign_plan("cam-upgrade", found[1])
    assert json.loads(signed)["consent"] is None, "the camera's signed plan has no consent"
    row = next(r for r in (await chef.get("/api/recipients")).json() if r["id"] == rid)
    assert row["consent"] == {"state": "none", "given_on": None, "valid_until": None,
                              "on_record": False, "expiring": False,
                              "plan_consent_only": True}
    page = (await chef.get("/manage")).text
    mine = page[page.index(f'data-recipient="{rid}"'):]
    assert 'data-consent="not-recorded"' in mine[:1500] and "plan-consent-only" in mine[:1500]
    shown = (await chef.get(f"/api/recipients/{rid}/preview?nights=1")).json()["nights"][0]
    assert shown["skip"]["code"] == "no-consent"
    # the editor is given the plan without consent, and a plan with consent is refused
    detail = (await chef.get(f"/api/recipients/{rid}")).json()
    assert detail["plan"]["consent"] is None and detail["consent"]["plan_consent_only"]
    back = await chef.send("PUT", f"/api/recipients/{rid}/plan",
                           detail["plan"] | {"consent": {"given_on": given}})
    assert back.status_code == 422, back.text
    assert [p["code"] for p in back.json()["detail"]] == ["consent.on_record"]
    saved = await chef.send("PUT", f"/api/recipients/{rid}/plan", detail["plan"])
    assert saved.status_code == 200 and saved.json()["version"] == 2, saved.text
    assert all(c.state == "skipped" for c in (await checks_of(svc, rid))[1:])

    recorded = await chef.send("POST", f"/api/recipients/{rid}/consent", {
        "party": "person", "name": "Ulla Uppgradering", "method": "written",
        "document_ref": "DNR 2026/55", "given_on": given})
    assert recorded.status_code == 201 and recorded.json()["complete"], recorded.text
    opened, *coming = await checks_of(svc, rid)
    assert all(c.state == "planned" for c in coming), [(c.state, c.reason) for c in coming]
    allowed = await staff.send("POST", f"/api/checks/{opened.id}/ice")
    assert allowed.status_code == 200, allowed.text
    async with svc.rt.read() as db:
        found = await plans.current_plan(db, rid)
    assert found is not None and found[1].consent == schedules.Consent(date.fromisoformat(given))
    row = next(r for r in (await chef.get("/api/recipients")).json() if r["id"] == rid)
    assert row["consent"]["state"] == "valid" and row["consent"]["on_record"]
    assert not row["consent"]["plan_consent_only"]


async def test_archive_ends_checks_revokes_camera_and_leaves_lists(svc: InProcess) -> None:
    chef = await svc.login("chef")
    rid = 3
    assert [c for c in await checks_of(svc, rid) if c.state in ("planned", "open")]
    archived = await chef.send("POST", f"/api/recipients/{rid}/archive")
    assert archived.status_code == 200 and archived.json()["archived_at"]
    assert all(c.state not in ("planned", "open") for c in await checks_of(svc, rid))
    assert any(c.reason == "archived" for c in await checks_of(svc, rid))
    async with svc.rt.read() as db:
        cams = (await db.execute(select(Camera).where(Camera.recipient_id == rid))).scalars()
        assert all(cam.revoked for cam in cams)
    assert rid not in [r["id"] for r in (await chef.get("/api/recipients")).json()]
    staff = await svc.login("natt")
    board = (await staff.get("/api/rounds")).json()["checks"]
    assert "Cecilia Holm" not in [c["recipient"] for c in board]
    # history stays; no more changes, and the planner makes no new checks
    assert (await chef.get(f"/api/recipients/{rid}")).status_code == 200
    assert (await chef.get(f"/manage/recipients/{rid}")).status_code == 200
    assert (await chef.send("PATCH", f"/api/recipients/{rid}", {"unit": "x"})).status_code == 409
    assert (await chef.send("POST", f"/api/recipients/{rid}/archive")).status_code == 409
    plan = (await chef.get(f"/api/recipients/{rid}")).json()["plan"]
    assert plan is not None
    refused = await chef.send("PUT", f"/api/recipients/{rid}/plan", plan)
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"]["code"] == "manage.error.archived"
    assert refused.json()["detail"]["message"] == "Personen är arkiverad; inget kan ändras."
    before = len(await checks_of(svc, rid))
    async with svc.rt.write() as db:
        await planning.materialise(db, datetime.now(UTC) + timedelta(days=1))
    assert len(await checks_of(svc, rid)) == before
    entry = (await audit_of(svc, "recipient.archived"))[-1]
    assert entry["recipient"] == rid and entry["cameras"]
    assert (await audit_of(svc, "camera.revoked"))[-1]["recipient"] == rid


async def test_combine_takes_the_nights_all_parties_cover() -> None:
    from supervision.consent import combine
    from supervision.models import ConsentRecord

    def rec(i: int, party: str, name: str, given: date, until: date | None,
            withdrawn: bool = False) -> ConsentRecord:
        return ConsentRecord(id=i, party=party, name=name, given_on=given, valid_until=until,
                             withdrawn_at=datetime.now(UTC) if withdrawn else None)

    d = date(2025, 1, 1)
    person = rec(1, "representative", "God man", d, None)
    assert combine([person], []) == (schedules.Consent(d, None), [], [])
    assert combine([person], ["Olle"])[1] == ["Olle"]
    olle = rec(2, "cohabitant", "OLLE", d + timedelta(days=5), d + timedelta(days=40))
    assert combine([person, olle], ["Olle"])[0] == schedules.Consent(
        d + timedelta(days=5), d + timedelta(days=40))
    renewed = rec(3, "cohabitant", "Olle", d + timedelta(days=50), None)
    assert combine([person, olle, renewed], ["Olle"])[0] == schedules.Consent(
        d + timedelta(days=50), None)
    assert combine([rec(4, "person", "P", d, None, withdrawn=True)], [])[2] == ["person"]
    apart = rec(5, "cohabitant", "Olle", d, d)
    late = rec(6, "person", "P", d + timedelta(days=2), None)
    assert combine([late, apart], ["Olle"]) == (None, [], [])
