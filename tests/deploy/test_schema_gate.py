"""Upgrades are a separate, locked step: `supervision serve` migrates only an empty
database, refuses an older schema ("run supervision migrate") and one this code does not
know (a newer release's), with a clear message and exit status 65; `supervision migrate`
brings an older schema to head and leaves an unknown one alone."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from pathlib import Path

from alembic import command
from sqlalchemy.engine import Connection

from supervision.db import Database, alembic_config, code_head, schema, settle_schema
from tests.harness import BIN

EXIT_SCHEMA = 65


def upgrade_to(url: str, revision: str) -> None:
    """A database as an older release left it: migrated to ``revision`` only."""
    def run(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async def go() -> None:
        database = Database.open(url)
        try:
            async with database.engine.begin() as conn:
                await conn.run_sync(run)
        finally:
            await database.engine.dispose()
    asyncio.run(go())


def state(url: str) -> tuple[str, str | None]:
    async def go() -> tuple[str, str | None]:
        database = Database.open(url)
        try:
            found = await schema(database.engine)
            return found.state, found.revision
        finally:
            await database.engine.dispose()
    return asyncio.run(go())


def cli(tmp: Path, url: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISION_")
           or k.startswith("SUPERVISION_TEST_")}
    env.update(SUPERVISION_DATABASE_URL=url, SUPERVISION_DATA_DIR=str(tmp / "data"),
               SUPERVISION_PORT="1", **extra)
    return subprocess.run([str(BIN / "supervision"), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_serve_refuses_an_older_or_unknown_schema_and_migrate_upgrades(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite3"
    upgrade_to(url, "0009")
    head = code_head()
    assert head != "0009"

    refused = cli(tmp_path, url, "serve")
    assert refused.returncode == EXIT_SCHEMA, refused.stderr
    assert "older than this code's" in refused.stderr and "supervision migrate" in \
        refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert state(url) == ("older", "0009")  # refused: nothing changed
    # the other commands that open the database refuse it the same way
    assert cli(tmp_path, url, "seed-demo").returncode == EXIT_SCHEMA

    done = cli(tmp_path, url, "migrate")
    assert done.returncode == 0, done.stderr
    assert f"schema at {head} (was revision 0009)" in done.stdout
    assert state(url) == ("current", head)
    again = cli(tmp_path, url, "migrate")  # a second run finds nothing to do
    assert again.returncode == 0 and "(was it already)" in again.stdout, again.stdout

    # a newer release's schema: neither serve nor migrate touches it
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999_from_the_future'")
    for command_name in ("serve", "migrate"):
        refused = cli(tmp_path, url, command_name)
        assert refused.returncode == EXIT_SCHEMA, (command_name, refused.stderr)
        assert "0999_from_the_future" in refused.stderr and "not one this code knows" in \
            refused.stderr, refused.stderr
    assert state(url) == ("unknown", "0999_from_the_future")


def test_tables_without_a_revision_are_unknown_and_auto_migrate_upgrades(
        database_url: str) -> None:
    upgrade_to(database_url, "0009")

    async def go() -> None:
        database = Database.open(database_url)
        try:
            with_auto = await settle_schema(database.engine, auto_migrate=True)
            assert (with_auto.state, with_auto.revision) == ("older", "0009")
            assert (await schema(database.engine)).state == "current"
            async with database.engine.begin() as conn:
                await conn.exec_driver_sql("DROP TABLE alembic_version")
            found = await schema(database.engine)
            assert (found.state, found.revision) == ("unknown", None)
            assert found.refusal() is not None and "tables without a revision" in \
                str(found.refusal())
        finally:
            await database.engine.dispose()
    asyncio.run(go())
