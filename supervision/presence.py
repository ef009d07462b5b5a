"""Camera presence, shared by every node: which node holds each camera's link, and when each
camera was last heard.

The link's holder is written to the camera's row (``link_node``) when it links and cleared
when it goes, and every node is told at once (a ``link`` notification), so each node keeps
the whole map in memory and "is this camera online?" costs no query. A holder counts only
while its node is alive (``Nodes.alive``): the links of a node that died by SIGKILL are
gone with it, and their cameras redial a surviving node.

Heartbeats do not cost a transaction each: they are kept in memory and written in one
batch every ``flush_seconds`` (``last_seen_at`` and, when it changed, ``health``). So 2,000
idle links cost one small transaction every few seconds rather than 137 commits a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from supervision.db import Database
from supervision.models import Camera
from supervision.nodes import Nodes

log = logging.getLogger("supervision.presence")


class Presence:
    def __init__(self, database: Database, nodes: Nodes, flush_seconds: float) -> None:
        self.database = database
        self.nodes = nodes
        self._flush_every = flush_seconds
        self._holders: dict[str, str] = {}  # camera id -> node id, for every node
        self._heard: dict[str, datetime] = {}  # since the last flush
        self._health: dict[str, dict[str, Any]] = {}  # changed since the last flush
        self._last_health: dict[str, dict[str, Any]] = {}  # what this node heard last
        self._last_heard: dict[str, datetime] = {}
        self._task: asyncio.Task[None] | None = None
        nodes.on("link", self._on_link)
        nodes.on_reconnect.append(self.reload)

    # --- who holds a link ---------------------------------------------------------

    def node_of(self, camera_id: str) -> str | None:
        """The live node holding the camera's link, or None (offline)."""
        node = self._holders.get(camera_id)
        return node if self.nodes.alive(node) else None

    def online(self, camera_id: str) -> bool:
        return self.node_of(camera_id) is not None

    async def linked(self, camera_id: str) -> None:
        """This node now holds the camera's link."""
        now = datetime.now(UTC)
        self._holders[camera_id] = self.nodes.id
        async with self.database.write() as db:
            await db.execute(update(Camera).where(Camera.id == camera_id).values(
                link_node=self.nodes.id, linked_at=now, last_seen_at=now))
            await self.nodes.tell(db, "link", camera=camera_id, node=self.nodes.id)
        self._heard.pop(camera_id, None)

    async def unlinked(self, camera_id: str) -> None:
        """This node's link for the camera is gone (a newer one elsewhere stays)."""
        if self._holders.get(camera_id) == self.nodes.id:
            del self._holders[camera_id]
        async with self.database.write() as db:
            gone = await db.execute(update(Camera).where(
                Camera.id == camera_id, Camera.link_node == self.nodes.id).values(
                link_node=None))
            if gone.rowcount:  # type: ignore[attr-defined]
                await self.nodes.tell(db, "link", camera=camera_id, node=None,
                                      was=self.nodes.id)

    def _on_link(self, msg: dict[str, Any]) -> None:
        camera, node = str(msg.get("camera")), msg.get("node")
        if isinstance(node, str):
            self._holders[camera] = node
        elif self._holders.get(camera) == msg.get("was"):
            del self._holders[camera]

    async def reload(self) -> None:
        """The whole map from the rows (at start, and after missing notifications)."""
        async with self.database.read() as db:
            rows = (await db.execute(select(Camera.id, Camera.link_node).where(
                Camera.link_node.is_not(None)))).all()
        mine = {c for c, n in self._holders.items() if n == self.nodes.id}
        self._holders = {cid: str(node) for cid, node in rows}
        for cid in mine:  # what this node holds it knows better than any row
            self._holders[cid] = self.nodes.id

    # --- when a camera was last heard ---------------------------------------------

    def heard(self, camera_id: str, health: dict[str, Any] | None = None) -> None:
        """A heartbeat or report came in; written at the next flush."""
        now = datetime.now(UTC)
        self._heard[camera_id] = now
        self._last_heard[camera_id] = now
        if health is not None and health != self._last_health.get(camera_id):
            self._health[camera_id] = health
            self._last_health[camera_id] = health

    def seen(self, camera_id: str, last_seen_at: datetime | None,
             health: dict[str, Any] | None) -> tuple[datetime | None, dict[str, Any] | None]:
        """A camera's row's (last seen, health), brought up to date with what this node
        heard since its last flush (the row may be up to ``flush_seconds`` behind)."""
        heard = self._last_heard.get(camera_id)
        if heard is not None and (last_seen_at is None or heard > last_seen_at):
            last_seen_at = heard
        return last_seen_at, self._last_health.get(camera_id, health)

    async def flush(self) -> int:
        """Write what was heard since the last flush in one transaction; how many cameras."""
        heard, self._heard = self._heard, {}
        health, self._health = self._health, {}
        if not heard and not health:
            return 0
        try:
            async with self.database.write() as db:
                conn = await db.connection()
                if heard:
                    await conn.execute(
                        update(Camera).where(Camera.id == bindparam("cid"))
                        .values(last_seen_at=bindparam("seen")),
                        [{"cid": c, "seen": t} for c, t in heard.items()])
                if health:
                    await conn.execute(
                        update(Camera).where(Camera.id == bindparam("cid"))
                        .values(health=bindparam("h")),
                        [{"cid": c, "h": h} for c, h in health.items()])
        except Exception:
            # kept for the next flush (newer times win): a failed write loses nothing
            for cid, at in heard.items():
                self._heard.setdefault(cid, at)
            for cid, h in health.items():
                self._health.setdefault(cid, h)
            raise
        return len(heard.keys() | health.keys())

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._run(), name="presence")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_every)
            try:
                await self.flush()
            except Exception as exc:
                log.warning("writing camera presence failed (kept for the next try): %r", exc)
