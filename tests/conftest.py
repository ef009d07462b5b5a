"""Shared fixtures: a real service process, real agent processes, real databases.

Chromium and PostgreSQL tests skip loudly on a laptop without them, and fail under CI=true.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Service, make_service, start_world

__all__ = ["CHROMIUM", "IN_CI", "Service", "make_service", "need"]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    """Skip with a loud reason locally; fail under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(f"SKIPPED LOUDLY: {reason}")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """Service + three enrolled, running synthetic agents."""
    svc = start_world(tmp_path / "svc")
    try:
        yield svc
    finally:
        svc.stop()
        if os.environ.get("KEEP_LOGS"):
            shutil.copytree(svc.root, Path("/tmp/last-service"), dirs_exist_ok=True)


PG_URL = os.environ.get("SUPERVISION_TEST_POSTGRES_URL", "")


def _pg_admin(sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        dsn = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind; PostgreSQL gets a database of its own."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/db.sqlite3"
        return
    with fresh_pg_database() as (url, _):
        yield url


@contextlib.contextmanager
def fresh_pg_database() -> Iterator[tuple[str, str]]:
    """(URL, name) of a new, empty PostgreSQL database, dropped afterwards."""
    need(bool(PG_URL), "SUPERVISION_TEST_POSTGRES_URL is not set (PostgreSQL tests)")
    import secrets
    name = f"nt_test_{secrets.token_hex(4)}"
    try:
        _pg_admin(f"CREATE DATABASE {name}")
    except OSError as exc:
        need(False, f"PostgreSQL at {PG_URL} is not reachable: {exc}")
    try:
        yield f"{PG_URL.rsplit('/', 1)[0]}/{name}", name
    finally:
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
