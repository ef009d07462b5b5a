"""The audit chain anchored outside the database.

The chain's head is checkpointed: {entry, hash, count, at} signed with the server's key
(which is not in the database) and appended to a witness outside the database (a
JSON-lines file, optionally syslog). ``check`` compares the chain with every checkpoint it
can verify, so the newest entries removed, or a change with every later hash recomputed,
show.

A retention purge (supervision/retention.py) first writes a signed *purge checkpoint*
(its own domain): the last purged entry's id and hash and how many entries it removes,
kept in ``audit_purges`` and in the witness. ``check`` verifies the chain from the newest
one whose signature verifies, accepts checkpoints of entries it covers, and counts the
entries of later checkpoints above it; an unsigned or forged one is a problem, and so are
entries gone without one.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from logging.handlers import SysLogHandler
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from camera_agent.protocol import load_public_key
from camera_agent.protocol import verify as verify_signature
from schedules.canonical import canonical
from supervision.audit import GENESIS, Problem, Start, all_entries, verify_chain
from supervision.config import Settings
from supervision.db import Database
from supervision.models import AuditEvent, AuditPurge
from supervision.tickets import ServerKey

log = logging.getLogger("supervision.audit_anchor")


# --- checkpoints: the chain's head, signed, kept outside the database ----------------

#: domain separation: a checkpoint signature can never pass as a ticket's or a plan's
CHECKPOINT_DOMAIN = b"nattillsyn/audit-checkpoint/v1\n"
#: a purge checkpoint's: never taken for a head checkpoint, nor the other way round
PURGE_DOMAIN = b"nattillsyn/audit-purge/v1\n"
#: the syslog tag; a syslog copy's checkpoint lines are found by it
SYSLOG_TAG = "nattillsyn-audit-checkpoint"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Checkpoint:
    entry: int  # id of the newest entry (0: the log was empty)
    hash: str   # its hash (GENESIS for an empty log)
    count: int  # entries in the log then
    at: str     # when, ISO 8601 UTC
    reason: str  # start, stop, interval or manual
    #: the newest retention purge's last entry then (0: none): ``count`` counts the
    #: entries after it, so a purge still under way cannot make the count ambiguous
    base: int = 0

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"v": 1, "entry": self.entry, "hash": self.hash,
                                   "count": self.count, "at": self.at, "reason": self.reason}
        if self.base:
            body["base"] = self.base
        return body


@dataclass(frozen=True)
class PurgeCheckpoint:
    """Entries up to ``entry`` (whose hash is ``hash``) are purged: the ``purged`` entries
    after ``prev`` (the previous purge's ``entry``, 0 for the first), those older than
    ``before``; ``at``: when it was signed."""

    entry: int
    hash: str
    purged: int
    prev: int
    before: str
    at: str

    def body(self) -> dict[str, object]:
        return {"v": 1, "kind": "purge", "entry": self.entry, "hash": self.hash,
                "purged": self.purged, "prev": self.prev, "before": self.before,
                "at": self.at}


def checkpoint_message(body: Mapping[str, object]) -> bytes:
    """The exact bytes signed: the domain prefix, then the canonical JSON of the body."""
    domain = PURGE_DOMAIN if body.get("kind") == "purge" else CHECKPOINT_DOMAIN
    return domain + canonical(dict(body))


def signed_line(checkpoint: Checkpoint | PurgeCheckpoint, key: ServerKey) -> str:
    """One witness line: the checkpoint's fields and ``signature`` (over all the others)."""
    body = checkpoint.body()
    return json.dumps({**body, "signature": key.sign_checkpoint(checkpoint_message(body))},
                      sort_keys=True, separators=(",", ":"))


async def head(session: AsyncSession, reason: str) -> Checkpoint:
    """The chain's head now, in one statement (one snapshot even on SQLite); ``count``
    counts the entries after the newest purge's last one (``base``)."""
    base = select(func.coalesce(func.max(AuditPurge.entry), 0)).scalar_subquery()
    counted = aliased(AuditEvent)  # not correlated with the outer row: the whole table
    total = select(func.count(counted.id)).where(counted.id > base).scalar_subquery()
    row = (await session.execute(select(AuditEvent.id, AuditEvent.hash, total, base)
                                 .order_by(AuditEvent.id.desc()).limit(1))).first()
    at = datetime.now(UTC).isoformat(timespec="seconds")
    if row is None:
        return Checkpoint(0, GENESIS, 0, at, reason)
    return Checkpoint(int(row[0]), str(row[1]), int(row[2]), at, reason, int(row[3]))


def append_witness(path: Path, line: str) -> None:
    """Append one line durably. A line cut off by a crash is left alone (verify reports
    it) but never glued to the next one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        data = (line + "\n").encode()
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        os.write(fd, data)  # one write with O_APPEND: concurrent writers do not interleave
        os.fsync(fd)
    finally:
        os.close(fd)


class _Syslog(SysLogHandler):
    def handleError(self, record: logging.LogRecord) -> None:
        raise  # a checkpoint that did not reach syslog must be reported, not printed


def send_syslog(address: str, line: str) -> None:
    """``address``: a Unix socket path (``/dev/log``) or ``host[:port]`` (UDP, port 514)."""
    where: str | tuple[str, int]
    if address.startswith("/"):
        where = address
    else:
        with_port = re.fullmatch(r"(\[[^\]]+\]|[^:]+):(\d+)", address)  # [v6]:port, host:port
        host, port = with_port.groups() if with_port else (address, "514")
        where = (host.strip("[]"), int(port))
    handler = _Syslog(address=where, facility=SysLogHandler.LOG_AUTH)
    handler.ident = SYSLOG_TAG + ": "
    handler.append_nul = False  # the line is the checkpoint, as in the witness file
    try:
        handler.emit(logging.LogRecord("supervision.audit", logging.INFO, __file__, 0,
                                       line, None, None))
    finally:
        handler.close()


def publish(settings: Settings, line: str) -> None:
    """``line`` to the witness file and syslog (if set); raises ``OSError`` if one failed."""
    _publish(settings, line)


def _publish(settings: Settings, line: str) -> None:
    try:
        append_witness(settings.audit_witness, line)
    except OSError as exc:
        raise OSError(f"witness file {settings.audit_witness}: {exc}") from exc
    if settings.audit_syslog:
        try:
            send_syslog(settings.audit_syslog, line)
        except (OSError, ValueError) as exc:
            raise OSError(f"syslog {settings.audit_syslog} (the witness file has it): "
                          f"{exc}") from exc


async def write_checkpoint(database: Database, settings: Settings, reason: str, *,
                           only_if_moved: bool = False) -> Checkpoint | None:
    """Sign the chain's head and hand it to the witnesses; with ``only_if_moved``, nothing
    when the witness file's last good checkpoint already names this head. Raises
    ``OSError`` when a witness could not be written."""
    async with database.read() as db:
        now = await head(db, reason)
    key = await asyncio.to_thread(ServerKey.load_or_create, settings.key_file)
    if only_if_moved:
        last = await asyncio.to_thread(_last_checkpoint, settings.audit_witness,
                                       load_public_key(key.public_key_b64))
        if last is not None and (last.entry, last.hash) == (now.entry, now.hash):
            return None
    await asyncio.to_thread(_publish, settings, signed_line(now, key))
    return now


async def anchor(database: Database, settings: Settings, reason: str, *,
                 only_if_moved: bool = False) -> None:
    """``write_checkpoint`` for the service (start, stop, the scheduler job): a checkpoint
    that cannot be made (a full disk, syslog away, the database gone) is logged loudly;
    the night's supervision goes on, and the next checkpoint covers the same entries."""
    try:
        await write_checkpoint(database, settings, reason, only_if_moved=only_if_moved)
    except Exception:
        log.exception("audit checkpoint (%s) could not be written", reason)


# --- reading witnesses -----------------------------------------------------------


@dataclass(frozen=True)
class Witness:
    """Where checkpoints are read from: the JSON-lines file, or a syslog copy (only its
    lines tagged ``SYSLOG_TAG`` are checkpoints; other lines are other programs')."""

    path: Path
    syslog: bool = False


def _lines(witness: Witness) -> list[tuple[int, str]]:
    """(line number, checkpoint text) of each checkpoint line; raises OSError if unreadable."""
    found: list[tuple[int, str]] = []
    text_ = witness.path.read_bytes().decode("utf-8", errors="replace")
    for number, raw in enumerate(text_.splitlines(), start=1):
        if witness.syslog:
            tag = raw.find(SYSLOG_TAG + ":")
            if tag < 0:
                continue
            raw = raw[tag + len(SYSLOG_TAG) + 1:]
        if raw.strip():
            found.append((number, raw.strip()))
    return found


def _parse(raw: str, keys: Sequence[Ed25519PublicKey]) -> Checkpoint | PurgeCheckpoint | str:
    """The checkpoint (a head's or a purge's), or the problem code: ``garbled`` (not a
    whole checkpoint line) or ``bad_signature`` (no given key signed exactly these fields)."""
    try:
        fields = json.loads(raw)
    except (ValueError, RecursionError):  # an edited line may nest without end
        return "garbled"
    if not isinstance(fields, dict) or not isinstance(fields.get("signature"), str):
        return "garbled"
    signature = fields.pop("signature")
    try:
        message = checkpoint_message(fields)
    except (TypeError, ValueError):
        return "garbled"
    if not any(verify_signature(k, signature, message) for k in keys):
        return "bad_signature"
    if fields.get("kind") == "purge":
        return _purge(fields)
    base = fields.get("base", 0)
    if type(base) is not int:
        return "garbled"
    entry, hash_, count_, at, reason = (fields.get(k) for k in
                                        ("entry", "hash", "count", "at", "reason"))
    if (fields.get("v") != 1 or type(entry) is not int or type(count_) is not int
            or not isinstance(hash_, str) or not _HEX64.match(hash_)
            or not isinstance(at, str) or not isinstance(reason, str)):
        return "garbled"
    return Checkpoint(entry, hash_, count_, at, reason, base)


def _purge(fields: Mapping[str, object]) -> PurgeCheckpoint | str:
    entry, hash_, purged, prev, before, at = (fields.get(k) for k in (
        "entry", "hash", "purged", "prev", "before", "at"))
    if (fields.get("v") != 1 or type(entry) is not int or type(purged) is not int
            or type(prev) is not int or not isinstance(hash_, str) or not _HEX64.match(hash_)
            or not isinstance(before, str) or not isinstance(at, str)):
        return "garbled"
    return PurgeCheckpoint(entry, hash_, purged, prev, before, at)


def _last_checkpoint(path: Path, key: Ed25519PublicKey) -> Checkpoint | None:
    """The file's last line, if it is a good checkpoint (the end of the file is enough)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            tail = f.read().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    last = next((ln for ln in reversed(tail) if ln.strip()), None)
    found = _parse(last, [key]) if last else None
    return found if isinstance(found, Checkpoint) else None


@dataclass(frozen=True)
class Placed:
    checkpoint: Checkpoint
    source: str
    line: int


@dataclass(frozen=True)
class PlacedPurge:
    checkpoint: PurgeCheckpoint
    source: str  # a witness, or "audit_purges"
    line: int  # the witness line, or the row's id


def read_witnesses(witnesses: Sequence[Witness], keys: Sequence[Ed25519PublicKey]
                   ) -> tuple[list[Placed | PlacedPurge], list[Problem]]:
    """Every checkpoint whose signature verifies, and a problem for every other line."""
    good: list[Placed | PlacedPurge] = []
    problems: list[Problem] = []
    for witness in witnesses:
        source = str(witness.path)
        try:
            lines = _lines(witness)
        except FileNotFoundError:
            problems.append(Problem(None, "no_witness", {"source": source}, source=source))
            continue
        except OSError as exc:
            problems.append(Problem(None, "unreadable_witness",
                                    {"source": source, "error": exc.strerror or str(exc)},
                                    source=source))
            continue
        for number, raw in lines:
            parsed = _parse(raw, keys)
            if isinstance(parsed, Checkpoint):
                good.append(Placed(parsed, source, number))
                continue
            if isinstance(parsed, PurgeCheckpoint):
                good.append(PlacedPurge(parsed, source, number))
                continue
            claimed = re.search(r'"at"\s*:\s*"([^"]{1,40})"', raw)
            problems.append(Problem(None, parsed, {"line": number,
                                                   "at": claimed.group(1) if claimed else "?"},
                                    source=source, line=number))
    return good, problems


#: where ``stored_purges`` found a purge checkpoint (its ``line`` is the row's id)
PURGES_TABLE = "audit_purges"


async def stored_purges(session: AsyncSession, keys: Sequence[Ed25519PublicKey]
                        ) -> tuple[list[PlacedPurge], list[Problem]]:
    """The purge checkpoints kept in the database whose signature verifies (and that name
    the entry their row does), and a problem for every other row."""
    good: list[PlacedPurge] = []
    problems: list[Problem] = []
    rows = (await session.execute(select(AuditPurge.id, AuditPurge.entry, AuditPurge.line)
                                  .order_by(AuditPurge.id))).all()
    for row_id, entry, line in rows:
        parsed = _parse(line, keys)
        if isinstance(parsed, PurgeCheckpoint) and parsed.entry == entry:
            good.append(PlacedPurge(parsed, PURGES_TABLE, row_id))
        else:
            problems.append(Problem(entry, "purge_unsigned", {"row": row_id, "entry": entry},
                                    source=PURGES_TABLE, line=row_id))
    return good, problems


def purge_start(purges: Sequence[PlacedPurge]) -> Start | None:
    """Where the chain's verification starts: the newest verified purge checkpoint."""
    newest = max(purges, key=lambda p: (p.checkpoint.entry, p.checkpoint.at), default=None)
    if newest is None or newest.checkpoint.entry == 0:
        return None
    return Start(newest.checkpoint.entry, newest.checkpoint.hash)


def compare(events: Sequence[AuditEvent], placed: Sequence[Placed],
            purges: Sequence[PlacedPurge] = ()) -> list[Problem]:
    """What the checkpoints say is missing or altered in the chain (read after them).
    Checkpointed entries a verified purge covers may be gone; a later checkpoint's count
    is of the entries above its ``base``, less what purges after that base removed."""
    start = purge_start(purges)
    boundary = start.entry if start else 0
    # each purge once (the table and a witness both hold it): (entry, how many it removed)
    removed = {p.checkpoint for p in purges}
    ids = [e.id for e in events]
    hashes = {e.id: e.hash for e in events}
    last_id = ids[-1] if ids else 0
    problems: list[Problem] = []
    beyond: Placed | None = None
    agreed = 0  # the newest checkpointed entry the chain still agrees with
    differing: list[Placed] = []
    gap = 0  # entries the checkpoints counted that the log no longer holds, so far
    reported_missing: set[int] = set()
    ordered = sorted(placed, key=lambda p: (p.checkpoint.entry, p.checkpoint.at))
    for p in ordered:
        cp = p.checkpoint
        if cp.entry == 0:
            continue
        if cp.entry > last_id:
            if beyond is None or (cp.entry, cp.count) >= (beyond.checkpoint.entry,
                                                          beyond.checkpoint.count):
                beyond = p
        elif cp.entry not in hashes:
            if cp.entry <= boundary:
                continue  # purged, as a signed purge checkpoint says
            if cp.entry not in reported_missing:
                reported_missing.add(cp.entry)
                problems.append(Problem(cp.entry, "entry_missing", {
                    "entry": cp.entry, "at": cp.at, "count": cp.count,
                    "found": bisect.bisect_right(ids, cp.entry)}))
        elif hashes[cp.entry] != cp.hash:
            differing.append(p)
        elif not differing:
            agreed = cp.entry
            if cp.entry <= boundary:
                continue  # partly purged already: the purge checkpoint vouches for them
            low = max(cp.base, boundary)
            found = bisect.bisect_right(ids, cp.entry) - bisect.bisect_right(ids, low)
            counted = cp.count - sum(p.purged for p in removed if cp.base < p.entry <= low)
            if counted - found != gap:  # each removal (or insertion) once, where it shows
                gap = counted - found
                problems.append(Problem(cp.entry, "count_differs", {
                    "entry": cp.entry, "at": cp.at, "count": counted, "found": found}))
    if differing:
        first = differing[0].checkpoint
        later = len({p.checkpoint.entry for p in differing}) - 1
        problems.append(Problem(first.entry, "recomputed", {
            "entry": first.entry, "at": first.at, "since": agreed, "later": later}))
    if beyond is not None:
        cp = beyond.checkpoint
        problems.append(Problem(last_id, "missing_after", {
            "last": last_id, "entry": cp.entry, "at": cp.at, "count": cp.count}))
    return problems


@dataclass(frozen=True)
class Report:
    """The chain and its anchor. ``chain``: per-entry problems; ``anchor``: what the
    witnesses show (and problems with the witnesses themselves)."""

    entries: int
    chain: list[Problem]
    anchor: list[Problem]
    witnesses: list[str]
    verified: int  # checkpoints whose signature verified
    latest: Checkpoint | None  # the one naming the newest entry
    unanchored: int  # entries after the latest checkpoint (not yet covered by any)
    #: the newest verified purge checkpoint: verification started after its entry
    purge: PurgeCheckpoint | None = None

    @property
    def intact(self) -> bool:
        return not self.chain and not self.anchor

    @property
    def problems(self) -> list[Problem]:
        return [*self.chain, *self.anchor]


async def check(session: AsyncSession, witnesses: Sequence[Witness],
                public_keys: Sequence[str]) -> Report:
    """The chain, checked alone and against every checkpoint signed by one of
    ``public_keys`` in ``witnesses``. The witnesses are read before the chain: a
    checkpoint names only committed entries, so a checkpoint written while this runs can
    never be taken for entries gone missing. The purge checkpoints of the database's
    ``audit_purges`` count as well as the witnesses' (``stored_purges``)."""
    keys = [load_public_key(k) for k in public_keys]
    read, problems = await asyncio.to_thread(read_witnesses, witnesses, keys)
    placed = [p for p in read if isinstance(p, Placed)]
    purges = [p for p in read if isinstance(p, PlacedPurge)]
    events = await all_entries(session)
    # read after the entries: a purge's row is committed before it deletes anything, so
    # every deletion the entries show has its row here
    stored, unsigned = await stored_purges(session, keys)
    purges += stored
    problems += unsigned
    start = purge_start(purges)
    chain = verify_chain(events, start)
    problems += compare(events, placed, purges)
    newest_purge = max(purges, key=lambda p: (p.checkpoint.entry, p.checkpoint.at),
                       default=None)
    latest = max(placed, key=lambda p: (p.checkpoint.entry, p.checkpoint.at), default=None)
    if events and not placed:
        problems.append(Problem(None, "no_checkpoint", {}))
    if not events:  # an empty log (a new install) has nothing to anchor yet
        problems = [p for p in problems if p.code != "no_witness"]
    ids = [e.id for e in events]
    unanchored = len(ids) - (bisect.bisect_right(ids, latest.checkpoint.entry) if latest
                             else 0)
    return Report(entries=len(events), chain=chain, anchor=problems,
                  witnesses=[str(w.path) for w in witnesses], verified=len(placed),
                  latest=latest.checkpoint if latest else None, unanchored=unanchored,
                  purge=newest_purge.checkpoint if newest_purge else None)
