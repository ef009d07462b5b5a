"""An in-process runtime over a fresh database of each kind, seeded with the demo world."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from supervision.alerts import PatrolFanout
from supervision.auth import RateLimiter
from supervision.config import Settings
from supervision.db import make_engine, make_sessionmaker, migrate
from supervision.demo import seed
from supervision.runtime import Runtime
from supervision.signaling import AgentLinks
from supervision.tickets import ServerKey


@pytest.fixture
async def rt(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    engine = make_engine(database_url)
    await migrate(engine)
    await migrate(engine)  # idempotent
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    runtime = Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine),
                      key=ServerKey.load_or_create(tmp_path / "server.key"), links=AgentLinks(),
                      patrol=PatrolFanout(), logins=RateLimiter(10))
    async with runtime.write() as db:
        await seed(db)
    try:
        yield runtime
    finally:
        await engine.dispose()
