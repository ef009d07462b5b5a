"""Web Push latency: from the staff's outcome request to each push arriving, decrypted.

A real service process on SQLite with 50 extra recipients without cameras whose checks
are open now (as bench/alert_latency.py); N devices subscribed for the patrol user, each
with its own P-256 key pair and auth secret (as a browser makes them), all with endpoints
on one push service played on loopback in a process of its own (aiohttp, keep-alive,
answering 201). Staff record Technical failure on each check, one after another (back to back by
default, or one every ``--interval`` seconds). For every
alert and every device: the arrival time of its push minus the time the outcome POST was
sent. Bodies are stored raw on arrival and decrypted afterwards (http-ece, with the
device's keys), to keep the receiver's CPU out of the measured path; a push that does not
decrypt, or is not the alert's "raised" push, does not count. Lost: (device, alert) pairs
with no push within the deadline.

Last line: devices=N alerts=N p50_ms=N p99_ms=N lost=N
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import http_ece
import httpx

from bench.alert_latency import seed_recipients
from bench.figures import print_latencies
from tests.harness import Service, free_port, make_service, wait_http
from tests.people import Person
from tests.push.conftest import Device


def _receive(port: int, ready: Any) -> None:
    """The played push service, in its own process (as a real one is on its own machine):
    aiohttp, keep-alive, 201 to every push; /count and /dump for the bench."""
    from aiohttp import web

    got: list[tuple[float, str, str]] = []

    async def push(request: web.Request) -> web.Response:
        body = await request.read()
        got.append((time.perf_counter(), request.match_info["token"],
                    base64.b64encode(body).decode()))
        return web.Response(status=201)

    async def count(_: web.Request) -> web.Response:
        return web.json_response(len(got))

    async def dump(_: web.Request) -> web.Response:
        return web.json_response(got)

    app = web.Application()
    app.router.add_post("/push/{token}", push)
    app.router.add_get("/count", count)
    app.router.add_get("/dump", dump)
    ready.set()
    web.run_app(app, host="127.0.0.1", port=port, print=None, backlog=1024)


class Receiver:
    """The played push service's process; ``got()`` is (arrival, device token, raw body)
    of every push (time.perf_counter is CLOCK_MONOTONIC: the same clock in every process)."""

    def __init__(self) -> None:
        self.port = free_port()
        ready = multiprocessing.Event()
        self.proc = multiprocessing.Process(target=_receive, args=(self.port, ready),
                                            daemon=True)
        self.proc.start()
        ready.wait(10)
        wait_http(f"{self.base}/count")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self) -> int:
        return int(httpx.get(f"{self.base}/count").json())

    def got(self) -> list[tuple[float, str, bytes]]:
        rows = httpx.get(f"{self.base}/dump", timeout=60).json()
        return [(at, token, base64.b64decode(body)) for at, token, body in rows]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(10)


async def run(svc: Service, receiver: Receiver, n_devices: int, n_alerts: int,
              deadline_s: float, interval_s: float) -> tuple[list[float], int]:
    staff, patrol = Person(svc.url, "natt"), Person(svc.url, "patrull")
    devices = {d.token: d for d in (Device(f"bench-{i}", receiver.base) for i in range(n_devices))}
    for device in devices.values():
        reply = patrol.post("/api/push/subscriptions", device.subscription())
        assert reply.status_code == 201, reply.text
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
    print(f"{n_devices} devices subscribed; {len(targets)} open checks", flush=True)

    sent: dict[int, float] = {}  # alert id -> when its outcome request was sent
    async with httpx.AsyncClient(base_url=svc.url, cookies=dict(staff.http.cookies.items()),
                                 timeout=30, headers={"X-CSRF-Token": staff.csrf}) as http:
        await http.get("/healthz")
        started = time.perf_counter()
        for check_id in targets:
            at = time.perf_counter()
            reply = await http.post(f"/api/checks/{check_id}/outcome",
                                    json={"outcome": "technical-failure"})
            if reply.status_code != 200:
                raise SystemExit(f"outcome {check_id}: {reply.status_code} {reply.text}")
            sent[int(reply.json()["alert"])] = at
            if interval_s:
                await asyncio.sleep(max(0.0, at + interval_s - time.perf_counter()))
        print(f"{len(sent)} outcomes recorded in {time.perf_counter() - started:.2f} s",
              flush=True)
    want = n_devices * len(sent)
    limit = time.perf_counter() + deadline_s
    # a push may carry several alerts, so the count says nothing of what is still missing:
    # the whole deadline is waited for
    await asyncio.sleep(max(0.0, limit - time.perf_counter()))

    first: dict[tuple[str, int], float] = {}
    pushes = 0
    for at, token, body in receiver.got():
        device = devices.get(token)
        if device is None:
            continue
        msg = json.loads(http_ece.decrypt(body, private_key=device.key,
                                          auth_secret=device.auth, version="aes128gcm"))
        pushes += 1
        for item in msg["items"] if msg.get("v") == 2 else [msg]:  # one alert, or several
            alert = item.get("alert")
            if item.get("event") != "raised" or alert not in sent:
                continue
            if at - sent[alert] <= deadline_s:
                first.setdefault((token, alert), at)
    latencies = [(at - sent[alert]) * 1000 for (_, alert), at in first.items()]
    print(f"{pushes} pushes carried {len(first)} alert notices", flush=True)
    return latencies, want - len(latencies)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--alerts", type=int, default=50)
    parser.add_argument("--deadline", type=float, default=10.0,
                        help="seconds after which a push not received counts as lost")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds from one outcome request to the next (0: back to back, "
                        "each sent when the last is answered)")
    args = parser.parse_args()
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        # no agents here: a long grace keeps the sweep from dispatching the open checks
        svc = make_service(Path(tmp) / "svc", agent_offline_seconds="3600",
                           push_service_hosts='["127.0.0.1"]')
        asyncio.run(seed_recipients(svc.env["SUPERVISION_DATABASE_URL"], args.alerts))
        svc.start()
        try:
            latencies, lost = asyncio.run(run(svc, receiver, args.devices, args.alerts,
                                              args.deadline, args.interval))
        finally:
            svc.stop()
            receiver.stop()
    print_latencies(latencies, f"devices={args.devices} alerts={args.alerts}", lost)


if __name__ == "__main__":
    main()
