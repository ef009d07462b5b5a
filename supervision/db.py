"""Engine, sessions and migrations (Alembic, run on the app's own connection at start)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL: readers never block the writer; the night must not stall on a report.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=max_overflow,
                               pool_pre_ping=True)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


#: PostgreSQL session advisory lock held while migrating ("MIGR"): nodes starting together
#: migrate one after the other, and each later one finds the schema already at head
MIGRATION_LOCK = 0x4D494752


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to head. On PostgreSQL under a session advisory lock taken on the
    migrating connection, released only after the migration committed (a transaction lock
    could not cover the commit itself), so nodes starting together migrate one after the
    other and each later one finds the schema at head."""
    if engine.dialect.name != "postgresql":
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
        return
    async with engine.connect() as conn:
        try:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            await conn.commit()  # the session lock outlives this; the migration has its own
            await conn.run_sync(_upgrade)
            await conn.commit()
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
            await conn.commit()
        except BaseException:
            # closed, not pooled: ending its session is what releases the lock, in any state
            await conn.invalidate()
            raise


class SchemaRefused(RuntimeError):
    """The database's schema is not one this code may run on (as it stands)."""


@dataclass(frozen=True)
class Schema:
    """Where a database's schema stands against this code's migrations."""

    state: Literal["empty", "current", "older", "unknown"]
    revision: str | None  # the database's alembic revision, if it has one
    head: str  # this code's newest revision

    def refusal(self, *, migrating: bool = False) -> str | None:
        """Why this code must not run on it, or None. ``migrating``: ``supervision
        migrate`` is asking, which may bring an older schema to head."""
        if self.state == "unknown":
            return (f"the database's schema ({self.revision or 'tables without a revision'}) "
                    f"is not one this code knows (its newest is {self.head}): it was made "
                    "by a newer release, or by something else. Run the release that "
                    "migrated it, or restore a backup made by this one; nothing was changed.")
        if self.state == "older" and not migrating:
            return (f"the database's schema is at {self.revision}, older than this code's "
                    f"{self.head}: back up, then run `supervision migrate` (once, from one "
                    "node), then start the service again")
        return None


def code_head() -> str:
    from alembic.script import ScriptDirectory
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _inspect(connection: Connection) -> tuple[list[str], str | None]:
    tables = inspect(connection).get_table_names()
    if "alembic_version" not in tables:
        return tables, None
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return tables, ",".join(sorted(str(r[0]) for r in rows)) or None


async def schema(engine: AsyncEngine) -> Schema:
    """Where the database's schema stands: empty (no tables at all), current (at this
    code's head), older (an ancestor of it) or unknown (a revision this code does not
    ship, i.e. a newer release's, or tables without a revision)."""
    from alembic.script import ScriptDirectory
    async with engine.connect() as conn:
        tables, revision = await conn.run_sync(_inspect)
    head = code_head()
    if not tables:
        return Schema("empty", None, head)
    if revision == head:
        return Schema("current", revision, head)
    known = {r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    return Schema("older" if revision in known else "unknown", revision, head)


async def settle_schema(engine: AsyncEngine, *, auto_migrate: bool = False) -> Schema:
    """Before the service or a command runs: an empty database is migrated (the first
    start of a new install), a current one is used as it is, an older one only with
    ``auto_migrate`` (otherwise upgrading is the separate step ``supervision migrate``),
    and one this code does not know never. Raises ``SchemaRefused`` with what to do."""
    found = await schema(engine)
    if found.state == "empty" or (found.state == "older" and auto_migrate):
        await migrate(engine)
        return found
    problem = found.refusal()
    if problem:
        raise SchemaRefused(problem)
    return found


@dataclass
class Database:
    """The engine and its sessions, with the two ways the service uses them."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def open(cls, url: str, *, pool_size: int = 10, max_overflow: int = 20) -> Database:
        engine = make_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        return cls(engine, make_sessionmaker(engine))

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction. SQLite has one writer; queueing here avoids 'database locked'."""
        if self.engine.dialect.name == "sqlite":
            async with self._write_lock, self.sessions() as db, db.begin():
                yield db
        else:
            async with self.sessions() as db, db.begin():
                yield db

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as db:
            yield db
