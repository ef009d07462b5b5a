"""Retention, on SQLite and PostgreSQL, in process: a purge writes its signed checkpoint
(table and witness) and audits itself before it deletes the old audit entries and the old
nights (checks, look-ins, alerts and their deliveries); the chain then verifies from the
checkpoint, against the witness's older checkpoints too, and the log review says so.
Entries deleted without a purge, a forged purge checkpoint (in the table or the witness)
and a changed kept entry are still found. A purge cut short after its checkpoint and half
its deletions verifies, and the next run finishes it."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from camera_agent.identity import Identity
from supervision import audit, audit_anchor, retention
from supervision.app import create_app
from supervision.audit_anchor import Report, Witness
from supervision.config import Settings
from supervision.db import Database, migrate
from supervision.demo import seed
from supervision.i18n import Translator
from supervision.models import (
    Alert,
    AuditEvent,
    AuditPurge,
    Camera,
    Check,
    NightShift,
    User,
    Visit,
    WebhookDelivery,
)
from supervision.tickets import ServerKey
from tests.harness import BIN
from tests.manage.inproc import BASE, InProcess, database

__all__ = ["database"]  # the module's databases, one of each kind
pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=800)  # older than the default 730 days
YOUNG = NOW - timedelta(days=10)
OLD_ENTRIES = 23  # with batches of 5: the deletions take several transactions


async def nights(db: AsyncSession) -> None:
    """An old night and a young one, each: a check with a follow-up, a look-in, an alert
    with a webhook delivery, and the viewer on that night's roster."""
    camera = (await db.execute(select(Camera).limit(1))).scalar_one()
    viewer = (await db.execute(select(User).where(User.username == "natt"))).scalar_one()
    for label, when in (("old", OLD), ("young", YOUNG)):
        parent = Check(slot=f"{label}:1", recipient_id=camera.recipient_id, night=when.date(),
                       due_at=when, opens_at=when, closes_at=when + timedelta(minutes=20),
                       state="follow-up")
        db.add(parent)
        await db.flush()
        child = Check(slot=f"{label}:1/fu1", recipient_id=camera.recipient_id,
                      night=when.date(), due_at=when + timedelta(minutes=10), opens_at=when,
                      closes_at=when + timedelta(minutes=30), state="dispatched",
                      parent_id=parent.id, follow_ups=1)
        db.add(child)
        await db.flush()
        db.add(Visit(id=f"{label}-visit", check_id=parent.id, camera_id=camera.id,
                     recipient_id=camera.recipient_id, viewer_id=viewer.id,
                     nonce=f"{label}-nonce", requested_at=when, expires_at=when,
                     seconds=12.0, outcome="not-visible"))
        alert = Alert(check_id=child.id, recipient_id=camera.recipient_id, priority=1,
                      reason="not-visible-after-follow-up", state="resolved",
                      created_at=when, updated_at=when)
        db.add(alert)
        await db.flush()
        db.add(WebhookDelivery(alert_id=alert.id, event="alert.raised", payload={},
                               created_at=when))
        db.add(NightShift(night=when.date(), unit="Demo", user_id=viewer.id, joined_at=when,
                          joined_by="natt"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(database: tuple[str, Path]) -> AsyncIterator[InProcess]:
    """The service over a log that began 800 days ago: old entries first, then the demo
    world (entries of today), an old and a young night."""
    url, root = database
    db_ = Database.open(url)
    try:
        await migrate(db_.engine)
        async with db_.write() as db:
            for i in range(OLD_ENTRIES):
                await audit.append(db, "old", "user.changed", f"user:old{i}", {"i": i},
                                   at=OLD + timedelta(minutes=i))
        async with db_.write() as db:
            world = await seed(db)
            await nights(db)
    finally:
        await db_.engine.dispose()
    app = create_app(Settings(database_url=url, data_dir=root, public_url=BASE))
    async with app.router.lifespan_context(app):  # its start writes a checkpoint
        yield InProcess(app, world)


def witness(svc: InProcess) -> list[Witness]:
    return [Witness(svc.rt.settings.audit_witness)]


async def verify(svc: InProcess, witnesses: list[Witness] | None = None) -> Report:
    async with svc.rt.read() as db:
        return await audit_anchor.check(db, witnesses or witness(svc),
                                        [svc.rt.key.public_key_b64])


class _Undo(Exception):
    pass


async def tampered(svc: InProcess, change: Callable[[AsyncSession], Awaitable[None]],
                   witnesses: list[Witness] | None = None) -> Report:
    """The verification of the log as ``change`` leaves it, then the change undone."""
    report: Report | None = None
    try:
        async with svc.rt.write() as db:
            await change(db)
            await db.flush()
            report = await audit_anchor.check(db, witnesses or witness(svc),
                                              [svc.rt.key.public_key_b64])
            raise _Undo
    except _Undo:
        pass
    assert report is not None
    return report


def codes(report: Report) -> set[str]:
    return {p.code for p in report.problems}


async def counted(svc: InProcess, model: Any, *where: Any) -> int:
    async with svc.rt.read() as db:
        return int((await db.execute(select(func.count()).select_from(model)
                                     .where(*where))).scalar_one())


async def test_a_purge_checkpoints_audits_and_deletes_and_the_chain_verifies(
        svc: InProcess) -> None:
    before = await verify(svc)
    assert before.intact, before.problems
    entries = await counted(svc, AuditEvent)

    done = await retention.run(svc.rt.database, svc.rt.settings, svc.rt.key, batch=5)

    began = done.began
    assert began is not None and began.purged == OLD_ENTRIES and began.finished_at is None
    assert done.deleted == {"audit_events": OLD_ENTRIES, "checks": 2, "visits": 1,
                            "alerts": 1, "webhook_deliveries": 1, "push_deliveries": 0,
                            "night_shifts": 1}
    # what is left: the young night whole, every entry of today, and the purge's own entry
    assert await counted(svc, AuditEvent, AuditEvent.at < NOW - timedelta(days=730)) == 0
    assert await counted(svc, AuditEvent) == entries - OLD_ENTRIES + 1
    assert await counted(svc, Check) == await counted(svc, Check, Check.night >= YOUNG.date())
    assert await counted(svc, Check, Check.slot.like("young:%")) == 2
    assert await counted(svc, Visit) == await counted(svc, Alert) == 1
    assert await counted(svc, NightShift) == 1  # the young night's roster
    async with svc.rt.read() as db:
        row = (await db.execute(select(AuditPurge))).scalar_one()
        said = (await db.execute(select(AuditEvent).where(
            AuditEvent.kind == "audit.purged"))).scalar_one()
    assert row.finished_at is not None
    assert said.data["entry"] == row.entry == OLD_ENTRIES and said.data["entries"] == OLD_ENTRIES
    assert (said.data["checks"], said.data["visits"], said.data["alerts"]) == (2, 1, 1)
    # the checkpoint is in the witness as it is in the table, signed in its own domain
    lines = svc.rt.settings.audit_witness.read_text().splitlines()
    assert row.line in lines and '"kind":"purge"' in row.line

    report = await verify(svc)
    assert report.intact, report.problems
    assert report.purge is not None and report.purge.entry == OLD_ENTRIES
    # the start checkpoint named entries now purged: accepted, it is covered by the purge;
    # a checkpoint after the purge counts from it
    await audit_anchor.write_checkpoint(svc.rt.database, svc.rt.settings, "manual")
    assert (await verify(svc)).intact
    # nothing more is old enough: the next run begins nothing
    again = await retention.run(svc.rt.database, svc.rt.settings, svc.rt.key, batch=5)
    assert again.began is None and again.deleted == {}


async def test_the_log_review_shows_the_chain_verified_after_a_purge(svc: InProcess) -> None:
    chef = await svc.login("chef")
    chain: dict[str, Any] = {}
    for _ in range(200):
        chain = (await chef.get("/api/audit/log?kind=plan")).json()["chain"]
        if chain["state"] not in ("running", "unknown"):
            break
        await asyncio.sleep(0.05)
    assert chain["state"] == "intact", chain
    assert chain["problems"] == 0 and chain["entries"] == await counted(svc, AuditEvent)
    page = await chef.get("/audit/log")
    assert page.status_code == 200 and "Loggkedjan är hel" in page.text


async def test_tampering_after_a_purge_is_still_found(svc: InProcess, tmp_path: Path) -> None:
    async with svc.rt.read() as db:
        ids = list((await db.execute(select(AuditEvent.id).order_by(AuditEvent.id))).scalars())
        purge = (await db.execute(select(AuditPurge))).scalar_one()
    first = ids[0]

    async def delete_oldest_kept(db: AsyncSession) -> None:
        await db.execute(delete(AuditEvent).where(AuditEvent.id == first))
    found = await tampered(svc, delete_oldest_kept)
    assert any(p.code == "chain_broken" and p.entry_id == ids[1] for p in found.chain), found

    async def change_a_kept_entry(db: AsyncSession) -> None:
        event = await db.get(AuditEvent, ids[2])
        assert event is not None
        event.data = {**event.data, "role": "admin"}
    found = await tampered(svc, change_a_kept_entry)
    assert [(p.code, p.entry_id) for p in found.chain] == [("content_changed", ids[2])]

    # a purge checkpoint not signed with the server key, covering entries then deleted
    other = ServerKey(Identity.create(tmp_path / "other.key"))
    async with svc.rt.read() as db:
        target = await db.get(AuditEvent, ids[3])
    assert target is not None
    forged = audit_anchor.PurgeCheckpoint(
        entry=ids[3], hash=target.hash, purged=4, prev=purge.entry, before=NOW.isoformat(),
        at=NOW.isoformat())

    async def forge(db: AsyncSession) -> None:
        db.add(AuditPurge(entry=forged.entry, hash=forged.hash, purged=4, before=NOW,
                          keep_night=NOW.date(), line=audit_anchor.signed_line(forged, other),
                          created_at=NOW, finished_at=NOW))
        await db.execute(delete(AuditEvent).where(AuditEvent.id <= ids[3]))
    found = await tampered(svc, forge)
    assert "purge_unsigned" in codes(found) and "chain_broken" in codes(found), found.problems
    assert found.purge is not None and found.purge.entry == purge.entry, "the real one"
    unsigned = next(p for p in found.anchor if p.code == "purge_unsigned")
    assert unsigned.text(Translator("sv")).startswith("rensningskontrollpunkten i rad")

    # the witness keeps the checkpoint if the table loses it ...
    async def drop_rows(db: AsyncSession) -> None:
        await db.execute(delete(AuditPurge))
    assert (await tampered(svc, drop_rows)).intact
    # ... but an auditor's copy without it sees entries gone without a purge
    copy = tmp_path / "copy.jsonl"
    kept = [ln for ln in svc.rt.settings.audit_witness.read_text().splitlines()
            if '"kind":"purge"' not in ln]
    copy.write_text("\n".join(kept) + "\n")
    found = await tampered(svc, drop_rows, [Witness(copy)])
    assert "chain_broken" in codes(found) and found.purge is None
    # and a purge line altered in the witness is a bad signature, never a start
    forged_line = purge.line.replace(f'"entry":{purge.entry}', f'"entry":{ids[3]}')
    copy.write_text("\n".join([*kept, forged_line]) + "\n")
    found = await tampered(svc, drop_rows, [Witness(copy)])
    assert {"bad_signature", "chain_broken"} <= codes(found) and found.purge is None


async def test_a_purge_cut_short_verifies_and_the_next_run_finishes_it(
        svc: InProcess) -> None:
    later = NOW + timedelta(days=1000)  # then everything there is now is old
    async with svc.rt.write() as db:
        row = await retention.begin(db, svc.rt.settings, svc.rt.key, later)
    assert row is not None and row.purged >= 4
    async with svc.rt.write() as db:  # one purge at a time: another run finishes this one
        assert await retention.begin(db, svc.rt.settings, svc.rt.key, later) is None
    # head checkpoints while it is under way count from it (``base``) and stay true
    await audit_anchor.write_checkpoint(svc.rt.database, svc.rt.settings, "interval")
    # the crash: after the checkpoint and half the deletions
    assert await retention.delete_entries(svc.rt.database, row.id, batch=row.purged // 2)
    assert await retention.delete_nights(svc.rt.database, later.date(), batch=1)
    await audit_anchor.write_checkpoint(svc.rt.database, svc.rt.settings, "interval")
    report = await verify(svc)
    assert report.intact, report.problems
    assert report.purge is not None and report.purge.entry == row.entry

    done = await retention.run(svc.rt.database, svc.rt.settings, svc.rt.key, now=later,
                               batch=5)
    assert done.began is None, "it finished the unfinished purge, and began none"
    assert await counted(svc, AuditEvent, AuditEvent.id <= row.entry) == 0
    assert await counted(svc, Check) == 0
    async with svc.rt.read() as db:
        rows = list((await db.execute(select(AuditPurge).order_by(AuditPurge.id))).scalars())
    assert [r.finished_at is not None for r in rows] == [True, True]
    report = await verify(svc)
    assert report.intact, report.problems
    assert report.entries == await counted(svc, AuditEvent) >= 1


async def supervision(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "supervision"), *args, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    return int(process.returncode or 0), out.decode()


async def test_the_command_line_purges_and_verifies(svc: InProcess) -> None:
    """`supervision purge` (nothing left to purge now) and `supervision audit verify`,
    which says where it began: the newest purge checkpoint."""
    env = {**os.environ, "SUPERVISION_DATABASE_URL": svc.rt.settings.database_url,
           "SUPERVISION_DATA_DIR": str(svc.rt.settings.data_dir)}
    status, out = await supervision(env, "purge")
    assert status == 0 and "deleted: nothing older than 730 days" in out, out
    status, out = await supervision(env, "audit", "verify")
    assert status == 0 and "audit chain intact" in out, out
    assert "purged up to entry" in out
