"""The outbox in-process, on SQLite and PostgreSQL: rows commit with the alert change or not
at all, one alert's events go out in order, and a delivery is given up after the last
attempt, audited and listed as failed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from camera_agent.backoff import backoff
from supervision import audit, dispatch, outcomes, planning, webhook
from supervision.alerts import raise_alert
from supervision.checks import AlertEffect, Outcome, State
from supervision.config import Settings
from supervision.db import Database, make_engine, make_sessionmaker, migrate
from supervision.demo import seed
from supervision.models import Alert, AuditEvent, Check, User, WebhookDelivery
from supervision.runtime import Runtime
from tests.evidence import seen
from tests.webhook.conftest import SECRET, Receiver, signature_ok

MakeRuntime = Callable[..., Runtime]


@pytest.fixture
async def make_rt(database_url: str, tmp_path: Path) -> AsyncIterator[MakeRuntime]:
    """A runtime over a fresh, migrated, demo-seeded database, with the given settings."""
    engine = make_engine(database_url)
    await migrate(engine)
    sessions = make_sessionmaker(engine)
    async with sessions() as db, db.begin():
        await seed(db)
        await planning.plan_all(db)

    def make(**settings: Any) -> Runtime:
        return Runtime.create(
            Settings(database_url=database_url, data_dir=tmp_path, **settings),
            Database(engine, make_sessionmaker(engine)))

    try:
        yield make
    finally:
        await engine.dispose()


async def user(rt: Runtime, username: str) -> User:
    async with rt.read() as db:
        return (await db.execute(select(User).where(User.username == username))).scalar_one()


async def open_a_check(rt: Runtime) -> int:
    async with rt.write() as db:
        check = (await db.execute(select(Check).order_by(Check.due_at).limit(1))).scalar_one()
        check.state = State.OPEN
        return check.id


async def count(rt: Runtime, what: type) -> int:
    async with rt.read() as db:
        return int((await db.execute(select(func.count()).select_from(what))).scalar_one())


async def test_rows_commit_with_the_alert_or_not_at_all(make_rt: MakeRuntime) -> None:
    rt = make_rt(webhook_url="http://127.0.0.1:9/unused", webhook_secret=SECRET)
    check_id = await open_a_check(rt)
    with pytest.raises(RuntimeError):
        async with rt.write() as db:
            check = await db.get(Check, check_id)
            assert check is not None
            await raise_alert(db, check, AlertEffect(priority=1, reason="needs-help"), "test",
                              webhook_on=rt.settings.webhook_on)
            raise RuntimeError("the outcome's transaction fails after the alert was written")
    assert await count(rt, Alert) == 0 and await count(rt, WebhookDelivery) == 0

    natt = await user(rt, "natt")
    await outcomes.record(rt, natt, check_id, Outcome.NEEDS_HELP, await seen(rt, natt, check_id))
    async with rt.read() as db:
        (alert,) = (await db.execute(select(Alert))).scalars().all()
        (row,) = (await db.execute(select(WebhookDelivery))).scalars().all()
    assert (row.alert_id, row.event, row.attempts) == (alert.id, "alert.raised", 0)
    assert webhook.status_of(row) == "pending" and row.next_attempt_at is not None
    assert row.payload["recipient"]["id"] == alert.recipient_id and "note" not in row.payload


async def test_webhook_off_writes_no_rows(make_rt: MakeRuntime) -> None:
    rt = make_rt()  # no webhook_url
    check_id = await open_a_check(rt)
    natt = await user(rt, "natt")
    await outcomes.record(rt, natt, check_id, Outcome.NEEDS_HELP, await seen(rt, natt, check_id))
    assert await count(rt, Alert) == 1 and await count(rt, WebhookDelivery) == 0
    assert await webhook.deliver_due(rt.database, rt.settings) == 0


async def test_given_up_after_the_last_attempt_and_events_stay_in_order(
        make_rt: MakeRuntime, receiver: Receiver) -> None:
    receiver.fail_first, receiver.fail_status = 2, 503
    rt = make_rt(webhook_url=receiver.start().url, webhook_secret=SECRET,
                 webhook_max_attempts=2, webhook_backoff_base_seconds=0.05,
                 webhook_backoff_cap_seconds=0.05)
    natt, check_id = await user(rt, "natt"), await open_a_check(rt)
    _, alert = await outcomes.record(rt, natt, check_id, Outcome.NEEDS_HELP,
                                     await seen(rt, natt, check_id))
    assert alert is not None
    await dispatch.alert_state(rt, await user(rt, "patrull"), alert["id"], "acknowledged", None)

    async def run_until(n: int) -> None:
        for _ in range(100):
            await webhook.deliver_due(rt.database, rt.settings)
            if len(receiver.got) >= n:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{len(receiver.got)} of {n}")

    await run_until(3)
    events = [g.headers["x-nattillsyn-event"] for g in receiver.got]
    # the acknowledgement waited while the alert itself was being retried
    assert events == ["alert.raised", "alert.raised", "alert.acknowledged"]
    assert all(signature_ok(SECRET, g) for g in receiver.got)
    assert json.loads(receiver.got[2].body)["alert"]["state"] == "acknowledged"

    async with rt.read() as db:
        rows = (await db.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)))\
            .scalars().all()
        failed = [e.data for e in (await db.execute(
            select(AuditEvent).where(AuditEvent.kind == "webhook.failed"))).scalars()]
        assert await audit.verify(db) == []
    raised, acked = (webhook.delivery_out(r) for r in rows)
    assert (raised.status, raised.attempts, raised.last_status) == ("failed", 2, 503)
    assert raised.next_attempt_at is None and raised.delivered_at is None
    assert [h.status for h in raised.history] == [503, 503]
    assert raised.history[0].next is not None and raised.history[1].next is None
    assert (acked.status, acked.attempts, acked.last_status) == ("delivered", 1, 200)
    assert failed == [{"delivery": raised.id, "event": "alert.raised", "attempts": 2,
                       "error": raised.last_error}]
    assert await webhook.deliver_due(rt.database, rt.settings) == 0  # nothing left to send
    assert len(receiver.got) == 3


def test_backoff_is_exponential_capped_and_jittered() -> None:
    assert [backoff(n, 2, 300, rnd=1.0) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert backoff(20, 2, 300, rnd=1.0) == 300
    assert backoff(3, 2, 300, rnd=0.0) == 4  # never less than half
