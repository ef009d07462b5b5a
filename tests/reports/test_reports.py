"""Night and period reports, computed by SQL, on SQLite and PostgreSQL: a night of known
checks (on time, late, missed, skipped, a needs-help dispatch the patrol worked through, a
camera-offline dispatch, a technical failure, a pending follow-up) in two units gives the
counts, look-ins and patrol times it should; the month gives the per-unit counts, skip and
dispatch reasons, nearest-rank median and 90th percentile of the patrol's times, failures
per camera; every table comes as CSV; the pages render in Swedish. In process.

Log review (loggkontroll), on the same service: look-ins, refusals and changes of plan,
consent and details in one list, filtered by person, recipient, time and kind; each unusual
access flagged by its stated rule (outside the window, longer than the plan allows,
repeated refusals at one camera, many look-ins on one recipient in a night, a viewer not on
that night's roster for the unit, a viewer who is not night staff) and nothing else
flagged; the chain's status comes from a verification in the background; a recipient's
access report is Swedish and lists who looked, not who was refused."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from supervision import audit, log_review, reports
from supervision.models import Alert, Camera, Check, NightShift, Recipient, User, Visit
from tests.manage.inproc import InProcess, running

pytestmark = pytest.mark.asyncio(loop_scope="module")

NIGHT = date(2025, 1, 10)
EVENING = datetime(2025, 1, 10, 21, 0, tzinfo=UTC)  # 22:00 in Stockholm
NORR, SODER = "Enhet Norr", "Enhet Söder"


async def build(svc: InProcess) -> dict[str, int]:
    """The night, written as the service would have left it (audit entries included)."""
    ids: dict[str, int] = {}
    async with svc.rt.write() as db:
        viewer = User(username="rapport-natt", display_name="Rut Nattsson",
                      password_hash="x", role="staff")
        people = [Recipient(name=n, address="Gatan 1", unit=u)
                  for n, u in (("Anna Norr", NORR), ("Bo Norr", NORR), ("Cilla Söder", SODER))]
        db.add_all([viewer, *people])
        await db.flush()
        a, b, c = (p.id for p in people)
        db.add_all([Camera(id=f"cam-rep-{k}", recipient_id=r) for k, r in (("a", a), ("b", b),
                                                                          ("c", c))])
        await db.flush()
        n = 0

        async def check(rid: int, minutes: int, state: str, reason: str | None = None,
                        parent: int | None = None) -> Check:
            nonlocal n
            n += 1
            due = EVENING + timedelta(minutes=minutes)
            row = Check(slot=f"rep:{rid}:{n}", recipient_id=rid, night=NIGHT, due_at=due,
                        opens_at=due - timedelta(minutes=10), closes_at=due + timedelta(
                            minutes=20), state=state, reason=reason, parent_id=parent,
                        actor="rapport-natt" if state in ("done", "dispatched") else None)
            db.add(row)
            await db.flush()
            return row

        async def visit(chk: Check, after_s: int, outcome: str | None,
                        end: str = "ended") -> None:
            at = chk.due_at + timedelta(seconds=after_s)
            db.add(Visit(id=f"v{chk.id}x{after_s}", check_id=chk.id,
                         camera_id=f"cam-rep-{'abc'[[a, b, c].index(chk.recipient_id)]}",
                         recipient_id=chk.recipient_id, viewer_id=viewer.id,
                         nonce=f"n{chk.id}x{after_s}", requested_at=at,
                         expires_at=at + timedelta(seconds=30), ended_at=at + timedelta(
                             seconds=20), seconds=20.0, end_reason=end, outcome=outcome))

        async def alert(chk: Check, reason: str, moves: dict[str, int]) -> None:
            row = Alert(check_id=chk.id, recipient_id=chk.recipient_id, priority=2,
                        reason=reason, state=max(moves, key=moves.get) if moves else "new",
                        created_at=chk.due_at + timedelta(minutes=1),
                        updated_at=chk.due_at + timedelta(minutes=1),
                        acknowledged_by="patrull" if moves else None)
            db.add(row)
            await db.flush()
            for state, after in moves.items():
                await audit.append(db, "patrull", f"alert.{state}", f"alert:{row.id}", {},
                                   at=row.created_at + timedelta(seconds=after))

        on_time = await check(a, 0, "done", "calm")
        await visit(on_time, 120, "calm")
        late = await check(a, 240, "done", "calm")
        await visit(late, 600, "calm")
        missed = await check(a, 360, "missed", "window-closed")
        await alert(missed, "missed", {"acknowledged": 60, "arrived": 600})
        await check(b, 0, "skipped", "paused")
        helped = await check(b, 120, "dispatched", "needs-help")
        await visit(helped, 60, "needs-help")
        await alert(helped, "needs-help", {"acknowledged": 30, "on-the-way": 60,
                                           "arrived": 300, "resolved": 900})
        followed = await check(b, 180, "follow-up", "not-visible")
        await visit(followed, 0, "not-visible")
        await check(b, 200, "planned", parent=followed.id)
        offline = await check(c, 0, "dispatched", "camera-offline")
        await alert(offline, "camera-offline", {"acknowledged": 120})
        failed = await check(c, 60, "dispatched", "technical-failure")
        await visit(failed, 0, "technical-failure", end="technical-failure")
        await alert(failed, "technical-failure", {})
        ids.update(a=a, b=b, c=c, helped=helped.id, followed=followed.id)
    return ids


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(database: tuple[str, Path]) -> AsyncIterator[InProcess]:
    async with running(*database) as service:
        service.world["report"] = await build(service)
        service.world["review"] = await build_review(service)
        yield service


async def test_the_night_per_unit(svc: InProcess) -> None:
    chef = await svc.login("chef")
    reply = await chef.get(f"/api/reports/night?night={NIGHT}&unit={NORR}")
    assert reply.status_code == 200, reply.text
    report = reply.json()
    # on time: Anna's first, Bo's needs-help and not-visible; late: Anna's second
    assert report["counts"] == {"on-time": 3, "late": 1, "missed": 1, "skipped": 1,
                                "no-lookin": 0, "pending": 1}
    checks = report["checks"]
    assert [c["due_local"] for c in checks] == ["22:00", "22:00", "00:00", "01:00", "01:20",
                                                 "02:00", "04:00"]
    assert {c["recipient"] for c in checks} == {"Anna Norr", "Bo Norr"}
    helped = next(c for c in checks if c["id"] == svc.world["report"]["helped"])
    assert helped["category"] == "on-time" and helped["recorded_by"] == "rapport-natt"
    assert [(v["viewer"], v["outcome"]) for v in helped["lookins"]] == [
        ("Rut Nattsson", "needs-help")]
    d = helped["dispatch"]
    raised = datetime.fromisoformat(d["raised_at"])
    assert [datetime.fromisoformat(d[k]) - raised for k in (
        "acknowledged_at", "on_the_way_at", "arrived_at", "resolved_at")] == [
        timedelta(seconds=s) for s in (30, 60, 300, 900)]
    follow_up = next(c for c in checks if c["follow_up_of"] is not None)
    assert follow_up["follow_up_of"] == svc.world["report"]["followed"]
    assert follow_up["category"] == "pending"
    every = (await chef.get(f"/api/reports/night?night={NIGHT}")).json()
    assert every["counts"]["no-lookin"] == 1 and len(every["checks"]) == 9
    assert {NORR, SODER} <= set(every["units"])
    # the morning handover: night staff read it too; the patrol does not
    staff = await svc.login("natt")
    assert (await staff.get(f"/api/reports/night?night={NIGHT}")).status_code == 200
    assert (await staff.get("/api/reports/period")).status_code == 403
    patrol = await svc.login("patrull")
    assert (await patrol.get("/api/reports/night")).status_code == 403
    assert (await chef.get("/api/reports/night?night=1900-01-01")).status_code == 422
    assert (await chef.get("/api/reports/night?unit=%00")).status_code == 422


async def test_the_night_as_csv_and_as_a_page(svc: InProcess) -> None:
    chef = await svc.login("chef")
    reply = await chef.get(f"/api/reports/night.csv?night={NIGHT}&unit={SODER}")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    assert [(r["recipient"], r["category"], r["alert_reason"]) for r in rows] == [
        ("Cilla Söder", "no-lookin", "camera-offline"),
        ("Cilla Söder", "on-time", "technical-failure")]
    assert rows[0]["acknowledged_at"] and not rows[0]["arrived_at"]
    page = await chef.get(f"/reports/night?night={NIGHT}&unit={NORR}")
    assert page.status_code == 200
    assert "Nattrapport 2025-01-10" in page.text and "utryckning utan tittning" in page.text
    # the patrol's times in local time: raised 00:01, acknowledged 30 s on, arrived 5 min on
    assert "Rut Nattsson" in page.text and "kvitterat 00:01" in page.text
    assert "framme 00:06" in page.text and "åtgärdat 00:16" in page.text
    assert "manage.report" not in main(page.text), "every key is translated"


def main(html: str) -> str:
    """The page's own content (the translations handed to its scripts come after it)."""
    return html.split("<main>", 1)[1].split("</main>", 1)[0]


def table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_the_month(svc: InProcess) -> None:
    chef = await svc.login("chef")
    reply = await chef.get("/api/reports/period?period=month&start=2025-01-20")
    assert reply.status_code == 200, reply.text
    report: dict[str, Any] = reply.json()
    assert (report["first_night"], report["last_night"]) == ("2025-01-01", "2025-01-31")
    units = {u["unit"]: u for u in report["by_unit"]}
    assert units[NORR] | {"unit": ""} == {"unit": "", "planned": 7, "on_time": 3, "late": 1,
                                          "missed": 1, "skipped": 1, "no_lookin": 0,
                                          "pending": 1}
    assert units[SODER]["planned"] == 2 and units[SODER]["no_lookin"] == 1
    assert units["all"]["planned"] == 9 and report["by_unit"][-1]["unit"] == "all"
    assert {(s["unit"], s["reason"], s["count"]) for s in report["skipped"]} == {
        (NORR, "paused", 1)}
    assert {(s["unit"], s["reason"], s["count"]) for s in report["dispatches"]} == {
        (NORR, "missed", 1), (NORR, "needs-help", 1), (SODER, "camera-offline", 1),
        (SODER, "technical-failure", 1)}
    response = {r["unit"]: r for r in report["response"]}
    # acknowledgements after 30, 60, 120 s; arrivals after 300, 600 s (nearest rank)
    assert response[None] == {"unit": None, "alerts": 4, "acknowledged": 3,
                              "ack_median_s": 60.0, "ack_p90_s": 120.0, "arrived": 2,
                              "arrival_median_s": 300.0, "arrival_p90_s": 600.0}
    assert (response[NORR]["ack_median_s"], response[NORR]["ack_p90_s"]) == (30.0, 60.0)
    assert response[SODER]["arrived"] == 0 and response[SODER]["arrival_median_s"] is None
    assert [(c["camera"], c["technical_failure"]) for c in report["cameras"]] == [
        ("cam-rep-c", 1)]
    assert len(report["nights"]) == 31
    tenth = next(n for n in report["nights"] if n["night"] == str(NIGHT))
    assert (tenth["on_time"], tenth["late"], tenth["missed"]) == (4, 1, 1)
    week = (await chef.get(f"/api/reports/period?period=week&start={NIGHT}&unit={SODER}")
            ).json()
    assert (week["first_night"], week["last_night"]) == ("2025-01-10", "2025-01-16")
    assert [u["unit"] for u in week["by_unit"]] == [SODER, "all"]


async def test_every_table_as_csv_and_the_page(svc: InProcess) -> None:
    chef = await svc.login("chef")
    query = "period=month&start=2025-01-01"
    for name in reports.PERIOD_TABLES:
        reply = await chef.get(f"/api/reports/period.csv?table={name}&{query}")
        assert reply.status_code == 200, (name, reply.text)
        rows = table(reply.text)
        assert list(rows[0]) == reports.PERIOD_COLUMNS[name], name
    by_unit = table((await chef.get(f"/api/reports/period.csv?table=by_unit&{query}")).text)
    assert by_unit[-1]["unit"] == "all" and by_unit[-1]["planned"] == "9"
    assert (await chef.get(f"/api/reports/period.csv?table=nope&{query}")).status_code == 422
    page = await chef.get(f"/reports/period?{query}")
    assert page.status_code == 200
    assert "Rapport 2025-01-01 – 2025-01-31" in page.text
    assert "/static/vendor/uplot/uPlot.iife.min.js" in page.text
    assert 'id="chart-data"' in page.text and "manage.report" not in main(page.text)
    vendored = await chef.get("/static/vendor/uplot/LICENSE")
    assert vendored.status_code == 200 and "MIT" in vendored.text


# --- log review ---------------------------------------------------------------------------

REVIEW_NIGHT = date(2025, 2, 3)
REVIEW_DUE = datetime(2025, 2, 3, 22, 0, tzinfo=UTC)


async def build_review(svc: InProcess) -> dict[str, int]:
    async with svc.rt.write() as db:
        night_staff = User(username="granskad-natt", display_name="Greta Granskad",
                           password_hash="x", role="staff")
        boss = User(username="granskad-chef", display_name="Conny Chef", password_hash="x",
                    role="manager")
        calm, busy = (Recipient(name="Lugna Lisa", address="Väg 1", unit="Granskning"),
                      Recipient(name="Ofta Olle", address="Väg 2", unit="Granskning"))
        db.add_all([night_staff, boss, calm, busy])
        await db.flush()
        db.add_all([Camera(id="cam-granska-1", recipient_id=calm.id),
                    Camera(id="cam-granska-2", recipient_id=busy.id)])
        await db.flush()
        n = 0

        def review_check(rid: int) -> Check:
            nonlocal n
            n += 1
            return Check(slot=f"granska:{rid}:{n}", recipient_id=rid, night=REVIEW_NIGHT,
                         due_at=REVIEW_DUE, opens_at=REVIEW_DUE - timedelta(minutes=10),
                         closes_at=REVIEW_DUE + timedelta(minutes=20), state="done",
                         max_lookin_seconds=30)

        # Lisa has two checks, so her three look-ins are not "many" (> 2 x 2); Olle has one
        c1, c2 = review_check(calm.id), review_check(busy.id)
        db.add_all([c1, c2, review_check(calm.id)])
        await db.flush()

        def visit(chk: Check, camera: str, viewer: User, minutes: float, seconds: float,
                  end: str = "ended") -> Visit:
            nonlocal n
            n += 1
            at = REVIEW_DUE + timedelta(minutes=minutes)
            return Visit(id=f"g{n}", check_id=chk.id, camera_id=camera,
                         recipient_id=chk.recipient_id, viewer_id=viewer.id, nonce=f"g{n}",
                         requested_at=at, expires_at=at + timedelta(seconds=30),
                         ended_at=at + timedelta(seconds=seconds), seconds=seconds,
                         end_reason=end, outcome="calm" if end == "ended" else None)

        # Greta is on the night's roster for the unit from before the checks; the boss is not
        db.add(NightShift(night=REVIEW_NIGHT, unit="Granskning", user_id=night_staff.id,
                          joined_at=REVIEW_DUE - timedelta(hours=2), joined_by="granskad-natt"))
        db.add_all([
            visit(c1, "cam-granska-1", night_staff, 1, 20),          # nothing unusual
            visit(c1, "cam-granska-1", night_staff, 2, 60),          # long
            visit(c1, "cam-granska-1", night_staff, 45, 10),         # outside the window
            *[visit(c2, "cam-granska-2", night_staff, 3 + k, 0, end="refused")
              for k in range(3)],                                    # repeated refusals
            *[visit(c2, "cam-granska-2", boss, 7 + k, 10) for k in range(3)],  # many, boss
        ])
    return {"calm": calm.id, "busy": busy.id}


def flags_of(entries: list[dict[str, Any]]) -> list[tuple[str, float | None, list[str]]]:
    return sorted((e["kind"], e["seconds"], e["flags"]) for e in entries)


async def test_the_flags_and_their_rules(svc: InProcess) -> None:
    chef = await svc.login("chef")
    ids = svc.world["review"]
    reply = await chef.get(f"/api/audit/log?recipient={ids['calm']}")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert flags_of(body["entries"]) == [("lookin", 10.0, ["outside-window"]),
                                         ("lookin", 20.0, []), ("lookin", 60.0, ["long"])]
    olle = (await chef.get(f"/api/audit/log?recipient={ids['busy']}")).json()["entries"]
    assert sorted(e["flags"] for e in olle if e["kind"] == "refusal") == [["refusals"]] * 3
    looked = [e for e in olle if e["kind"] == "lookin"]
    assert len(looked) == 3 and all(e["flags"] == ["many", "not-on-roster", "not-staff"]
                                    for e in looked)
    # every rule is stated, with its numbers, in the reader's language
    assert set(body["rules"]) == set(log_review.FLAGS)
    assert "3" in body["rules"]["refusals"] and "5" in body["rules"]["long"]
    assert body["chain"]["state"] in ("running", "intact", "unknown")


async def test_filters_and_changes(svc: InProcess) -> None:
    chef = await svc.login("chef")
    ids = svc.world["review"]
    by_boss = (await chef.get("/api/audit/log?person=granskad-chef")).json()["entries"]
    assert len(by_boss) == 3 and {e["person_name"] for e in by_boss} == {"Conny Chef"}
    refusals = (await chef.get("/api/audit/log?kind=refusal")).json()["entries"]
    assert len(refusals) == 3 and {e["kind"] for e in refusals} == {"refusal"}
    window = "since=2025-02-03T22:30:00Z&until=2025-02-03T23:00:00Z"
    late = (await chef.get(f"/api/audit/log?{window}")).json()["entries"]
    assert [e["seconds"] for e in late] == [10.0]
    # a change of details and a consent, as the manager made them, are in the list too
    assert (await chef.send("PATCH", f"/api/recipients/{ids['calm']}",
                            {"care_notes": "Sover gott"})).status_code == 200
    listed = await chef.send("PUT", f"/api/recipients/{ids['calm']}/cohabitants",
                             {"names": ["Kalle"]})
    assert listed.status_code == 200, listed.text
    changes = (await chef.get(f"/api/audit/log?recipient={ids['calm']}&kind=recipient")
               ).json()["entries"]
    assert [e["what"] for e in changes] == ["recipient.changed"]
    assert changes[0]["recipient"] == "Lugna Lisa" and changes[0]["person"] == "chef"
    consent = (await chef.get(f"/api/audit/log?recipient={ids['calm']}&kind=consent")
               ).json()["entries"]
    assert [e["what"] for e in consent] == ["consent.cohabitants"]
    assert (await chef.get("/api/audit/log?kind=nope")).status_code == 422
    staff = await svc.login("natt")
    assert (await staff.get("/api/audit/log")).status_code == 403


async def test_the_chain_is_verified_in_the_background(svc: InProcess) -> None:
    chef = await svc.login("chef")
    for _ in range(100):
        chain = (await chef.get("/api/audit/log?kind=plan")).json()["chain"]
        if chain["state"] not in ("running", "unknown"):
            break
        await asyncio.sleep(0.05)
    assert chain["state"] == "intact", chain
    assert chain["entries"] > 0 and chain["problems"] == 0
    page = await chef.get("/audit/log")
    assert page.status_code == 200 and "Loggkedjan är hel" in page.text
    assert "upprepade nekanden" in page.text and "Kameran nekade 3 eller fler" in page.text


async def test_the_recipients_access_report(svc: InProcess) -> None:
    chef = await svc.login("chef")
    await chef.get("/lang/en")  # the manager reads the service in English ...
    rid = svc.world["review"]["busy"]
    page = await chef.get(f"/audit/recipients/{rid}/access-report"
                          "?since=2025-02-01&until=2025-02-28")
    assert page.status_code == 200
    text = page.text.split("<main>", 1)[1].split("</main>", 1)[0]
    assert "Vem har tittat in hos Ofta Olle" in text  # ... the report is Swedish
    assert "från och med 2025-02-01 till och med 2025-02-28" in text
    assert text.count("Conny Chef") == 3, "each look-in once"
    assert "Greta Granskad" not in text, "refused attempts saw nothing"
    empty = await chef.get(f"/audit/recipients/{rid}/access-report"
                           "?since=2025-03-01&until=2025-03-31")
    assert "Ingen har tittat in under perioden" in empty.text
    assert (await chef.get("/audit/recipients/99999/access-report")).status_code == 404
