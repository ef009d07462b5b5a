"""/readyz's judgement on real databases: ready while the schema is at head and the shared
duties are held here or by another node (a session holding the leader lock); not ready
when nobody leads, the schema is not the one this code knows, or the database is gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from supervision.db import Database, migrate
from supervision.leadership import LEADER_LOCK
from supervision.readiness import not_ready
from tests.conftest import fresh_pg_database
from tests.harness import free_port


def test_postgresql_needs_a_leader_somewhere() -> None:
    with fresh_pg_database() as (url, _):
        async def run() -> None:
            database = Database.open(url)
            other = Database.open(url)  # another node's lock connection
            try:
                await migrate(database.engine)
                assert await not_ready(database, leading=True) == []
                assert await not_ready(database, leading=False) == ["duties"]
                async with other.engine.connect() as conn:
                    assert await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"),
                                             {"k": LEADER_LOCK})
                    assert await not_ready(database, leading=False) == [], \
                        "another node leads: this one is ready"
                    await conn.execute(text("SELECT pg_advisory_unlock_all()"))
                assert await not_ready(database, leading=False) == ["duties"]
                async with database.write() as db:
                    await db.execute(text("UPDATE alembic_version SET version_num = 'zzzz'"))
                assert await not_ready(database, leading=True) == ["migrations"]
            finally:
                await database.engine.dispose()
                await other.engine.dispose()
        asyncio.run(run())


def test_sqlite_leads_alone_and_a_gone_database_is_not_ready(tmp_path: Path) -> None:
    async def run() -> None:
        database = Database.open(f"sqlite+aiosqlite:///{tmp_path}/r.db")
        gone = Database.open(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none")
        try:
            assert await not_ready(database, leading=True) == ["migrations"], "not migrated"
            await migrate(database.engine)
            assert await not_ready(database, leading=True) == []
            assert await not_ready(gone, leading=False) == ["database"]
        finally:
            await database.engine.dispose()
            await gone.engine.dispose()
    asyncio.run(run())
