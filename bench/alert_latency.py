"""Alert fan-out latency: from the outcome request to each connected patrol client.

A real service process on SQLite, 100 extra recipients without cameras whose checks are
open now, N patrol WebSocket clients in this one asyncio process (one shared patrol login).
Staff record Technical failure on each check (with no camera no picture can be had, so
that is the outcome the service accepts; it sends the patrol exactly as Needs help does),
sequentially by default (--concurrency raises that). For every alert and every
client: receive time minus the time the outcome POST was sent, matched by the alert's check.
Messages are stored raw on receipt and parsed afterwards, to keep the clients' own CPU use
out of the measured path as far as possible.

Last line: clients=N alerts=N p50_ms=N p99_ms=N lost=N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import websockets

import schedules
from bench.figures import print_latencies
from supervision.db import make_engine, make_sessionmaker
from supervision.demo import demo_plan, record_consents
from supervision.models import Plan, Recipient
from tests.harness import Service, make_service
from tests.people import Person

T = TypeVar("T")


async def seed_recipients(database_url: str, n: int) -> None:
    """n recipients, each with one check in two minutes: open as soon as the sweep runs."""
    engine = make_engine(database_url)
    try:
        now = datetime.now(UTC)
        async with make_sessionmaker(engine)() as db, db.begin():
            for i in range(n):
                recipient = Recipient(name=f"Bench {i:03d}", address=f"Benchgatan {i}",
                                      access_info="-", unit="Bench")
                db.add(recipient)
                await db.flush()
                data = demo_plan(now, [2], schedules.DEFAULT_TZ)
                schedules.parse_plan(data)
                db.add(Plan(recipient_id=recipient.id, version=1, data=data, created_at=now,
                            created_by="bench"))
                await record_consents(db, [recipient], now, actor="bench")
    finally:
        await engine.dispose()


class Client:
    """One patrol socket; keeps (receive time, raw text) of everything after the snapshot."""

    def __init__(self) -> None:
        self.got: list[tuple[float, str]] = []
        self.ready = asyncio.Event()

    async def run(self, uri: str, cookie: str, stop: asyncio.Event) -> None:
        origin = uri.replace("ws://", "http://", 1).split("/ws/")[0]  # the page's own
        async with websockets.connect(uri, additional_headers={"Cookie": cookie},
                                      origin=origin, max_size=None,
                                      ping_interval=None) as ws:
            await ws.recv()  # the snapshot
            self.ready.set()
            reader = asyncio.ensure_future(self._read(ws))
            await stop.wait()
            reader.cancel()

    async def _read(self, ws: websockets.ClientConnection) -> None:
        append, clock = self.got.append, time.perf_counter
        async for text in ws:
            append((clock(), str(text)))


async def run(svc: Service, n_clients: int, n_alerts: int, concurrency: int,
              deadline_s: float) -> tuple[list[float], int]:
    staff = Person(svc.url, "natt")
    patrol = Person(svc.url, "patrull")
    end = time.monotonic() + 60
    while True:
        targets = [c["id"] for c in staff.rounds()
                   if c["state"] == "open" and c["recipient"].startswith("Bench")]
        if len(targets) >= n_alerts or time.monotonic() > end:
            break
        await asyncio.sleep(0.3)
    targets = targets[:n_alerts]
    if len(targets) < n_alerts:
        raise SystemExit(f"only {len(targets)} open checks")
    cookie = "; ".join(f"{k}={v}" for k, v in patrol.http.cookies.items())
    uri = svc.url.replace("http://", "ws://") + "/ws/patrol"
    stop = asyncio.Event()
    clients = [Client() for _ in range(n_clients)]
    tasks = []
    for i in range(0, n_clients, 50):  # connect in batches: the listen backlog is finite
        batch = clients[i:i + 50]
        tasks += [asyncio.ensure_future(c.run(uri, cookie, stop)) for c in batch]
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in batch)), 30)
    print(f"{n_clients} patrol clients connected; {len(targets)} open checks", flush=True)

    sent: dict[int, float] = {}
    cookies = dict(staff.http.cookies.items())
    async with httpx.AsyncClient(base_url=svc.url, cookies=cookies, timeout=30,
                                 headers={"X-CSRF-Token": staff.csrf}) as http:
        await http.get("/healthz")  # warm the connection
        queue: asyncio.Queue[int] = asyncio.Queue()
        for check_id in targets:
            queue.put_nowait(check_id)

        async def worker() -> None:
            while not queue.empty():
                check_id = queue.get_nowait()
                sent[check_id] = time.perf_counter()
                reply = await http.post(f"/api/checks/{check_id}/outcome",
                                        json={"outcome": "technical-failure"})
                if reply.status_code != 200:
                    raise SystemExit(f"outcome {check_id}: {reply.status_code} {reply.text}")

        started, cpu_before = time.perf_counter(), _cpu_seconds(svc)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        took = time.perf_counter() - started
        print(f"{len(targets)} outcomes recorded in {took:.2f} s", flush=True)
    limit = time.perf_counter() + deadline_s
    while time.perf_counter() < limit:
        # parse only once every client has at least as many messages as alerts were sent
        if all(len(c.got) >= len(sent) for c in clients) and all(
                _seen(c, sent) >= len(sent) for c in clients):
            break
        await asyncio.sleep(0.5)
    cpu = _cpu_seconds(svc) - cpu_before
    print(f"service CPU {cpu * 1000 / len(sent):.1f} ms per alert (until all were received, "
          f"sweeps included)", flush=True)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)

    latencies: list[float] = []
    for c in clients:
        first: dict[int, float] = {}
        for at, text in c.got:
            msg = json.loads(text)
            if msg.get("type") != "alert":
                continue
            check = msg["alert"]["check"]
            if check in sent and check not in first and at - sent[check] <= deadline_s:
                first[check] = at
        latencies += [(at - sent[check]) * 1000 for check, at in first.items()]
    lost = n_clients * len(sent) - len(latencies)
    return latencies, lost


def _cpu_seconds(svc: Service) -> float:
    """User + system CPU of the service process so far (Linux /proc)."""
    assert svc.proc is not None
    fields = Path(f"/proc/{svc.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _seen(client: Client, sent: dict[int, float]) -> int:
    checks = set()
    for _, text in client.got:
        msg = json.loads(text)
        if msg.get("type") == "alert":
            checks.add(msg["alert"]["check"])
    return len(checks & sent.keys())


def _run_loop(main: Coroutine[Any, Any, T]) -> T:
    """uvloop when there is one (as the service uses): less client overhead in the figures."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--alerts", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1,
                        help="outcome requests in flight at once (1 = sequential)")
    parser.add_argument("--deadline", type=float, default=10.0,
                        help="seconds after which an alert not received counts as lost")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # agents never connect here: a long grace keeps the sweep from dispatching
        # technical failures for cameras that are offline by design
        svc = make_service(Path(tmp) / "svc", agent_offline_seconds="3600")
        asyncio.run(seed_recipients(svc.env["SUPERVISION_DATABASE_URL"], args.alerts))
        svc.start()
        try:
            latencies, lost = _run_loop(run(svc, args.clients, args.alerts, args.concurrency,
                                            args.deadline))
        finally:
            svc.stop()
    print_latencies(latencies, f"clients={args.clients} alerts={args.alerts}", lost)


if __name__ == "__main__":
    main()
