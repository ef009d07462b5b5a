"""What one running service holds: settings, database, key, live connections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from supervision.config import Settings
from supervision.db import Database
from supervision.login_limits import LoginLimits
from supervision.nodes import Nodes, new_node_id
from supervision.patrol import PatrolFanout
from supervision.presence import Presence
from supervision.relay import Relay
from supervision.signaling import AgentLinks
from supervision.stalls import StallWatch
from supervision.tickets import ServerKey


@dataclass
class Runtime:
    settings: Settings
    database: Database
    key: ServerKey
    links: AgentLinks
    patrol: PatrolFanout
    #: failed logins, counted across every node
    logins: LoginLimits
    nodes: Nodes
    presence: Presence
    #: reaches a camera's link on whichever node holds it (``links`` is this node's only)
    relay: Relay
    #: how long this node's event loop was held lately (``/metrics``)
    stalls: StallWatch

    @classmethod
    def create(cls, settings: Settings, database: Database | None = None) -> Runtime:
        """Everything a process needs, from its settings (the key file is made if absent).
        Nothing is started: ``start`` joins the other nodes (the app does, at its start)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = database or Database.open(
            settings.database_url, pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow)
        nodes = Nodes(database, settings.database_url, node_id=new_node_id(settings.port),
                      name=settings.node_name or f"{settings.host}:{settings.port}",
                      heartbeat_seconds=settings.node_heartbeat_seconds,
                      alive_seconds=settings.node_alive_seconds)
        links = AgentLinks()
        presence = Presence(database, nodes, settings.presence_flush_seconds)
        patrol = PatrolFanout()
        rt = cls(settings=settings, database=database,
                 key=ServerKey.load_or_create(settings.key_file), links=links,
                 patrol=patrol, logins=LoginLimits(database, settings.login_attempts_per_minute),
                 nodes=nodes, presence=presence, relay=Relay(links, presence, nodes),
                 stalls=StallWatch())
        nodes.on("end", rt._end_here)
        return rt

    async def start(self) -> None:
        """Join the other nodes: be counted alive, listen, learn who holds which link."""
        await self.nodes.start()
        await self.presence.start()
        self.stalls.start()

    async def stop(self) -> None:
        await self.stalls.stop()
        await self.presence.stop()
        await self.nodes.stop()

    async def end_sockets(self, *, session_id: str | None = None, user_id: int | None = None,
                          reason: str) -> None:
        """Close the patrol sockets of a web session or of a user on every node, at once
        (sign-out, a disabled user, a changed role)."""
        msg = {"session": session_id, "user": user_id, "reason": reason[:100]}
        self._end_here(msg)
        await self.nodes.tell(None, "end", **msg)

    def _end_here(self, msg: dict[str, Any]) -> None:
        reason = str(msg.get("reason") or "session ended")
        if isinstance(msg.get("session"), str):
            self.patrol.end_session(str(msg["session"]), reason)
        if isinstance(msg.get("user"), int):
            self.patrol.end_user(int(str(msg["user"])), reason)

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
