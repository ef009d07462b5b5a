"""The audit log cannot be quietly shortened or rewritten, and its export is safe to open.

Real `supervision` processes over a real database file (SQLite) or database (PostgreSQL):
the service writes signed checkpoints of the chain's head to a witness file outside the
database; `supervision audit verify` then notices what the hash chain alone cannot: the
newest entries deleted, or an entry changed and every later hash recomputed with the
public algorithm (anyone with database access can do both).
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from camera_agent.identity import Identity
from supervision.audit import entry_hash
from supervision.db import Database
from supervision.models import AuditEvent
from tests.conftest import Service, make_service
from tests.harness import BIN, eventually
from tests.people import Person


def supervision(svc: Service, *args: str, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "supervision"), *args], env=env or svc.env,
                          capture_output=True, text=True, timeout=120)


def witness(svc: Service) -> Path:
    return svc.root / "data" / "audit-checkpoints.jsonl"


def checkpoints(svc: Service) -> list[dict[str, Any]]:
    return [json.loads(line) for line in witness(svc).read_text().splitlines() if line]


def on_db(url: str, work: Any) -> Any:
    """Run ``work(session)`` in one transaction on the service's database, as an intruder
    with database access would (outside the service)."""
    async def run() -> Any:
        database = Database.open(url)
        try:
            async with database.write() as db:
                return await work(db)
        finally:
            await database.engine.dispose()
    return asyncio.run(run())


def newest_ids(svc: Service) -> list[int]:
    async def ids(db: Any) -> list[int]:
        return list((await db.execute(select(AuditEvent.id).order_by(AuditEvent.id))).scalars())
    result: list[int] = on_db(svc.env["SUPERVISION_DATABASE_URL"], ids)
    return result


@pytest.fixture
def anchored(database_url: str, tmp_path: Path) -> Iterator[Service]:
    """A service that ran, recorded a few entries (users added while it ran) and stopped;
    its stop wrote a checkpoint of the head."""
    svc = make_service(tmp_path / "svc", database_url)
    svc.start()
    try:
        admin = Person(svc.url, "admin")  # through the running service: no CLI start-ups
        for name in ("ulla", "ulf", "una"):
            added = admin.post("/api/users", {"username": name, "display_name": name.title(),
                                              "role": "staff"})
            assert added.status_code == 201, added.text
    finally:
        svc.stop()
    yield svc


def test_a_clean_chain_is_intact_with_its_checkpoints(anchored: Service) -> None:
    lines = checkpoints(anchored)
    assert [c["reason"] for c in lines] == ["start", "stop"]
    assert lines[-1]["entry"] == newest_ids(anchored)[-1]
    verified = supervision(anchored, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit chain intact" in verified.stdout
    assert "checkpoints verified: 2" in verified.stdout


def test_deleting_the_newest_entries_is_reported(anchored: Service) -> None:
    ids = newest_ids(anchored)
    kept = ids[-3]

    async def cut(db: Any) -> None:
        await db.execute(delete(AuditEvent).where(AuditEvent.id > kept))
    on_db(anchored.env["SUPERVISION_DATABASE_URL"], cut)

    verified = supervision(anchored, "audit", "verify")
    assert verified.returncode == 1, verified.stdout
    stop = checkpoints(anchored)[-1]
    assert f"entries after id {kept} are missing (checkpoint at {stop['at']}" in verified.stdout
    assert "chain broken" not in verified.stdout, "the chain alone cannot see this"

    # the admin API says the same, and keeps its old fields
    anchored.start()
    try:
        report = Person(anchored.url, "admin").get("/api/audit/verify").json()
    finally:
        anchored.stop()
    assert report["intact"] is False and report["problems"] == []
    assert len(ids) - 2 <= report["entries"] <= len(newest_ids(anchored))  # + admin's login
    # the admin's login was audited after the cut: on SQLite it took a deleted entry's id
    # (then entries after it are missing), on PostgreSQL the next id (then the checkpointed
    # entry is missing in the middle); either way the checkpointed head is named
    missing = [p for p in report["checkpoints"]["problems"]
               if p["code"] in ("missing_after", "entry_missing")]
    assert missing, report["checkpoints"]
    assert f"post {stop['entry']} " in missing[0]["what"], "in the admin's language (sv)"


def test_a_rewritten_chain_is_reported(anchored: Service) -> None:
    """Change one entry, then recompute its hash and every later one with the public
    algorithm: the chain is self-consistent again, the checkpoint is not fooled."""
    async def rewrite(db: Any) -> int:
        events = list((await db.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars())
        target = next(e for e in events if e.kind == "user.added" and e.subject == "user:ulla")
        target.data = {**target.data, "role": "admin"}
        prev = None
        for event in events:
            if event.id < target.id:
                prev = event.hash
                continue
            assert prev is not None
            event.prev_hash = prev
            event.hash = entry_hash(prev, event.at, event.actor, event.kind, event.subject,
                                    event.data)
            prev = event.hash
            await db.flush()  # one row at a time: prev_hash and hash are unique
        return int(target.id)
    first_user: int = on_db(anchored.env["SUPERVISION_DATABASE_URL"], rewrite)

    verified = supervision(anchored, "audit", "verify")
    assert verified.returncode == 1, verified.stdout
    covering = min(c["entry"] for c in checkpoints(anchored) if c["entry"] >= first_user)
    assert "chain broken" not in verified.stdout and "content changed" not in verified.stdout
    assert (f"entry {covering} differs from the checkpointed chain (hash recomputed)"
            in verified.stdout)


def test_a_tampered_or_truncated_checkpoint_line_is_reported(anchored: Service) -> None:
    path = witness(anchored)
    lines = path.read_text().splitlines()
    edited = json.loads(lines[0])
    edited["count"] += 1  # still JSON, still a checkpoint in form: only the signature tells
    lines[0] = json.dumps(edited)
    path.write_text("\n".join(lines) + "\n")
    verified = supervision(anchored, "audit", "verify")
    assert verified.returncode == 1
    assert re.search(r"line 1: checkpoint 1 has a bad signature", verified.stdout), \
        verified.stdout

    path.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # a cut-off last line
    verified = supervision(anchored, "audit", "verify")
    assert verified.returncode == 1
    assert "line 2: checkpoint 2 is truncated or not a checkpoint" in verified.stdout


def test_an_auditor_verifies_with_the_public_key_and_witness_they_kept(
        anchored: Service, tmp_path: Path) -> None:
    key = supervision(anchored, "audit", "public-key")
    assert key.returncode == 0
    public_key = key.stdout.strip()
    kept = tmp_path / "auditor" / "witness.jsonl"
    kept.parent.mkdir()
    kept.write_bytes(witness(anchored).read_bytes())
    # the service's own key and witness are gone: the auditor's copies are enough
    (anchored.root / "data" / "server.key").rename(tmp_path / "auditor" / "moved.key")
    witness(anchored).unlink()
    verified = supervision(anchored, "audit", "verify", f"--public-key={public_key}",
                           "--witness", str(kept))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "checkpoints verified: 2" in verified.stdout

    other = Identity.generate().public_key_b64  # some other key
    wrong = supervision(anchored, "audit", "verify", f"--public-key={other}",
                        "--witness", str(kept))
    assert wrong.returncode == 1
    assert wrong.stdout.count("has a bad signature") == 2
    assert "no valid checkpoint" in wrong.stdout

    missing = supervision(anchored, "audit", "verify", f"--public-key={public_key}")
    assert missing.returncode == 1 and "is missing" in missing.stdout

    garbage = supervision(anchored, "audit", "verify", "--public-key=not-a-key")
    assert garbage.returncode == 2 and "public key" in garbage.stderr


def test_checkpoints_go_to_syslog_and_verify_from_a_syslog_copy(tmp_path: Path) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(20)
    try:
        port = receiver.getsockname()[1]
        svc = make_service(tmp_path / "svc", audit_syslog=f"127.0.0.1:{port}")
        made = supervision(svc, "audit", "checkpoint")
        assert made.returncode == 0, made.stderr
        datagram = receiver.recv(4096).decode()
    finally:
        receiver.close()
    assert "nattillsyn-audit-checkpoint:" in datagram
    copy = tmp_path / "auth.log"  # as a log host would keep it, among other lines
    copy.write_text("Jan  1 00:00:00 host sshd[1]: unrelated line\n"
                    f"Jan  1 00:00:01 host {datagram.split('>', 1)[1]}\n")
    verified = supervision(svc, "audit", "verify", "--syslog-copy", str(copy))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "checkpoints verified: 1" in verified.stdout


def test_the_scheduler_checkpoints_only_when_the_head_moved(tmp_path: Path) -> None:
    svc = make_service(tmp_path / "svc", audit_checkpoint_minutes="0.01")  # every 0.6 s
    svc.start()
    try:
        eventually(lambda: len(checkpoints(svc)) >= 1, what="the start checkpoint")
        added = supervision(svc, "user", "add", "ulla", "--role", "staff",
                            "--password", "nattugglan-ulla-7")
        assert added.returncode == 0, added.stderr
        head = newest_ids(svc)[-1]
        eventually(lambda: any(c["reason"] == "interval" and c["entry"] >= head
                               for c in checkpoints(svc)), timeout=20,
                   what="an interval checkpoint of the new head")
        asyncio.run(asyncio.sleep(2))  # several more runs of the job
    finally:
        svc.stop()
    lines = checkpoints(svc)
    for before, after in itertools.pairwise(lines):
        if after["reason"] == "interval":
            assert (after["entry"], after["hash"]) != (before["entry"], before["hash"]), \
                "an interval checkpoint only when the head moved"
    assert lines[-1]["reason"] == "stop"


DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
FORMULA = '=HYPERLINK("http://x","y")'


@pytest.mark.parametrize("value", [FORMULA, "+1", "-1+2", "@SUM(A1)", "\tx", "\rx", "'=x"])
def test_cells_that_a_spreadsheet_would_run_are_neutralised(value: str) -> None:
    from supervision.audit import spreadsheet_cell
    cell = spreadsheet_cell(value)
    assert cell == "'" + value, "a single quote makes it text (and is removed to read back)"
    assert spreadsheet_cell("Nora Natt") == "Nora Natt" and spreadsheet_cell("") == ""


def test_an_export_is_safe_to_open_in_a_spreadsheet(tmp_path: Path) -> None:
    svc = make_service(tmp_path / "svc")
    svc.start()
    try:
        chef = Person(svc.url, "chef")
        made = chef.post("/api/recipients", {"name": FORMULA, "address": "-1+1",
                                             "unit": "@unit"})
        assert made.status_code == 201, made.text
        # anyone can put a formula in the log's actor column: a failed login's user name
        with httpx.Client(base_url=svc.url) as browser:
            token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
            assert token
            failed = browser.post("/login", data={"username": FORMULA, "password": "x",
                                                  "csrf": token.group(1)})
            assert failed.status_code == 401
        exported = Person(svc.url, "admin").get("/api/audit/export")
        assert exported.status_code == 200
    finally:
        svc.stop()
    for text in (exported.text, supervision(svc, "audit", "export").stdout):
        rows = list(csv.reader(io.StringIO(text)))
        assert all(not cell.startswith(DANGEROUS) for row in rows for cell in row)
        failed_login = next(r for r in rows if r[3] == "login.failed")
        assert failed_login[2] == "'" + FORMULA
        created = next(r for r in rows if r[3] == "recipient.created")
        assert json.loads(created[5])["name"] == FORMULA  # the data cell is JSON, kept whole
