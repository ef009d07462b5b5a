"""Retention: look-in logs and what reports are made of, older than ``retention_days``,
are purged, and the audit chain still verifies afterwards.

What is purged, with one boundary so every report older than it is gone whole and every
report younger than it is whole: the nights before ``keep_night`` (their checks, the
look-ins at them, their alerts with those alerts' webhook and push deliveries) and the
audit entries before ``before`` (a day earlier still: a kept night's entries, its plan
changes and the patrol's moves the reports read, begin at the earliest on the evening
before it in UTC). Kept: people, recipients (archived ones too), cameras, plan versions,
consent records (the legal basis of every look-in there still is a record of) and
everything younger. Nothing younger than ``retention_days`` is ever purged; entries up
to two days older may wait for the next day's run.

How, so a crash anywhere leaves a chain that verifies and the next run finishes:
1. one transaction: the boundary (the newest entry before ``before``), a *purge
   checkpoint* signed with the server key (``audit_anchor.PurgeCheckpoint``: that entry's
   id and hash, how many entries go) stored in ``audit_purges``, an ``audit.purged``
   entry saying what goes, and the checkpoint appended to the witness before the commit
   (a witness that cannot be written stops the purge; a commit that then fails leaves a
   checkpoint of entries that are still there, which is harmless);
2. the old audit entries, oldest first, ``batch`` at a time, one short transaction each
   (the chain's head lock is never taken: appends do not touch them); verification accepts
   what is left of them as long as it links up to the checkpointed entry;
3. the old nights, newest check first (a follow-up, in its parent's night, goes before
   its parent), ``batch`` checks at a time with what hangs off them; then those nights'
   rolled-up report figures (supervision/rollup.py) and rosters (supervision/roster.py).
A run first finishes a purge that an earlier run left unfinished.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import CursorResult, Delete, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from supervision import audit, audit_anchor
from supervision.config import Settings
from supervision.db import Database
from supervision.models import (
    Alert,
    AuditEvent,
    AuditPurge,
    Check,
    NightRollup,
    NightShift,
    PushDelivery,
    RollupAlert,
    RollupCamera,
    RollupCount,
    Visit,
    WebhookDelivery,
)
from supervision.tickets import ServerKey

log = logging.getLogger("supervision.retention")

#: rows per deleting transaction: small enough that no statement holds locks for long
BATCH = 5000
_PURGE_LOCK = 0x4E415450  # "NATP": beside audit's "NATT"


def boundaries(now: datetime, retention_days: int) -> tuple[date, datetime]:
    """(keep_night, before): nights before ``keep_night`` and audit entries before
    ``before`` go. Whole days, so the boundary moves once a day however often it runs."""
    keep_night = (now - timedelta(days=retention_days)).date() - timedelta(days=1)
    return keep_night, datetime.combine(keep_night - timedelta(days=1), time(), UTC)


@dataclass
class Purged:
    """What one run did: the purge it began (None: it only finished one, or found nothing
    to purge) and how many rows it deleted, by table."""

    began: AuditPurge | None = None
    deleted: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, n: int) -> None:
        self.deleted[table] = self.deleted.get(table, 0) + n


async def _delete(db: AsyncSession, statement: Delete) -> int:
    result = await db.execute(statement.execution_options(synchronize_session=False))
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


async def _counts(db: AsyncSession, keep_night: date) -> dict[str, int]:
    old = select(Check.id).where(Check.night < keep_night).scalar_subquery()
    checks = (await db.execute(select(func.count(Check.id))
                               .where(Check.night < keep_night))).scalar_one()
    visits = (await db.execute(select(func.count(Visit.id))
                               .where(Visit.check_id.in_(old)))).scalar_one()
    alerts = (await db.execute(select(func.count(Alert.id))
                               .where(Alert.check_id.in_(old)))).scalar_one()
    return {"checks": int(checks), "visits": int(visits), "alerts": int(alerts)}


async def begin(db: AsyncSession, settings: Settings, key: ServerKey,
                now: datetime) -> AuditPurge | None:
    """Step 1 in the caller's transaction: the purge row, its audit entry and its
    checkpoint in the witness; None when there is nothing to purge. Raises ``OSError``
    when the witness cannot be written (then nothing may be deleted)."""
    keep_night, before = boundaries(now, settings.retention_days)
    if db.get_bind().dialect.name == "postgresql":  # one purge begins at a time (SQLite:
        # one writer); the head's lock is taken only for the entry, at the end
        await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PURGE_LOCK})
    last = (await db.execute(select(AuditPurge).order_by(AuditPurge.id.desc())
                             .limit(1))).scalar()
    if last is not None and last.finished_at is None:
        return None  # another run (the CLI beside the service) began one: finish that
    prev, prev_hash = (last.entry, last.hash) if last else (0, audit.GENESIS)
    # the boundary, read before the head's lock is taken: entries this old never change
    first_kept = (await db.execute(select(func.min(AuditEvent.id))
                                   .where(AuditEvent.at >= before))).scalar()
    query = select(AuditEvent.id, AuditEvent.hash).where(AuditEvent.id > prev)
    if first_kept is not None:
        query = query.where(AuditEvent.id < first_kept)
    newest = (await db.execute(query.order_by(AuditEvent.id.desc()).limit(1))).first()
    entry, hash_ = (int(newest[0]), str(newest[1])) if newest else (prev, prev_hash)
    purged = int((await db.execute(select(func.count(AuditEvent.id)).where(
        AuditEvent.id > prev, AuditEvent.id <= entry))).scalar_one())
    counts = await _counts(db, keep_night)
    if not purged and not counts["checks"]:
        return None
    checkpoint = audit_anchor.PurgeCheckpoint(
        entry=entry, hash=hash_, purged=purged, prev=prev,
        before=before.isoformat(timespec="seconds"),
        at=now.astimezone(UTC).isoformat(timespec="seconds"))
    line = audit_anchor.signed_line(checkpoint, key)
    row = AuditPurge(entry=entry, hash=hash_, purged=purged, before=before,
                     keep_night=keep_night, line=line, created_at=now)
    db.add(row)
    await db.flush()
    await audit.append(db, "system", "audit.purged", f"purge:{row.id}", {
        "entry": entry, "hash": hash_, "entries": purged, "before": before.isoformat(),
        "nights_before": keep_night.isoformat(), **counts,
        "retention_days": settings.retention_days})
    # the checkpoint reaches the witness before anything is deleted (and before commit)
    await asyncio.to_thread(audit_anchor.publish, settings, line)
    return row


async def delete_entries(database: Database, purge_id: int, batch: int = BATCH) -> int:
    """Step 2, one batch: the oldest ``batch`` entries the purge covers; 0 once none is
    left (then the purge is marked finished)."""
    async with database.write() as db:
        row = await db.get(AuditPurge, purge_id)
        assert row is not None
        upto = (await db.execute(select(AuditEvent.id).where(AuditEvent.id <= row.entry)
                                 .order_by(AuditEvent.id).offset(batch - 1).limit(1))
                ).scalar()
        gone = await _delete(db, delete(AuditEvent).where(
            AuditEvent.id <= (row.entry if upto is None else upto)))
        if upto is None:  # that was the last of them
            await db.execute(update(AuditPurge).where(AuditPurge.id == purge_id)
                             .values(finished_at=datetime.now(UTC)))
        return gone


async def delete_nights(database: Database, keep_night: date,
                        batch: int = BATCH) -> dict[str, int]:
    """Step 3, one batch: up to ``batch`` checks of nights before ``keep_night``, newest
    first, with their look-ins, alerts and the alerts' deliveries; {} once none is left."""
    async with database.write() as db:
        ids = list((await db.execute(select(Check.id).where(Check.night < keep_night)
                                     .order_by(Check.id.desc()).limit(batch))).scalars())
        if not ids:
            return {}
        alerts = select(Alert.id).where(Alert.check_id.in_(ids)).scalar_subquery()
        out = {}
        for table, statement in (
                ("push_deliveries", delete(PushDelivery).where(PushDelivery.alert_id.in_(alerts))),
                ("webhook_deliveries",
                 delete(WebhookDelivery).where(WebhookDelivery.alert_id.in_(alerts))),
                ("alerts", delete(Alert).where(Alert.check_id.in_(ids))),
                ("visits", delete(Visit).where(Visit.check_id.in_(ids))),
                ("checks", delete(Check).where(Check.id.in_(ids)))):
            out[table] = await _delete(db, statement)
        return out


async def _unfinished(database: Database) -> list[int]:
    async with database.read() as db:
        return list((await db.execute(select(AuditPurge.id).where(
            AuditPurge.finished_at.is_(None)).order_by(AuditPurge.id))).scalars())


async def run(database: Database, settings: Settings, key: ServerKey, *,
              now: datetime | None = None, batch: int = BATCH) -> Purged:
    """Finish an unfinished purge, then begin and finish a new one if anything is old
    enough. Each batch is its own transaction, so a run stopped anywhere (a crash, a lost
    leadership) is finished by the next."""
    now = now or datetime.now(UTC)
    done = Purged()
    unfinished = await _unfinished(database)
    if not unfinished:
        async with database.write() as db:
            done.began = await begin(db, settings, key, now)
        unfinished = await _unfinished(database)  # this one, or one begun meanwhile
        if done.began is not None:
            log.info("retention: purging %d audit entries up to id %d and the nights "
                     "before %s", done.began.purged, done.began.entry,
                     done.began.keep_night)
    for purge_id in unfinished:
        while n := await delete_entries(database, purge_id, batch):
            done.add("audit_events", n)
    keep_night, _ = boundaries(now, settings.retention_days)
    while counts := await delete_nights(database, keep_night, batch):
        for table, n in counts.items():
            done.add(table, n)
    async with database.write() as db:  # the purged nights' report figures and rosters
        for model in (RollupCount, RollupAlert, RollupCamera, NightRollup, NightShift):
            if n := await _delete(db, delete(model).where(model.night < keep_night)):
                done.add(model.__tablename__, n)
    return done
