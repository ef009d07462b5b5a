"""APScheduler jobs. The jobs hold no state of their own: they are rebuilt at every start
and act only on what the database says, so nothing scheduled is lost by a restart.

Several nodes may share one PostgreSQL database, so each job is either shared (it acts on
the whole database: exactly one node runs it at a time, the leader; see
supervision/leadership.py) or per node (it acts on what this process holds: every node
runs it). Job by job:

- ``plan`` (shared): makes the check rows of the coming nights. Run on every node it is
  only repeated work (the planners queue on a lock and the slots are unique).
- ``sweep`` (shared): opens and ends checks at their windows, raises their alerts,
  escalates unacknowledged alerts, closes lapsed look-ins. Every change is a guarded
  compare-and-swap, so two sweeps would not double a check or an alert, but each node
  would do the whole night's work, and the alerts would be pushed from both.
- ``webhook`` (shared): reads the due outbox rows, POSTs them, then records the answers.
  It cannot be left to the row guards: two nodes would both read a row as due and both
  POST it, so the receiver would get every delivery twice and a failing one would use up
  its retry budget twice as fast. Leadership is what prevents that.
- the push sender and ``push-repeat`` (shared): send the Web Push outbox to the phones,
  and push unacknowledged alerts again every ``push_repeat_seconds``; like the webhook, two
  senders would both send a due row (see supervision/push.py). The sender is not a job at
  intervals but one task that runs for as long as this node leads, woken by every alert
  change: between interval runs a burst of alerts waited for the next to begin.
- ``push-plans`` (shared): sends a plan version whose first night began to its camera,
  through whichever node holds the camera's link (``relay``).
- ``redeliver`` (per node): re-sends unacknowledged alerts to this node's patrol sockets
  every ``alert_resend_seconds``:
  delivery at least once, beside the news of every change that reaches every node at
  once (``alert_feed``).
- ``sockets`` (per node): closes this node's patrol sockets whose session ended.
- ``heap`` (per node): a full collection every ``gc_full_minutes``, the frozen objects
  too (supervision/heap.py); nothing when this process does not tune its collector.
- ``audit-checkpoint`` (per node): anchors the chain's head in this node's own witness
  file (each node's witness covers the whole chain; a take-over leaves no gap in it).
- ``retention`` (shared): purges look-ins, checks, alerts and audit entries older than
  ``retention_days``, after a signed purge checkpoint (supervision/retention.py). Two
  purgers would sign two checkpoints of one boundary and delete the same rows; each
  batch is its own transaction, so a run cut short (leadership lost) is finished by the
  next. Every 6 hours, the first 10 minutes after the start; the boundary moves once a day.
- ``rollup`` (shared): writes the period report's figures of each night that has ended
  for good (supervision/rollup.py), and again for one changed since. Two at once would
  be correct (each night is counted under its row's lock) but would wait on each other.
  Every 15 minutes.

A new job that changes rows every node sees is shared (``self._shared``); one that acts on
this process's sockets or files is per node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from supervision import audit_anchor, heap, planning, push, retention, rollup, webhook
from supervision.auth import live_sessions
from supervision.cameras import push_switched
from supervision.leadership import Leadership
from supervision.runtime import Runtime
from supervision.sweep import next_deadline, redeliver, sweep

log = logging.getLogger("supervision.scheduler")


class NightScheduler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.started_at = datetime.now(UTC)
        self._sender: asyncio.Task[None] | None = None
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        s = rt.settings
        self.leadership = Leadership(
            s.database_url, retry_seconds=s.leader_retry_seconds,
            check_seconds=s.leader_check_seconds, on_lead=self._plan_now,
            # how pg_stat_activity names the lock's holder: which node leads
            name=f"nattillsyn {socket.gethostname()[:24]}:{s.port} pid {os.getpid()}")

    @property
    def leading(self) -> bool:
        """This node runs the shared duties now."""
        return self.leadership.leading

    async def plan(self) -> None:
        async with self.rt.write() as db:
            made = await planning.plan_all(db)
        if made:
            log.info("planned %d checks", made)

    async def push_plans(self) -> None:
        # a plan version whose first night has begun goes to its camera now, not at the
        # camera's next reconnect (else that night's look-ins would be refused)
        await push_switched(self.rt)

    async def sweep(self) -> None:
        began = time.monotonic()
        # the offline grace counts from this node's start or its take-over, the later
        await sweep(self.rt, started_at=max(self.started_at, self.leadership.since))
        took = time.monotonic() - began
        if took > 1.0:  # windows open late by this much: worth knowing
            log.warning("the sweep took %.1f s", took)
        # and again at the next deadline, if it comes before the next turn
        due = await next_deadline(self.rt, datetime.now(UTC))
        job = self.scheduler.get_job("sweep") if self.scheduler.running else None
        if due is not None and job is not None and job.next_run_time is not None \
                and due < job.next_run_time:
            job.modify(next_run_time=due)

    async def redeliver(self) -> None:
        await redeliver(self.rt)

    async def deliver_webhooks(self) -> None:
        await webhook.deliver_due(self.rt.database, self.rt.settings)

    async def deliver_pushes(self) -> None:
        await push.run(self.rt.database, self.rt.settings)

    async def _keep_sending(self) -> None:
        """The push sender, while this node leads: tried every ``push_poll_seconds`` on a
        node that does not lead (so it starts within that of a take-over), and started
        again after a failure (the database went away) as a job would be at its next run."""
        wait = self.rt.settings.push_poll_seconds
        while True:
            try:
                await self.leadership.run(self.deliver_pushes)
            except Exception:
                log.exception("the push sender failed; it starts again in %.0f s", wait)
            await asyncio.sleep(wait)

    async def repeat_pushes(self) -> None:
        await push.repeat_due(self.rt.database, self.rt.settings)

    async def recheck_sockets(self) -> None:
        """Close patrol sockets whose session ended elsewhere (the CLI disabled the user or
        changed its role) or expired: one query for all open sockets' sessions."""
        asked = self.rt.patrol.session_ids()
        if asked:
            async with self.rt.read() as db:
                live = await live_sessions(db, asked)
            self.rt.patrol.keep_live(asked, live)

    async def collect(self) -> None:
        heap.full()

    async def checkpoint_audit(self) -> None:
        """Anchor the audit chain's head outside the database, when it moved."""
        await audit_anchor.anchor(self.rt.database, self.rt.settings, "interval",
                                  only_if_moved=True)

    async def purge(self) -> None:
        """Purge what is older than the retention period (supervision/retention.py)."""
        done = await retention.run(self.rt.database, self.rt.settings, self.rt.key)
        if done.deleted:
            log.info("retention: deleted %s", done.deleted)

    async def roll_up(self) -> None:
        """Roll up the nights that have ended for good (supervision/rollup.py)."""
        s = self.rt.settings
        nights = await rollup.roll_up(self.rt.database, late_minutes=s.report_late_minutes,
                                      grace=timedelta(hours=s.report_rollup_grace_hours))
        if nights:
            log.info("rolled up %d nights, %s to %s", len(nights), nights[0], nights[-1])

    def _shared(self, duty: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """``duty`` as a job that runs only while this node leads (checked at every run;
        a run in progress is stopped the moment leadership is lost)."""
        async def job() -> None:
            await self.leadership.run(duty)
        job.__name__ = job.__qualname__ = getattr(duty, "__name__", "duty")
        return job

    def _plan_now(self) -> None:
        """A node that has just taken over plans at once rather than at its next turn."""
        if self.scheduler.running and self.scheduler.get_job("plan") is not None:
            self.scheduler.modify_job("plan", next_run_time=datetime.now(UTC))

    async def start(self) -> None:
        await self.leadership.start()
        await self.leadership.run(self.plan)
        await self.leadership.run(self.push_plans)
        await self.leadership.run(self.sweep)
        s = self.rt.settings
        opts = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 60}
        self.scheduler.add_job(self._shared(self.plan), "interval",
                               minutes=s.planning_minutes, id="plan", **opts)
        self.scheduler.add_job(self._shared(self.push_plans), "interval",
                               minutes=s.planning_minutes, id="push-plans", **opts)
        self.scheduler.add_job(self._shared(self.sweep), "interval", seconds=s.sweep_seconds,
                               id="sweep", **opts)
        self.scheduler.add_job(self.redeliver, "interval", seconds=s.alert_resend_seconds,
                               id="redeliver", **opts)
        self.scheduler.add_job(self._shared(self.repeat_pushes), "interval",
                               seconds=min(10.0, s.push_repeat_seconds / 2),
                               id="push-repeat", **opts)
        self.scheduler.add_job(self.recheck_sockets, "interval",
                               seconds=s.socket_recheck_seconds, id="sockets", **opts)
        self.scheduler.add_job(self.collect, "interval", minutes=s.gc_full_minutes, id="heap",
                               **opts)
        self.scheduler.add_job(self.checkpoint_audit, "interval",
                               minutes=s.audit_checkpoint_minutes, id="audit-checkpoint", **opts)
        self.scheduler.add_job(self._shared(self.roll_up), "interval", minutes=15, id="rollup",
                               **opts)
        self.scheduler.add_job(self._shared(self.purge), "interval", hours=6, id="retention",
                               next_run_time=datetime.now(UTC) + timedelta(minutes=10),
                               **opts)
        if s.webhook_on:
            self.scheduler.add_job(self._shared(self.deliver_webhooks), "interval",
                                   seconds=s.webhook_poll_seconds, id="webhook", **opts)
        self.scheduler.start()
        self._sender = asyncio.create_task(self._keep_sending(), name="push-sender")

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender  # a round's record is finished first (push._run)
            self._sender = None
        await self.leadership.stop()
