"""Append-only audit log as a hash chain.

Each entry's hash covers its content and the previous entry's hash. Appends are
serialised (PostgreSQL advisory transaction lock; one writer on SQLite) and prev_hash is
unique, so the chain can never fork. The chain alone shows a changed, removed or inserted
row, but not the newest rows removed, nor a change followed by recomputing every later
hash (the algorithm is public): ``audit_anchor`` checkpoints the head outside the database.
A retention purge (``retention``) removes the oldest entries after a signed purge
checkpoint; verification then starts from it (``Start``) instead of the genesis hash.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from schedules.canonical import canonical
from supervision.i18n import Translator
from supervision.models import AuditEvent

log = logging.getLogger("supervision.audit")

GENESIS = "0" * 64
_LOCK_KEY = 0x4E415454  # "NATT"


def entry_hash(prev_hash: str, at: datetime, actor: str, kind: str, subject: str,
               data: dict[str, Any]) -> str:
    """sha256 over the previous hash and the entry's canonical JSON (``data`` must be JSON
    values already: ``append`` stores it that way)."""
    body = canonical({"at": at.astimezone(UTC).isoformat(timespec="microseconds"),
                      "actor": actor, "kind": kind, "subject": subject, "data": data})
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


async def _locked_head(session: AsyncSession) -> str:
    """The chain's head hash, with the appends of other transactions held off until this
    one ends (PostgreSQL: an advisory transaction lock; SQLite has one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    last = (await session.execute(
        select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))).scalar()
    return last or GENESIS


async def append(session: AsyncSession, actor: str, kind: str, subject: str,
                 data: dict[str, Any] | None = None, at: datetime | None = None) -> AuditEvent:
    """Add an entry inside the caller's transaction (it commits with what it records)."""
    prev = await _locked_head(session)
    when = at or datetime.now(UTC)
    payload = json.loads(json.dumps(data or {}, default=str))
    event = AuditEvent(at=when, actor=actor, kind=kind, subject=subject, data=payload,
                       prev_hash=prev, hash=entry_hash(prev, when, actor, kind, subject, payload))
    session.add(event)
    await session.flush()
    return event


async def append_many(session: AsyncSession,
                      entries: list[tuple[str, str, str, dict[str, Any]]],
                      at: datetime | None = None) -> int:
    """Entries (actor, kind, subject, data) in order, as ``append`` would add them one by
    one, with one lock, one read of the head and one insert; how many."""
    if not entries:
        return 0
    prev = await _locked_head(session)
    when = at or datetime.now(UTC)
    rows = []
    for actor, kind, subject, data in entries:
        payload = json.loads(json.dumps(data, default=str))
        digest = entry_hash(prev, when, actor, kind, subject, payload)
        rows.append({"at": when, "actor": actor, "kind": kind, "subject": subject,
                     "data": payload, "prev_hash": prev, "hash": digest})
        prev = digest
    await session.execute(insert(AuditEvent), rows)
    return len(rows)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the log or its witness: ``code`` names the i18n key
    ``audit.problem.<code>``, ``words`` fill it in. ``entry_id`` is the chain entry it is
    about, ``source``/``line`` the witness line (when it is about one)."""

    entry_id: int | None
    code: str
    words: Mapping[str, object] = field(default_factory=dict)
    source: str | None = None
    line: int | None = None

    def text(self, t: Translator | None = None) -> str:
        return (t or Translator("en"))(f"audit.problem.{self.code}", **self.words)

    @property
    def what(self) -> str:
        """In English: the command line's words."""
        return self.text()

    @property
    def place(self) -> str:
        if self.line is not None:
            return f"{self.source} line {self.line}"
        if self.source is not None:
            return self.source
        return f"entry {self.entry_id}" if self.entry_id is not None else "checkpoints"


@dataclass(frozen=True)
class Start:
    """Where verification starts after a retention purge: entries up to ``entry`` may be
    gone, and the first entry after it must follow ``hash`` (the purge checkpoint's, whose
    signature the caller verified; ``audit_anchor``)."""

    entry: int
    hash: str


def verify_chain(events: Iterable[AuditEvent], start: Start | None = None) -> list[Problem]:
    """Per-entry problems, from the genesis hash or from ``start``. Entries up to
    ``start.entry`` that are still there (a purge deletes oldest first, in batches) must
    link up among themselves and end in ``start.entry`` with ``start.hash``: so a purge
    cut short still verifies, and anything else removed there does not."""
    problems: list[Problem] = []
    prev: str | None = GENESIS if start is None else None  # None: the first kept, purged before
    crossed = start is None
    for event in events:
        expected = prev
        if start is not None and not crossed and event.id > start.entry:
            crossed = True
            expected = start.hash
            if prev is not None and prev != start.hash:  # the purged part ends elsewhere
                expected = None
                problems.append(Problem(event.id, "chain_broken"))
        if expected is not None and event.prev_hash != expected:
            problems.append(Problem(event.id, "chain_broken"))
        recomputed = entry_hash(event.prev_hash, event.at, event.actor, event.kind,
                                event.subject, event.data)
        if recomputed != event.hash:
            problems.append(Problem(event.id, "content_changed"))
        prev = event.hash
    return problems


async def all_entries(session: AsyncSession) -> list[AuditEvent]:
    return list((await session.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars())


async def verify(session: AsyncSession, start: Start | None = None) -> list[Problem]:
    """The chain alone (no witness): changed, removed or inserted entries by id. After a
    retention purge it needs the purge checkpoint's ``start`` (``audit_anchor.check``
    finds it and verifies its signature)."""
    return verify_chain(await all_entries(session), start)


# --- export ------------------------------------------------------------------------

#: what makes a spreadsheet read a cell as a formula (OWASP "CSV injection"); a leading
#: quote is escaped too, so the rule reads back: drop one leading quote from any cell
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def spreadsheet_cell(value: str) -> str:
    """``value`` as a cell a spreadsheet shows as text, never runs: a cell that starts
    like a formula gets a leading single quote."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def to_csv(events: Iterable[AuditEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "at", "actor", "kind", "subject", "data", "hash"])
    for e in events:
        row = [str(e.id), e.at.isoformat(), e.actor, e.kind, e.subject,
               json.dumps(e.data, sort_keys=True, ensure_ascii=False), e.hash]
        writer.writerow([spreadsheet_cell(cell) for cell in row])
    return out.getvalue()


async def export_csv(session: AsyncSession, since: datetime | None = None,
                     until: datetime | None = None) -> str:
    """The log (or the part in ``[since, until)``) as CSV, for log review and auditors."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    return to_csv((await session.execute(query)).scalars())


async def count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count(AuditEvent.id)))).scalar_one())
