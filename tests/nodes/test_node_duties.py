"""Two nodes on one PostgreSQL database: exactly one runs the shared duties. Hundreds of
checks whose windows open together end once, with one alert each and one webhook delivery
per event; when the leading node is SIGKILLed, the other takes over within 10 s and
nothing is doubled."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import schedules
from supervision.db import make_engine, make_sessionmaker
from supervision.demo import demo_plan, record_consents
from supervision.leadership import LEADER_LOCK
from supervision.models import Plan, Recipient
from tests.harness import Service, eventually, make_service
from tests.nodes.conftest import extra_node, sql, stop_all
from tests.webhook.conftest import SECRET, Receiver, signature_ok

UNIT = "Nodes"


def seed_recipients(database_url: str, first: int, n: int) -> None:
    """n recipients without cameras, each with one check whose window is open now (all the
    same minute): the planner makes their checks, the sweep finds them all due at once."""
    async def run() -> None:
        engine = make_engine(database_url)
        try:
            now = datetime.now(UTC)
            data = demo_plan(now, [2], schedules.DEFAULT_TZ)
            schedules.parse_plan(data)
            async with make_sessionmaker(engine)() as db, db.begin():
                people = [Recipient(name=f"Node test {i:03d}", address=f"Nodgatan {i}",
                                    access_info="-", unit=UNIT) for i in range(first, first + n)]
                db.add_all(people)
                await db.flush()
                db.add_all(Plan(recipient_id=r.id, version=1, data=data, created_at=now,
                                created_by="test") for r in people)
                await record_consents(db, people, now)
        finally:
            await engine.dispose()

    asyncio.run(run())


def alerts(url: str) -> tuple[int, int, int]:
    """(checks ended, alerts, checks with an alert) of the test's recipients (tomorrow
    night's checks are planned too, and stay so)."""
    row = sql(url, "SELECT (SELECT count(*) FROM checks c JOIN recipients r ON r.id = "
                   "c.recipient_id WHERE r.unit = $1 AND c.state <> 'planned'), "
                   "count(a.id), count(DISTINCT a.check_id) "
                   "FROM alerts a JOIN recipients r ON r.id = a.recipient_id WHERE r.unit = $1",
              UNIT)[0]
    return int(row[0]), int(row[1]), int(row[2])


def leader_port(url: str) -> int | None:
    """The port of the node whose lock connection holds the leader lock (its
    application_name names it), or None."""
    rows = sql(url, "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                    "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                    "AND l.objid = $1", LEADER_LOCK)
    if not rows:
        return None
    assert len(rows) == 1, rows
    return int(str(rows[0][0]).split(":")[1].split()[0])


def deliveries_done(url: str, receiver: Receiver) -> int:
    """Outbox rows, once every one is delivered (0 before)."""
    rows, delivered = sql(url, "SELECT count(*), count(delivered_at) FROM webhook_deliveries")[0]
    return int(rows) if rows and rows == delivered and len(receiver.got) >= rows else 0


def posted_ids(receiver: Receiver) -> Counter[str]:
    return Counter(got.headers["x-nattillsyn-delivery"] for got in receiver.got)


def test_two_nodes_one_alert_per_check_one_post_per_event_and_take_over(
        pg_url: str, tmp_path: Path) -> None:
    receiver = Receiver().start()
    nodes: list[Service] = []
    try:
        a = make_service(tmp_path / "a", pg_url, webhook_url=receiver.url,
                         webhook_secret=SECRET, webhook_poll_seconds="0.2",
                         planning_minutes="0.05", agent_offline_seconds="2")
        a.start()
        nodes.append(a)
        b = extra_node(a, tmp_path / "b", key_from=a)
        b.start()
        nodes.append(b)
        time.sleep(2.5)  # past both nodes' start-up grace for cameras to reconnect

        seed_recipients(pg_url, 0, 300)  # no cameras: each check is dispatched at its window
        eventually(lambda: alerts(pg_url)[1] >= 300, 40, "300 alerts")
        n = eventually(lambda: deliveries_done(pg_url, receiver), 30, "all deliveries")
        time.sleep(2)  # several more sweeps and webhook runs: anything doubled would show
        assert alerts(pg_url) == (300, 300, 300), "one alert per check, each check once"
        events = sql(pg_url, "SELECT event, count(*) FROM webhook_deliveries GROUP BY event")
        assert dict(events) == {"alert.raised": 300}
        assert n == 300
        posted = posted_ids(receiver)
        assert len(posted) == 300 and max(posted.values()) == 1, (
            f"{sum(posted.values())} POSTs for {len(posted)} deliveries")
        assert all(signature_ok(SECRET, got) for got in receiver.got[:5])

        leader = leader_port(pg_url)
        assert leader in (a.port, b.port), leader
        dying, survivor = (a, b) if leader == a.port else (b, a)
        dying.kill()  # SIGKILL: the lock goes with its connection
        killed = time.monotonic()
        eventually(lambda: leader_port(pg_url) == survivor.port, 10, "take-over")
        took = time.monotonic() - killed
        assert took < 10, took
        assert "this node leads" in survivor.log.read_text()

        seed_recipients(pg_url, 300, 20)  # windows that open after the take-over
        eventually(lambda: alerts(pg_url)[1] >= 320, 20, "the survivor's alerts")
        eventually(lambda: deliveries_done(pg_url, receiver) == 320, 20, "their deliveries")
        time.sleep(1.5)
        assert alerts(pg_url) == (320, 320, 320)
        posted = posted_ids(receiver)
        assert len(posted) == 320 and max(posted.values()) == 1
        for node in (survivor,):
            text = node.log.read_text()
            assert "Traceback" not in text, text[-3000:]
        print(f"take-over after SIGKILL of the leader: {took:.1f} s")
    finally:
        stop_all(nodes)
        receiver.stop()
