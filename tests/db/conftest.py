"""An in-process runtime over a fresh database of each kind, seeded with the demo world."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from supervision.config import Settings
from supervision.db import Database, make_engine, make_sessionmaker, migrate
from supervision.demo import seed
from supervision.runtime import Runtime


@pytest.fixture
async def rt(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    engine = make_engine(database_url)
    await migrate(engine)
    await migrate(engine)  # idempotent
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    runtime = Runtime.create(settings, Database(engine, make_sessionmaker(engine)))
    async with runtime.write() as db:
        await seed(db)
    try:
        yield runtime
    finally:
        await engine.dispose()
