"""Leadership in-process: one leader per database, take-over when it goes, and duties that
stop the moment its lock connection is lost. SQLite: always the leader."""

from __future__ import annotations

import asyncio
import time

from supervision.leadership import Leadership
from tests.nodes.conftest import asql


def leadership(url: str, name: str, check_seconds: float = 0.2) -> Leadership:
    return Leadership(url, name=name, retry_seconds=0.2, check_seconds=check_seconds)


async def until(condition: object, timeout: float) -> float:
    """Seconds until ``condition()`` held; AssertionError after ``timeout``."""
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_on_sqlite_the_one_node_leads(tmp_path: object) -> None:
    alone = leadership(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite3", "alone")
    await alone.start()
    ran: list[int] = []

    async def duty() -> None:
        ran.append(1)

    assert alone.leading and await alone.run(duty) and ran == [1]
    await alone.stop()


async def test_one_leader_and_a_take_over_when_it_stops(pg_url: str) -> None:
    first, second = leadership(pg_url, "test first"), leadership(pg_url, "test second")
    await first.start()
    await second.start()
    try:
        assert first.leading and not second.leading
        ran: list[str] = []

        async def duty() -> None:
            ran.append("x")

        assert not await second.run(duty) and ran == [], "a node that does not lead skips"
        assert await first.run(duty) and ran == ["x"]
        holders = await asql(pg_url, "SELECT a.application_name FROM pg_locks l JOIN "
                                     "pg_stat_activity a ON a.pid = l.pid WHERE "
                                     "l.locktype = 'advisory' AND l.granted")
        assert holders == [("test first",)]
        await first.stop()  # releases the lock at once
        took = await until(lambda: second.leading, 2)
        assert took < 1, took
    finally:
        await first.stop()
        await second.stop()


async def test_losing_the_lock_connection_stops_the_running_duty_at_once(pg_url: str) -> None:
    # the leader's own ping is far off: only the driver's word that the server closed
    # the connection can stop it in time
    first = leadership(pg_url, "test first", check_seconds=10)
    second = leadership(pg_url, "test second")
    await first.start()
    await second.start()
    try:
        assert first.leading
        started, finished = asyncio.Event(), asyncio.Event()

        async def long_duty() -> None:
            started.set()
            await asyncio.sleep(30)
            finished.set()

        running = asyncio.create_task(first.run(long_duty))
        await started.wait()
        # the server ends the leader's lock session (as when its network or the
        # database drops it): no ping needed to notice
        await asql(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name = 'test first'")
        took = await until(lambda: not first.leading, 2)
        assert took < 0.5, took
        assert await asyncio.wait_for(running, 1) is False, "the duty was stopped"
        assert not finished.is_set()
        await until(lambda: second.leading, 2)
        assert not first.leading
    finally:
        await first.stop()
        await second.stop()
