"""Several nodes on one PostgreSQL: idle cost of camera links, the sweep at a cliff,
cross-node alert latency, and the take-over after SIGKILL of the leader.

N real `supervision serve` processes share a fresh PostgreSQL database and one server key.
A simulated fleet of agents speaks the real link protocol (challenge, Ed25519-signed auth,
plan acknowledgements, a heartbeat every ``--heartbeat`` seconds, the real agent's default)
from this one asyncio process, spread over the nodes, each knowing every node's address
and redialling the next one with backoff when its node goes. Patrol sockets are spread
over the nodes too, from a process of their own (so that the agents' event loop does not
hold up their receive times).

1. Idle: every agent linked; each node's CPU and RSS over ``--idle`` seconds.
2. The cliff: every recipient's check window opens at the same minute (plus ``--no-camera``
   recipients without a camera, whose checks the sweep dispatches as camera-offline). Lag =
   when the check was first seen open (or dispatched) minus its opening time, polled from
   the database every 50 ms.
3. Alerts: each dispatched alert must reach every patrol socket once (new); then the patrol
   acknowledges each through the nodes in turn, and the time from that request to each
   socket's message is the cross-node alert latency. Duplicates and losses are counted per
   socket, per alert and state (re-sends flagged ``repeat`` do not count).
4. Take-over: SIGKILL of the leader; seconds until another node holds the leader lock, and
   until every agent is linked again to a surviving node.

Last line: nodes=N agents=N rss_mb_per_1k_links=N cpu_pct_per_1k_links=N sweep_lag_p99_ms=N
alert_p99_ms=N duplicates=N lost=N takeover_s=N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
import websockets
from sqlalchemy import select

import schedules
from bench.figures import percentile
from camera_agent.backoff import backoff
from camera_agent.identity import Identity
from camera_agent.protocol import (
    AUTH,
    HEARTBEAT,
    PLAN,
    PLAN_ACK,
    encode_message,
    link_challenge_message,
)
from supervision.auth import hash_password
from supervision.db import make_engine, make_sessionmaker, migrate
from supervision.demo import demo_plan, record_consents
from supervision.leadership import LEADER_LOCK
from supervision.models import Camera, Plan, Recipient, User
from tests.harness import BIN, free_port, wait_http
from tests.people import Person

PG = os.environ.get("SUPERVISION_TEST_POSTGRES_URL",
                    "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def raw_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


# --- the nodes ---------------------------------------------------------------------------


class Node:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.port = free_port()
        self.env = dict(env, SUPERVISION_PORT=str(self.port),
                        SUPERVISION_PUBLIC_URL=f"http://127.0.0.1:{self.port}",
                        SUPERVISION_DATA_DIR=str(root / "data"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "service.log").open("ab")
        self.proc = subprocess.Popen([str(BIN / "supervision"), "serve"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        wait_http(self.url + "/healthz", 60, self.proc)

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# --- the world -----------------------------------------------------------------------------


async def seed(url: str, agents: int, no_camera: int) -> list[tuple[str, Identity]]:
    """Users, recipients (no plans yet), and enrolled cameras whose keys this process
    holds."""
    engine = make_engine(url)
    try:
        await migrate(engine)
        fleet = [(f"cam-{i:05d}", Identity.generate()) for i in range(agents)]
        async with make_sessionmaker(engine)() as db, db.begin():
            for name, role in (("patrull", "patrol"), ("natt", "staff")):
                db.add(User(username=name, display_name=name, role=role, shift_lead=False,
                            password_hash=await hash_password(name)))
            people = [Recipient(name=f"Nod {i:05d}", address=f"Nodgatan {i}",
                                access_info="1234", unit="Bench")
                      for i in range(agents + no_camera)]
            db.add_all(people)
            await db.flush()
            db.add_all(Camera(id=cid, recipient_id=people[i].id,
                              public_key=ident.public_key_b64) for i, (cid, ident)
                       in enumerate(fleet))
        return fleet
    finally:
        await engine.dispose()


async def add_plans(url: str, offset: int) -> None:
    """Every recipient a plan with one check ``offset`` minutes from now (whole minutes):
    its window opens 15 minutes before, at the same minute for all: the cliff."""
    engine = make_engine(url)
    try:
        now = datetime.now(UTC)
        data = demo_plan(now, [offset], schedules.DEFAULT_TZ)
        schedules.parse_plan(data)
        async with make_sessionmaker(engine)() as db, db.begin():
            people = (await db.execute(select(Recipient))).scalars().all()
            db.add_all(Plan(recipient_id=r.id, version=1, data=data, created_at=now,
                            created_by="bench") for r in people)
            await record_consents(db, people, now, actor="bench")
    finally:
        await engine.dispose()


class Agent:
    """One simulated camera agent on the real link protocol."""

    __slots__ = ("camera_id", "identity", "linked", "links", "node", "urls")

    def __init__(self, camera_id: str, identity: Identity, urls: list[str]) -> None:
        self.camera_id = camera_id
        self.identity = identity
        self.urls = urls
        self.node = 0
        self.linked = asyncio.Event()
        self.links = 0

    async def run(self, heartbeat: float, first: int) -> None:
        self.node = first
        failures = 0
        while True:
            url = self.urls[self.node % len(self.urls)]
            try:
                async with websockets.connect(url, open_timeout=20, ping_interval=None,
                                              close_timeout=1) as ws:
                    challenge = json.loads(await ws.recv())
                    await ws.send(encode_message(AUTH, camera=self.camera_id, version="bench",
                                                 signature=self.identity.sign(
                                                     link_challenge_message(
                                                         self.camera_id,
                                                         challenge["nonce"]))))
                    json.loads(await ws.recv())  # welcome
                    self.links += 1
                    self.linked.set()
                    failures = 0
                    beat = asyncio.ensure_future(self._beat(ws, heartbeat))
                    try:
                        async for raw in ws:
                            msg = json.loads(raw)
                            if msg.get("type") == PLAN:
                                await ws.send(encode_message(PLAN_ACK,
                                                             version=msg["version"]))
                    finally:
                        beat.cancel()
            except (OSError, TimeoutError, websockets.WebSocketException, ValueError):
                pass
            self.linked.clear()
            failures += 1
            self.node += 1  # the next address
            await asyncio.sleep(backoff(failures, 0.5, 5.0))

    async def _beat(self, ws: Any, every: float) -> None:
        await asyncio.sleep(random.uniform(0, every))  # spread, as real agents are
        while True:
            await ws.send(encode_message(HEARTBEAT, health={"camera_present": True,
                                                            "version": "bench"}))
            await asyncio.sleep(every)


class Patrol:
    """One patrol socket: (receive time, message) of everything after the snapshot."""

    def __init__(self) -> None:
        self.got: list[tuple[float, str]] = []
        self.ready = asyncio.Event()

    async def run(self, url: str, cookie: str) -> None:
        uri = url.replace("http://", "ws://") + "/ws/patrol"
        async with websockets.connect(uri, additional_headers={"Cookie": cookie},
                                      origin=url, max_size=None,
                                      ping_interval=None) as ws:
            await ws.recv()
            self.ready.set()
            append, clock = self.got.append, time.time
            async for text in ws:
                append((clock(), str(text)))


async def patrol_worker(urls: list[str], cookie: str, count: int) -> None:
    """The patrol sockets in a process of their own (``--patrol-worker``), so that their
    receive times are not held up by the 5,000 simulated agents' event loop: "ready" on
    stdout once every socket has its snapshot, then, when stdin closes, one JSON line per
    socket with what it received."""
    patrols = [Patrol() for _ in range(count)]
    tasks = []
    for i in range(0, count, 50):
        batch = patrols[i:i + 50]
        tasks += [asyncio.ensure_future(p.run(urls[(i + k) % len(urls)], cookie))
                  for k, p in enumerate(batch)]
        await asyncio.wait_for(asyncio.gather(*(p.ready.wait() for p in batch)), 60)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()
    for patrol in patrols:
        print(json.dumps(patrol.got), flush=True)


async def wait_for(what: str, check: Any, timeout: float, every: float = 0.2) -> float:
    began = time.monotonic()
    while not await check():
        if time.monotonic() - began > timeout:
            raise SystemExit(f"{what}: not within {timeout} s")
        await asyncio.sleep(every)
    return time.monotonic() - began


# --- the run -------------------------------------------------------------------------------


async def take_over(db: asyncpg.Connection, nodes: list[Node]) -> tuple[float, int]:
    """SIGKILL of the leader: seconds until another node holds the lock (the agents'
    relinking printed), and alerts doubled."""
    holder = await db.fetchval(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON "
        "a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objid = $1",
        LEADER_LOCK)
    port = int(str(holder).split(":")[1].split()[0])
    leader = next(n for n in nodes if n.port == port)
    leader.stop(signal.SIGKILL)

    async def taken() -> bool:
        now_holder = await db.fetchval(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON "
            "a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objid = $1",
            LEADER_LOCK)
        return now_holder is not None and now_holder != holder
    takeover = await wait_for("take-over", taken, 30, 0.1)
    survivors = [str(n.port) for n in nodes if n is not leader]

    async def relinked() -> bool:
        rows = await db.fetch("SELECT link_node FROM cameras")
        return all(r["link_node"] and r["link_node"].split(":")[1] in survivors
                   for r in rows)
    relink = await wait_for("agents relinked", relinked, 120, 0.5) + takeover
    doubled = int(await db.fetchval("SELECT count(*) - count(DISTINCT check_id) FROM alerts"))
    print(f"take-over {takeover:.1f} s; every agent relinked {relink:.1f} s after the "
          f"SIGKILL; alerts doubled: {doubled}", flush=True)
    return takeover, doubled


async def main(args: argparse.Namespace) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    name = f"nt_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(raw_url(PG))
    await admin.execute(f"CREATE DATABASE {name}")
    url = PG.rsplit("/", 1)[0] + "/" + name
    root = Path(tempfile.mkdtemp(prefix="nt-nodes-"))
    nodes: list[Node] = []
    tasks: list[asyncio.Task[Any]] = []
    db: asyncpg.Connection | None = None
    try:
        fleet = await seed(url, args.agents, args.no_camera)
        db = await asyncpg.connect(raw_url(url))
        env = dict(os.environ, SUPERVISION_DATABASE_URL=url, SUPERVISION_SWEEP_SECONDS="5",
                   SUPERVISION_AGENT_OFFLINE_SECONDS="30",
                   SUPERVISION_MAX_CONNECTIONS=str(args.agents + 1000),
                   SUPERVISION_ESCALATE_AFTER_MINUTES="60",
                   SUPERVISION_PLANNING_MINUTES="0.1")  # plans added later are planned soon
        for i in range(args.nodes):
            node = Node(root / f"n{i}", env)
            if i:
                (node.root / "data").mkdir(parents=True)
                shutil.copy2(nodes[0].root / "data" / "server.key", node.root / "data")
            node.start()
            nodes.append(node)
        print(f"{args.nodes} nodes up on {name}", flush=True)
        await asyncio.sleep(2)
        rss_bare = [n.rss_mb() for n in nodes]  # before any link: what links add is the rest

        urls = [n.url.replace("http://", "ws://") + "/ws/agent" for n in nodes]
        agents = [Agent(cid, ident, urls) for cid, ident in fleet]
        began = time.monotonic()
        for i in range(0, len(agents), 200):  # dial in waves: the listen backlog is finite
            for j, agent in enumerate(agents[i:i + 200], start=i):
                tasks.append(asyncio.ensure_future(agent.run(args.heartbeat, j)))
            await asyncio.sleep(0.05)

        async def all_linked() -> bool:
            n = await db.fetchval("SELECT count(*) FROM cameras WHERE link_node IS NOT NULL")
            return bool(n == len(agents))
        await wait_for("every agent linked", all_linked, 300, 0.5)
        print(f"{len(agents)} agents linked in {time.monotonic() - began:.1f} s", flush=True)

        person = Person(nodes[0].url, "patrull")
        cookie = "; ".join(f"{k}={v}" for k, v in person.http.cookies.items())
        worker = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--patrol-worker", "--patrols", str(args.patrols),
            "--cookie", cookie, *[n.url for n in nodes],
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26)
        assert worker.stdout is not None and worker.stdin is not None
        if (await asyncio.wait_for(worker.stdout.readline(), 120)).strip() != b"ready":
            raise SystemExit("the patrol sockets did not connect")
        print(f"{args.patrols} patrol sockets on {len(nodes)} nodes (own process)", flush=True)

        # 1. idle cost
        await asyncio.sleep(args.heartbeat)  # past the linking burst and one heartbeat round
        cpu0 = [n.cpu_seconds() for n in nodes]
        await asyncio.sleep(args.idle)
        cpu_pct = [100 * (n.cpu_seconds() - c) / args.idle for n, c in zip(nodes, cpu0,
                                                                             strict=True)]
        rss = [n.rss_mb() for n in nodes]
        per_node = len(agents) / len(nodes)
        rss_per_1k = max(r - b for r, b in zip(rss, rss_bare, strict=True)) / (per_node / 1000)
        print("idle per node: " + ", ".join(f"{c:.1f}% CPU {r:.0f} MB" for c, r
                                             in zip(cpu_pct, rss, strict=True)), flush=True)

        # 2. the cliff: plans whose windows all open at the minute after the next (demo
        # plans open 15 minutes before their check), planned meanwhile by the leader
        await add_plans(url, 15 + 2)

        async def planned() -> bool:
            n = await db.fetchval("SELECT count(*) FROM checks WHERE state = 'planned'")
            return bool(n >= len(agents) + args.no_camera)
        await wait_for("the night planned", planned, 90, 0.5)
        opens = await db.fetchval("SELECT min(opens_at) FROM checks WHERE state = 'planned'")
        total = await db.fetchval("SELECT count(*) FROM checks WHERE opens_at = $1", opens)
        opens_utc = opens.replace(tzinfo=UTC).timestamp()
        if opens_utc < time.time() + 1:
            raise SystemExit("the windows opened before they were planned")
        print(f"{total} windows open at {opens} (in {opens_utc - time.time():.0f} s)",
              flush=True)
        first_seen: dict[int, float] = {}
        while len(first_seen) < total and time.time() < opens_utc + 60:
            rows = await db.fetch("SELECT id FROM checks WHERE opens_at = $1 AND "
                                  "state <> 'planned'", opens)
            now = time.time()
            for row in rows:
                first_seen.setdefault(row["id"], now)
            await asyncio.sleep(0.05 if time.time() > opens_utc - 1 else 0.5)
        lags = [(t - opens_utc) * 1000 for t in first_seen.values()]
        print(f"cliff: {len(first_seen)}/{total} opened, lag p50 {percentile(lags, .5):.0f} ms "
              f"p99 {percentile(lags, .99):.0f} ms", flush=True)

        # 3. alerts across nodes
        alerts = [r["id"] for r in await db.fetch(
            "SELECT id FROM alerts ORDER BY id")]
        await asyncio.sleep(2)
        patrol_http = [httpx.AsyncClient(base_url=n.url, cookies=dict(person.http.cookies),
                                         headers={"X-CSRF-Token": person.csrf}, timeout=30)
                       for n in nodes]
        sent: dict[int, float] = {}
        for i, alert_id in enumerate(alerts):
            sent[alert_id] = time.time()
            reply = await patrol_http[i % len(nodes)].post(
                f"/api/alerts/{alert_id}/state", json={"state": "acknowledged"})
            if reply.status_code != 200:
                raise SystemExit(f"ack {alert_id}: {reply.status_code} {reply.text}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(3)
        worker.stdin.close()
        received = [json.loads(line) for line in
                    (await asyncio.wait_for(worker.stdout.read(), 120)).splitlines() if line]
        await worker.wait()
        latencies: list[float] = []
        duplicates = lost = 0
        for got in received:
            seen: Counter[tuple[int, str]] = Counter()
            for at, text in got:
                msg = json.loads(text)
                if msg.get("type") != "alert" or msg.get("repeat"):
                    continue
                key = (msg["alert"]["id"], msg["alert"]["state"])
                seen[key] += 1
                if key[1] == "acknowledged" and seen[key] == 1 and key[0] in sent:
                    latencies.append((at - sent[key[0]]) * 1000)
            duplicates += sum(n - 1 for n in seen.values() if n > 1)
            lost += sum(1 for a in alerts for s in ("new", "acknowledged")
                        if seen[(a, s)] == 0)
        print(f"{len(alerts)} alerts x {len(received)} sockets: ack latency p50 "
              f"{percentile(latencies, .5):.0f} ms p99 {percentile(latencies, .99):.0f} ms, "
              f"duplicates {duplicates}, lost {lost}", flush=True)
        for client in patrol_http:
            await client.aclose()

        # 4. take-over (with one node: nothing to take over; the rest is measured)
        takeover = float("nan")
        if len(nodes) > 1:
            takeover, doubled = await take_over(db, nodes)
            duplicates += doubled
        print(f"nodes={len(nodes)} agents={len(agents)} "
              f"rss_mb_per_1k_links={rss_per_1k:.0f} "
              f"cpu_pct_per_1k_links={max(cpu_pct) / (per_node / 1000):.1f} "
              f"sweep_lag_p99_ms={percentile(lags, .99):.0f} "
              f"alert_p99_ms={percentile(latencies, .99):.0f} duplicates={duplicates} "
              f"lost={lost + total - len(first_seen)} takeover_s={takeover:.1f}", flush=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for node in nodes:
            node.stop()
        if db is not None:
            await db.close()
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--patrols", type=int, default=200)
    parser.add_argument("--no-camera", type=int, default=50)
    parser.add_argument("--heartbeat", type=float, default=15.0)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--patrol-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cookie", default="", help=argparse.SUPPRESS)
    parser.add_argument("urls", nargs="*", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.patrol_worker:
        asyncio.run(patrol_worker(parsed.urls, parsed.cookie, parsed.patrols))
    else:
        asyncio.run(main(parsed))
