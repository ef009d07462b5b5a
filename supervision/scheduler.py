"""APScheduler jobs. The jobs hold no state of their own: they are rebuilt at every start
and act only on what the database says, so nothing scheduled is lost by a restart."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from supervision import planning, webhook
from supervision.cameras import push_switched
from supervision.runtime import Runtime
from supervision.sweep import redeliver, sweep

log = logging.getLogger("supervision.scheduler")


class NightScheduler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.started_at = datetime.now(UTC)
        self.scheduler = AsyncIOScheduler(timezone=UTC)

    async def plan(self) -> None:
        async with self.rt.write() as db:
            made = await planning.plan_all(db)
        if made:
            log.info("planned %d checks", made)
        # a plan version whose first night has begun goes to its camera now, not at the
        # camera's next reconnect (else that night's look-ins would be refused)
        await push_switched(self.rt)

    async def sweep(self) -> None:
        await sweep(self.rt, started_at=self.started_at)

    async def redeliver(self) -> None:
        await redeliver(self.rt)

    async def deliver_webhooks(self) -> None:
        await webhook.deliver_due(self.rt.database, self.rt.settings)

    async def start(self) -> None:
        await self.plan()
        await self.sweep()
        s = self.rt.settings
        opts = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 60}
        self.scheduler.add_job(self.plan, "interval", minutes=s.planning_minutes,
                               id="plan", **opts)
        self.scheduler.add_job(self.sweep, "interval", seconds=s.sweep_seconds, id="sweep", **opts)
        self.scheduler.add_job(self.redeliver, "interval", seconds=10, id="redeliver", **opts)
        if s.webhook_on:
            self.scheduler.add_job(self.deliver_webhooks, "interval",
                                   seconds=s.webhook_poll_seconds, id="webhook", **opts)
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
