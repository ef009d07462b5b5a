"""Engine, sessions and migrations (Alembic, run on the app's own connection at start)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
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
