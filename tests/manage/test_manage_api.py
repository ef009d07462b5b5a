"""The care manager's API against a real service with real agents: who may, 422 that saves
nothing, a saved plan that re-plans tonight and reaches the camera, versions from a chosen
night, DST nights in the preview, and the schema that documents it all."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import schedules
from tests.harness import Service, eventually, start_world
from tests.people import Person

STOCKHOLM = ZoneInfo("Europe/Stockholm")


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for the module; each test works on a recipient of its own."""
    service = start_world(Path(tmp_path_factory.mktemp("manage")))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def chef(svc: Service) -> Person:
    return Person(svc.url, "chef")


def put_plan(person: Person, rid: int, plan: Any, base: int | None = None) -> Any:
    query = "" if base is None else f"?base_version={base}"
    return person.http.put(f"/api/recipients/{rid}/plan{query}", json=plan,
                           headers={"X-CSRF-Token": person.csrf})


def local_hhmm(instant: datetime) -> str:
    return instant.astimezone(STOCKHOLM).strftime("%H:%M")


def wait(fetch: Any, timeout: float = 15) -> Any:
    return eventually(fetch, timeout)


def audit_rows(svc: Service, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    with sqlite3.connect(svc.root / "test.db") as db:
        rows = db.execute("SELECT actor, subject, data FROM audit_events WHERE kind = ?"
                          " ORDER BY id", (kind,)).fetchall()
    return [(actor, subject, json.loads(data)) for actor, subject, data in rows]


def agent_plan(svc: Service, camera_id: str) -> dict[str, Any]:
    path = svc.agent_dir(camera_id) / "plan.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_only_managers_and_admins(svc: Service, chef: Person) -> None:
    plan = chef.get("/api/recipients/1").json()["plan"]
    for username in ("natt", "patrull"):
        other = Person(svc.url, username)
        assert other.get("/api/recipients").status_code == 403
        assert other.get("/api/recipients/1/preview").status_code == 403
        assert put_plan(other, 1, plan).status_code == 403
        assert other.get("/manage/recipients/1").status_code == 403
    admin = Person(svc.url, "admin")
    assert admin.get("/api/recipients").status_code == 200
    assert admin.get("/manage/recipients/1").status_code == 200
    assert chef.http.put("/api/recipients/1/plan", json=plan).status_code == 403, "CSRF"
    assert chef.get("/manage/recipients/999").status_code == 404
    assert chef.get("/api/recipients/999").json()["detail"]["code"] == "manage.error.no_recipient"
    page = chef.get("/manage")
    assert page.status_code == 200 and "Astrid Lindqvist" in page.text
    assert 'href="/manage/recipients/1"' in page.text


def test_an_invalid_plan_is_refused_field_by_field_and_nothing_is_saved(
        svc: Service, chef: Person) -> None:
    rid = 2
    staff = Person(svc.url, "natt")
    before = chef.get(f"/api/recipients/{rid}").json()
    history = chef.get(f"/api/recipients/{rid}/plan/history").json()
    checks = sorted((c["id"], c["due_at"]) for c in staff.rounds() if c["recipient"] == "Bertil Ek")
    changed = len(audit_rows(svc, "plan.changed"))

    plan = before["plan"]
    first = datetime.fromisoformat(min(d for _, d in checks))
    bad = dict(plan, check_times=[*plan["check_times"],
                                  {"at": local_hhmm(first + timedelta(minutes=10))}],
               pauses=[{"start": "2027-01-10", "end": "2027-01-01", "reason": "sjukhus"}],
               max_lookin_seconds=5, effective_from="2020-01-01")
    reply = put_plan(chef, rid, bad)
    assert reply.status_code == 422, reply.text
    problems = {p["field"]: p for p in reply.json()["detail"]}
    added = f"check_times.{len(plan['check_times'])}.at"
    assert "overlaps" in problems[added]["msg"]
    assert problems[added]["loc"] == ["body", "check_times", len(plan["check_times"]), "at"]
    assert problems[added]["type"] == "plan"
    assert {"pauses.0.end", "max_lookin_seconds", "effective_from"} <= problems.keys()
    assert "10 and 120" in problems["max_lookin_seconds"]["msg"]
    assert problems[added]["code"] == "overlap"
    assert problems["max_lookin_seconds"]["code"] == "range"
    assert problems["max_lookin_seconds"]["params"] == {
        "low": 10, "high": 120, "unit": "seconds", "value": 5}
    assert problems["effective_from"]["code"] == "effective_from.past"

    draft = chef.post(f"/api/recipients/{rid}/preview", bad)
    assert draft.status_code == 422 and draft.json()["detail"] == reply.json()["detail"]
    assert chef.http.put(f"/api/recipients/{rid}/plan", content=b"{nope",
                         headers={"X-CSRF-Token": chef.csrf}).status_code == 400

    after = chef.get(f"/api/recipients/{rid}").json()
    assert after["plan_version"] == before["plan_version"] and after["plan"] == plan
    assert chef.get(f"/api/recipients/{rid}/plan/history").json() == history
    assert len(audit_rows(svc, "plan.changed")) == changed
    still = sorted((c["id"], c["due_at"]) for c in staff.rounds() if c["recipient"] == "Bertil Ek")
    assert still == checks


def test_saving_replans_tonight_pushes_to_the_camera_and_is_audited(
        svc: Service, chef: Person) -> None:
    rid, camera = 1, "cam-0001"
    staff = Person(svc.url, "natt")
    wait(lambda: chef.get(f"/api/recipients/{rid}").json()["camera"]["online"])
    wait(lambda: agent_plan(svc, camera).get("version") == 1)
    mine = sorted((c for c in staff.rounds() if c["recipient"] == "Astrid Lindqvist"),
                  key=lambda c: c["due_at"])
    soon, later = (datetime.fromisoformat(c["due_at"]) for c in (mine[0], mine[-1]))
    new_due = soon + timedelta(minutes=60)
    before = chef.get(f"/api/recipients/{rid}").json()
    plan = dict(before["plan"], check_times=[{"at": local_hhmm(soon)},
                                             {"at": local_hhmm(new_due)}])

    reply = put_plan(chef, rid, plan, base=before["plan_version"])
    assert reply.status_code == 200, reply.text
    saved = reply.json()
    assert saved["changed"] and saved["version"] == before["plan_version"] + 1
    assert saved["pushed_to"] == [camera]
    assert saved["checks"]["created"] >= 1 and saved["checks"]["removed"] >= 1

    board = [c for c in staff.rounds() if c["recipient"] == "Astrid Lindqvist"]
    dues = {datetime.fromisoformat(c["due_at"]) for c in board}
    assert new_due in dues, "the new check is on the rounds board"
    assert later not in dues, "the removed one is gone"
    assert soon in dues, "the check that had opened is untouched"

    held = wait(lambda: agent_plan(svc, camera).get("version") == saved["version"]
                and agent_plan(svc, camera))
    assert {c["at"] for c in json.loads(held["plan_json"])["check_times"]} == {
        local_hhmm(soon), local_hhmm(new_due)}

    actor, subject, data = audit_rows(svc, "plan.changed")[-1]
    assert (actor, subject, data["version"]) == ("chef", f"recipient:{rid}", saved["version"])
    assert [c["field"] for c in data["changes"]] == ["check_times"]
    history = chef.get(f"/api/recipients/{rid}/plan/history").json()
    assert [h["version"] for h in history] == [saved["version"], before["plan_version"]]
    assert history[0]["created_by"] == "chef"
    assert history[0]["changes"][0]["field"] == "check_times"

    ids = sorted(c["id"] for c in staff.rounds() if c["recipient"] == "Astrid Lindqvist")
    again = put_plan(chef, rid, plan).json()
    assert (again["changed"], again["version"]) == (False, saved["version"]), "idempotent"
    assert sorted(c["id"] for c in staff.rounds() if c["recipient"] == "Astrid Lindqvist") == ids
    stale = put_plan(chef, rid, dict(plan, max_lookin_seconds=20), base=before["plan_version"])
    assert stale.status_code == 409 and stale.json()["detail"]["code"] == "manage.error.stale"


def test_a_change_from_a_later_night_keeps_tonight(svc: Service, chef: Person) -> None:
    rid, camera = 3, "cam-0003"
    staff = Person(svc.url, "natt")
    before = chef.get(f"/api/recipients/{rid}").json()
    tonight = date.fromisoformat(before["tonight"])
    board = sorted(c["due_at"] for c in staff.rounds() if c["recipient"] == "Cecilia Holm")
    later = str(tonight + timedelta(days=2))
    boundary = int(before["plan"]["night_boundary"][:2])
    at = f"{(boundary + 8) % 24:02d}:00"  # mid-night, whatever time the test runs
    plan = dict(before["plan"], check_times=[{"at": at, "weekdays": [4, 5]}],
                effective_from=later)
    saved = put_plan(chef, rid, plan).json()
    assert saved["changed"] and saved["effective_from"] == later
    assert sorted(c["due_at"] for c in staff.rounds() if c["recipient"] == "Cecilia Holm") == board
    now = chef.get(f"/api/recipients/{rid}").json()
    assert (now["plan_version"], now["in_force_version"]) == (saved["version"],
                                                              before["plan_version"])
    wait(lambda: agent_plan(svc, camera).get("version") == before["plan_version"])

    nights = chef.get(f"/api/recipients/{rid}/preview?nights=7").json()["nights"]
    assert [n["version"] for n in nights[:2]] == [before["plan_version"]] * 2
    assert {n["version"] for n in nights[2:]} == {saved["version"]}
    assert [n["weekday"] for n in nights[2:] if n["windows"]] == [4, 5]
    assert all(w["at"] == at for n in nights[2:] for w in n["windows"])


def test_preview_makes_dst_nights_and_skipped_nights_visible(chef: Person) -> None:
    made = chef.post("/api/recipients", {"name": "Doris Dahl", "address": "Gränden 1",
                                         "access_info": "Kod 1111"})
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    assert made.json()["plan"] is None and made.json()["consent"]["state"] == "none"
    assert any(r["id"] == rid for r in chef.get("/api/recipients").json())
    empty = chef.get(f"/api/recipients/{rid}/preview?nights=2").json()["nights"]
    assert [n["version"] for n in empty] == [None, None] and not empty[0]["windows"]

    plan = {"check_times": [{"at": "22:00"}, {"at": "02:30"}],
            "skip_nights": [{"night": "2027-03-28", "reason": "hos dottern"}],
            "pauses": [{"start": "2027-10-25", "end": "2027-10-26", "reason": "sjukhus"}]}
    assert put_plan(chef, rid, plan).status_code == 200
    assert chef.post(f"/api/recipients/{rid}/consent", {
        "party": "person", "name": "Doris Dahl", "method": "written", "document_ref": "D-1",
        "given_on": "2026-01-01", "valid_until": "2027-10-31"}).status_code == 201
    spring = chef.get(f"/api/recipients/{rid}/preview?start=2027-03-27&nights=2").json()
    assert spring["next_dst_night"] == "2027-03-27"
    short, skipped = spring["nights"]
    assert short["hours"] == 23 and short["dst_change"]["minutes"] == 60
    moved = {w["at"]: w for w in short["windows"]}["02:30"]
    assert (moved["dst"], moved["due_local"], moved["due"]) == ("gap", "03:00",
                                                                 "2027-03-28T01:00:00Z")
    assert skipped["skip"] == {"code": "skip-night", "text": "hos dottern"}
    assert all(w["skip"]["code"] == "skip-night" for w in skipped["windows"])

    autumn = chef.get(f"/api/recipients/{rid}/preview?start=2027-10-26&nights=7").json()
    by_night = {n["night"]: n for n in autumn["nights"]}
    assert by_night["2027-10-26"]["skip"]["code"] == "paused"
    long = by_night["2027-10-30"]
    assert long["hours"] == 25 and long["dst_change"]["minutes"] == -60
    twice = {w["at"]: w for w in long["windows"]}["02:30"]
    assert (twice["dst"], twice["due"]) == ("repeated", "2027-10-31T00:30:00Z")
    assert by_night["2027-11-01"]["skip"]["code"] == "no-consent"
    assert chef.get(f"/api/recipients/{rid}/preview?start=2099-01-01").status_code == 422


def test_the_schema_documents_the_plan_and_its_422(chef: Person) -> None:
    schema = chef.get("/openapi.json").json()
    put = schema["paths"]["/api/recipients/{rid}/plan"]["put"]
    body = put["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PlanDocument"}
    assert put["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PlanProblems"}
    document = schema["components"]["schemas"]["PlanDocument"]
    codec_keys = schedules.plan_to_dict(schedules.Plan(check_times=())).keys()
    assert set(document["properties"]) == set(codec_keys)
    assert document["required"] == ["check_times"]
    for path in ("/api/recipients", "/api/recipients/{rid}", "/api/recipients/{rid}/preview",
                 "/api/recipients/{rid}/plan/history"):
        assert path in schema["paths"]
