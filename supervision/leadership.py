"""Leadership: which node runs the duties that act on the whole database.

Several nodes may serve one PostgreSQL database. The shared duties (planning, the sweep
with its escalations, the webhook outbox: see supervision/scheduler.py for which and why)
run on one node at a time, the leader: the node whose own connection holds a PostgreSQL
session advisory lock (``LEADER_LOCK``). The lock belongs to that connection's session, so
it goes with the leader: a process that dies, even by SIGKILL, closes its socket and
PostgreSQL releases the lock at once. The other nodes try to take it every
``leader_retry_seconds``, so one of them leads within that.

The connection is a dedicated one, outside the pool (a pooled connection would carry the
lock to whoever borrowed it next), in autocommit (never idle in a transaction), and named
in ``pg_stat_activity`` after this node. The leader learns that it lost the connection at
once when the server closes it (the driver's termination callback, where it has one) and
within ``leader_check_seconds`` otherwise (a ping with a deadline). Either way its duties
stop at once: the running ones are cancelled (their transactions roll back) and no new one
starts. A duty that overlaps a take-over anyway (a network partition: the old leader's
ping has not yet failed) cannot double a check or an alert, since every such change is a
guarded compare-and-swap (check_rows.move, alerts); at worst a webhook row is POSTed
twice, which the receivers' de-duplication by delivery id absorbs.

SQLite: one node by definition; it always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger("supervision.leadership")

#: the PostgreSQL session advisory lock whose holder leads ("LEAD"); advisory locks are
#: per database, so services on separate databases of one server do not meet
LEADER_LOCK = 0x4C454144
#: a ping, connect or lock attempt that takes longer than this counts as failed
DEADLINE_SECONDS = 5.0

Duty = Callable[[], Awaitable[None]]


class Leadership:
    """Whether this node leads, kept true only while its lock connection is alive."""

    def __init__(self, database_url: str, *, name: str, retry_seconds: float,
                 check_seconds: float, on_lead: Callable[[], None] | None = None) -> None:
        shared = make_url(database_url).get_backend_name() == "postgresql"
        self._engine: AsyncEngine | None = (
            create_async_engine(database_url, poolclass=NullPool) if shared else None)
        self._name = name[:63]  # PostgreSQL's limit for application_name
        self._retry = retry_seconds
        self._check = check_seconds
        self._on_lead = on_lead
        self._leading = not shared
        #: when this node last began to lead (a take-over: the sweep's offline grace counts
        #: from here, since the cameras of a dead leader's node are only now redialling)
        self.since: datetime = datetime.now(UTC)
        self._conn: AsyncConnection | None = None
        self._generation = 0  # which connection a termination callback is about
        self._duties: set[asyncio.Future[None]] = set()
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def leading(self) -> bool:
        """This node runs the shared duties now (for readiness checks and the scheduler)."""
        return self._leading

    async def start(self) -> None:
        """The first attempt at once (a lone node leads from its first duty), then a
        watcher: the leader pings its lock connection, the others retry the lock."""
        if self._engine is None:
            return
        await self._attempt()
        self._task = asyncio.create_task(self._watch(), name="leadership")

    async def stop(self) -> None:
        """Stop the duties and release the lock now, so another node need not wait for
        this process to exit."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._engine is None:
            return
        self._drop("shutting down", logging.INFO)
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(self._release(conn), DEADLINE_SECONDS)
            except Exception:
                await _discard(conn)
        await self._engine.dispose()

    async def run(self, duty: Duty) -> bool:
        """Run ``duty`` if this node leads; it is cancelled the moment leadership is lost.
        True when it ran to its end."""
        if not self._leading:
            return False
        task = asyncio.ensure_future(duty())
        self._duties.add(task)
        try:
            await task
            return True
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                raise  # the caller itself is being cancelled (shutdown)
            return False  # leadership lost: the duty was stopped
        finally:
            self._duties.discard(task)

    # --- the lock ---------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            try:
                await self._step()
            except Exception:  # the watcher must outlive any one failure
                log.exception("leadership: unexpected failure")
                self._drop("an unexpected failure")
                await self._close()
                await asyncio.sleep(self._retry)

    async def _step(self) -> None:
        if not self._leading:
            await asyncio.sleep(self._retry)
            await self._attempt()
            return
        with contextlib.suppress(TimeoutError):  # woken early by a lost connection
            await asyncio.wait_for(self._lost.wait(), self._check)
        if self._leading:
            try:
                await asyncio.wait_for(self._ping(), DEADLINE_SECONDS)
            except Exception as exc:
                self._drop(f"its lock connection failed: {exc!r}")
        if not self._leading:
            await self._close()

    async def _attempt(self) -> None:
        try:
            if self._conn is None:
                self._conn = await asyncio.wait_for(self._connect(), DEADLINE_SECONDS)
            got = await asyncio.wait_for(self._conn.scalar(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK}), DEADLINE_SECONDS)
            if got:
                await self._notice_loss(self._conn)
        except Exception as exc:
            log.warning("leadership: cannot ask the database (%r); trying again in %.0f s",
                        exc, self._retry)
            await self._close()  # if the lock was had, ending the session gives it back
            return
        if not got:
            return
        self._lost.clear()
        self._leading = True
        self.since = datetime.now(UTC)
        log.info("this node leads: it runs the shared duties (%s)", self._name)
        if self._on_lead is not None:
            try:
                self._on_lead()
            except Exception:
                log.exception("leadership: the on-lead callback failed")

    async def _connect(self) -> AsyncConnection:
        assert self._engine is not None
        conn = await self._engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("SELECT set_config('application_name', :n, false)"),
                               {"n": self._name})
        except BaseException:
            await _discard(conn)
            raise
        return conn

    async def _notice_loss(self, conn: AsyncConnection) -> None:
        """Learn at once when the server closes the connection (asyncpg), not at the
        next ping."""
        self._generation += 1
        generation = self._generation
        raw = await conn.get_raw_connection()
        listen = getattr(raw.driver_connection, "add_termination_listener", None)
        if listen is not None:
            listen(lambda _conn: self._drop("the database closed its lock connection")
                   if generation == self._generation else None)

    async def _ping(self) -> None:
        assert self._conn is not None
        await self._conn.execute(text("SELECT 1"))

    def _drop(self, reason: str, level: int = logging.WARNING) -> None:
        """Stop leading: no new duty starts, the running ones are cancelled."""
        if not self._leading:
            return
        self._leading = False
        self._generation += 1
        for duty in list(self._duties):
            duty.cancel()
        self._lost.set()
        log.log(level, "this node no longer leads (%s); its shared duties stopped", reason)

    async def _release(self, conn: AsyncConnection) -> None:
        await conn.execute(text("SELECT pg_advisory_unlock_all()"))
        await conn.close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _discard(conn)


async def _discard(conn: AsyncConnection) -> None:
    """Close a connection that may be broken: ending its session is what frees the lock."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.invalidate(), DEADLINE_SECONDS)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), DEADLINE_SECONDS)
