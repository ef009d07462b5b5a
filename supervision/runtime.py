"""What one running service holds: settings, database, key, live connections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from supervision.auth import RateLimiter
from supervision.config import Settings
from supervision.db import Database
from supervision.patrol import PatrolFanout
from supervision.signaling import AgentLinks
from supervision.tickets import ServerKey


@dataclass
class Runtime:
    settings: Settings
    database: Database
    key: ServerKey
    links: AgentLinks
    patrol: PatrolFanout
    logins: RateLimiter

    @classmethod
    def create(cls, settings: Settings, database: Database | None = None) -> Runtime:
        """Everything a process needs, from its settings (the key file is made if absent)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings=settings, database=database or Database.open(settings.database_url),
                   key=ServerKey.load_or_create(settings.key_file), links=AgentLinks(),
                   patrol=PatrolFanout(), logins=RateLimiter(settings.login_attempts_per_minute))

    @property
    def engine(self) -> AsyncEngine:
        return self.database.engine

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction (queued on SQLite, which has one writer)."""
        async with self.database.write() as db:
            yield db

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.database.read() as db:
            yield db
