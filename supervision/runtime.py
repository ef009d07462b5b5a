"""What one running service holds: settings, database, key, live connections, scheduler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from supervision.alerts import PatrolFanout
from supervision.auth import RateLimiter
from supervision.config import Settings
from supervision.signaling import AgentLinks
from supervision.tickets import ServerKey


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    key: ServerKey
    links: AgentLinks
    patrol: PatrolFanout
    logins: RateLimiter
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

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
