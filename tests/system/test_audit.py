"""Who looked, when, how long, with what outcome: recorded, reviewable, tamper-evident."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import subprocess

from tests import viewer
from tests.conftest import Service
from tests.harness import BIN
from tests.people import Person


def cli(svc: Service, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "supervision"), "audit", *args], env=svc.env,
                          capture_output=True, text=True, timeout=60)


def test_lookins_are_listed_and_the_chain_detects_tampering(service: Service) -> None:
    staff = Person(service.url, "natt")
    check = staff.wait_open_checks(1)[0]

    async def short_lookin() -> str:
        seen = await viewer.look(staff, check["id"])  # reports the first frame, as a page does
        await asyncio.sleep(1.5)
        assert seen.frames
        await asyncio.to_thread(staff.post, f"/api/lookins/{seen.session}/end")
        await seen.close()
        return seen.session

    session = asyncio.run(short_lookin())
    assert staff.post(f"/api/checks/{check['id']}/outcome",
                      {"outcome": "calm", "session": session}).status_code == 200

    manager = Person(service.url, "chef")
    recipient_id = next(c["recipient_id"] for c in service.world["cameras"]
                        if c["recipient"] == check["recipient"])
    records = []
    for _ in range(50):  # the agent's end report arrives shortly after the end request
        records = manager.get(f"/api/audit/recipients/{recipient_id}/lookins").json()
        if records and records[0]["ended_at"]:
            break
        asyncio.run(asyncio.sleep(0.1))
    assert len(records) == 1
    record = records[0]
    assert record["session"] == session and record["viewer"] == "natt"
    assert record["outcome"] == "calm" and record["end_reason"] == "ended"
    assert 1.0 <= record["seconds"] < 5
    page = manager.get(f"/audit/recipients/{recipient_id}")
    assert page.status_code == 200 and "Nora Natt" in page.text and "Lugnt" in page.text
    assert staff.get(f"/api/audit/recipients/{recipient_id}/lookins").status_code == 403
    report = Person(service.url, "admin").get("/api/audit/verify").json()
    assert report["intact"] and report["entries"] > 5

    service.stop()
    verified = cli(service, "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout
    exported = cli(service, "export")
    rows = list(csv.reader(io.StringIO(exported.stdout)))
    assert rows[0][:5] == ["id", "at", "actor", "kind", "subject"]
    assert any(r[3] == "lookin.ended" and r[4] == f"visit:{session}" for r in rows[1:])

    db = sqlite3.connect(service.root / "test.db")
    (ended_id,) = db.execute("SELECT id FROM audit_events WHERE kind = 'lookin.ended'").fetchone()
    db.execute("UPDATE audit_events SET actor = 'someone-else' WHERE id = ?", (ended_id,))
    db.commit()
    tampered = cli(service, "verify")
    assert tampered.returncode == 1
    assert f"entry {ended_id}: entry content changed" in tampered.stdout
    db.execute("UPDATE audit_events SET actor = 'natt' WHERE id = ?", (ended_id,))
    db.execute("DELETE FROM audit_events WHERE id = ?", (ended_id - 1,))
    db.commit()
    db.close()
    removed = cli(service, "verify")
    assert removed.returncode == 1
    assert f"entry {ended_id}: chain broken" in removed.stdout
