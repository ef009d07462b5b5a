"""Every patrol socket on every node gets every new and changed alert at once.

The node that commits an alert change names the alert to the other nodes in the same
transaction (``announce``: its id and whether it is an escalation, nothing of its content,
and sent only if the change commits), then pushes its own sockets (``publish``). Each other
node reads the rows named in a batch of such notices in one query and pushes the patrol's
view of them to its own sockets (``RemoteAlerts``). A node that could not listen for a
while sends its sockets a fresh snapshot once it listens again; and on every node the
re-send of unacknowledged alerts (``sweep.redeliver``) keeps delivery at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from supervision import push
from supervision.alerts import active_alerts, alert_json
from supervision.models import Alert, Check, Recipient
from supervision.runtime import Runtime

log = logging.getLogger("supervision.alert_feed")


async def announce(rt: Runtime, db: AsyncSession, alert_id: int, *,
                   escalation: bool = False) -> None:
    """Tell the other nodes, inside ``db``'s transaction, that this alert changed, and
    write the pushes to the phones it calls for (``push.enqueue``) in that transaction."""
    await push.enqueue(db, alert_id, escalation=escalation)
    if escalation:
        await rt.nodes.tell(db, "alert", id=alert_id, escalation=True)
    else:
        await rt.nodes.tell(db, "alert", id=alert_id)


async def publish(rt: Runtime, data: dict[str, Any], **flags: bool) -> None:
    """Push the patrol's view of an alert to this node's sockets (after the commit)."""
    await rt.patrol.broadcast({"type": "alert", "alert": data, **flags})


async def publish_again(rt: Runtime, items: list[dict[str, Any]]) -> None:
    """The re-send of unacknowledged alerts to this node's sockets: one message carrying
    them all (``alerts``, flagged ``repeat``). A message per alert and socket was a burst
    of thousands of sends every re-send on a busy night (50 alerts to 67 sockets), which
    held up the news of the next change by ~0.2 s (bench/nodes.py)."""
    if items:
        await rt.patrol.broadcast({"type": "alerts", "alerts": items, "repeat": True})


class RemoteAlerts:
    """This node's side of other nodes' announcements."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._queue: asyncio.Queue[tuple[int, bool]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        rt.nodes.on("alert", self._noticed)
        rt.nodes.on_reconnect.append(self.snapshot)

    def _noticed(self, msg: dict[str, Any]) -> None:
        alert_id = msg.get("id")
        if isinstance(alert_id, int) and not isinstance(alert_id, bool):
            self._queue.put_nowait((alert_id, msg.get("escalation") is True))
            push.wake()  # its pushes are in the outbox: the sender, if here, looks now

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="remote-alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():  # what came meanwhile: one query for all
                batch.append(self._queue.get_nowait())
            try:
                await self._push(batch)
            except Exception:
                log.exception("pushing %d alert(s) from other nodes failed", len(batch))

    async def _push(self, batch: list[tuple[int, bool]]) -> None:
        if not self.rt.patrol.clients:
            return
        ids = {alert_id for alert_id, _ in batch}
        async with self.rt.read() as db:
            rows = (await db.execute(
                select(Alert, Recipient, Check)
                .join(Recipient, Recipient.id == Alert.recipient_id)
                .outerjoin(Check, Check.id == Alert.check_id)
                .where(Alert.id.in_(ids)))).all()
        views = {a.id: alert_json(a, r, c, with_access=True) for a, r, c in rows}
        for alert_id, escalation in batch:
            data = views.get(alert_id)
            if data is not None:
                await publish(self.rt, data, **({"escalation": True} if escalation else {}))

    async def snapshot(self) -> None:
        """After a gap in listening: every socket gets the active alerts as they are now."""
        async with self.rt.read() as db:
            alerts = await active_alerts(db)
        await self.rt.patrol.broadcast({"type": "snapshot", "alerts": alerts})
