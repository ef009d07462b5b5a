"""The deploy kit as it ships (deploy/): Caddy from deploy/Caddyfile with its internal CA,
two `supervision serve` nodes from deploy/service/nattillsyn.env on one fresh PostgreSQL
database, coturn from deploy/turnserver.conf, all on loopback. Only ports, paths, the
secret and the CA are filled in (through the variables the files take), plus what a test
on one machine needs: coturn may relay to loopback (production denies it) and the sweep
runs every second.

Chromium trusts Caddy's CA narrowly: ``--ignore-certificate-errors-spki-list`` with the
SPKI hash of the CA's intermediate key, which signs the leaf Caddy presents; any other
certificate error still fails (the check is not switched off). Chromium logs in over
HTTPS through Caddy, a look-in plays over a TURN relay, and the patrol page gets the
alert over the proxied WebSocket (from whichever node Caddy picked)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from camera_agent.identity import Identity
from tests.browser.conftest import login
from tests.conftest import CHROMIUM, fresh_pg_database, need
from tests.harness import BIN, Service, free_port, wait_http
from tests.turn.browser import DEFAULT_WEBRTC_FLAGS, RECORD_PEERS, SELECTED_PAIR, wait_playing
from tests.turn.coturn import TURNSERVER, Coturn, free_udp_tcp_port, have_coturn

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SECRET = "deploy-smoke-" + hashlib.sha256(b"deploy").hexdigest()[:24]


def env_file(path: Path) -> dict[str, str]:
    """An EnvironmentFile= as systemd reads this one: KEY=VALUE lines, # comments."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def start_coturn(root: Path) -> Coturn:
    root.mkdir(parents=True, exist_ok=True)
    port = free_udp_tcp_port()
    proc = subprocess.Popen([
        TURNSERVER, "-c", str(DEPLOY / "turnserver.conf"),
        f"--listening-port={port}", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
        f"--static-auth-secret={SECRET}",
        # one machine: both peers are on loopback, which the shipped file denies
        "--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1", "--no-cli",
        f"--db={root / 'turndb'}", f"--pidfile={root / 'turnserver.pid'}",
    ], stdout=(root / "stdout.log").open("wb"), stderr=subprocess.STDOUT)
    coturn = Coturn(port=port, secret=SECRET, root=root, proc=proc)
    deadline = time.monotonic() + 10
    while True:  # the shipped file logs to syslog: listening is the sign it is up
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return coturn
        if proc.poll() is not None or time.monotonic() > deadline:
            coturn.stop()
            raise RuntimeError("coturn did not start: "
                               + (root / "stdout.log").read_text()[-2000:])
        time.sleep(0.05)


@dataclass
class Deployment:
    url: str
    ca: Path
    nodes: list[Service]
    coturn: Coturn
    caddy: subprocess.Popen[bytes]
    root: Path


def spki_hash(pem: Path) -> str:
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    need(shutil.which("caddy") is not None, "caddy not found (apt-get install caddy)")
    need(have_coturn(), "coturn's turnserver not found (apt-get install coturn)")
    root = tmp_path_factory.mktemp("deploy")
    https_port = free_port()
    url = f"https://localhost:{https_port}"
    started: list[Any] = []
    with fresh_pg_database() as (pg_url, _):
        try:
            coturn = start_coturn(root / "coturn")
            started.append(coturn)
            shipped = env_file(DEPLOY / "service" / "nattillsyn.env")
            Identity.create(root / "server.key")  # one service key, on every node
            nodes = []
            for name in ("a", "b"):
                port = free_port()
                data = root / name / "data"
                data.mkdir(parents=True)
                shutil.copy2(root / "server.key", data / "server.key")
                env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISION_")}
                env.update(shipped)
                env.update(SUPERVISION_PORT=str(port), SUPERVISION_NODE_NAME=name,
                           SUPERVISION_DATA_DIR=str(data), SUPERVISION_DATABASE_URL=pg_url,
                           SUPERVISION_PUBLIC_URL=url, SUPERVISION_SWEEP_SECONDS="1",
                           SUPERVISION_TURN_URLS=json.dumps([coturn.url]),
                           SUPERVISION_STUN_URLS="[]", SUPERVISION_TURN_SECRET=SECRET,
                           SUPERVISION_ICE_TRANSPORT_POLICY="relay")
                nodes.append(Service(root=root / name, port=port, env=env, world={}))
            # the install as the runbook has it: migrate, then (here) the demo world
            for command in (["migrate"], ["seed-demo", "--json"]):
                done = subprocess.run([str(BIN / "supervision"), *command], env=nodes[0].env,
                                      capture_output=True, text=True, timeout=60)
                assert done.returncode == 0, done.stderr
            world = json.loads(done.stdout.strip().splitlines()[-1])
            for node in nodes:
                node.world = world
                node.proc = subprocess.Popen([str(BIN / "supervision"), "serve"], env=node.env,
                                             stdout=node.log.open("ab"), stderr=subprocess.STDOUT)
                started.append(node)
            caddy_env = dict(os.environ, HOME=str(root / "caddy"),
                             XDG_DATA_HOME=str(root / "caddy" / "data"),
                             XDG_CONFIG_HOME=str(root / "caddy" / "config"),
                             NATTILLSYN_SITE="localhost", NATTILLSYN_TLS="internal",
                             NATTILLSYN_NODES=" ".join(f"127.0.0.1:{n.port}" for n in nodes),
                             NATTILLSYN_BIND="127.0.0.1",
                             NATTILLSYN_HTTPS_PORT=str(https_port),
                             NATTILLSYN_HTTP_PORT=str(free_port()),
                             CADDY_ADMIN=f"127.0.0.1:{free_port()}")
            caddy = subprocess.Popen(["caddy", "run", "--config", str(DEPLOY / "Caddyfile"),
                                      "--adapter", "caddyfile"], env=caddy_env,
                                     stdout=(root / "caddy.log").open("wb"),
                                     stderr=subprocess.STDOUT)
            for node in nodes:
                wait_http(node.url + "/healthz", timeout=40, process=node.proc)
            ca = root / "caddy" / "data" / "caddy" / "pki" / "authorities" / "local"
            deployment = Deployment(url, ca, nodes, coturn, caddy, root)
            started.append(deployment)
            # through Caddy, verified against its CA (and nothing else) by Python's TLS
            context = ssl.create_default_context(cafile=str(ca / "root.crt")) \
                if (ca / "root.crt").exists() else None

            def https_ok() -> bool:
                nonlocal context
                if context is None and (ca / "root.crt").exists():
                    context = ssl.create_default_context(cafile=str(ca / "root.crt"))
                try:
                    with urllib.request.urlopen(url + "/healthz", context=context, timeout=2):
                        return True
                except OSError:
                    return False
            deadline = time.monotonic() + 20
            while not https_ok():
                if caddy.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("caddy did not serve: "
                                       + (root / "caddy.log").read_text()[-3000:])
                time.sleep(0.1)
            camera = world["cameras"][0]
            state = nodes[0].agent_dir(camera["camera_id"])
            enrolled = subprocess.run([str(BIN / "camera-agent"), "enrol", "--server", url,
                                       "--code", camera["code"], "--state-dir", str(state),
                                       "--ca-file", str(ca / "root.crt"), "--source",
                                       f"synthetic:{camera['recipient_id']}"],
                                      capture_output=True, text=True)
            assert enrolled.returncode == 0, enrolled.stderr
            nodes[0].configure_agent(camera["camera_id"], heartbeat_seconds=2,
                                     backoff_cap_seconds=2)
            nodes[0].start_agent(camera["camera_id"])
            yield deployment
        finally:
            for thing in reversed(started):
                if isinstance(thing, Deployment):
                    thing.caddy.terminate()
                    thing.caddy.wait(10)
                else:
                    thing.stop()


def test_systemd_units_verify() -> None:
    tool = shutil.which("systemd-analyze")
    need(tool is not None, "systemd-analyze not found (apt-get install systemd)")
    assert tool is not None
    unit = DEPLOY / "service" / "nattillsyn@.service"
    # an instance of the template; the one complaint allowed: the venv is not installed here
    done = subprocess.run([tool, "verify", "--man=no", f"{unit}:nattillsyn@a.service"],
                          capture_output=True, text=True)
    problems = [ln for ln in done.stderr.splitlines()
                if "/opt/nattillsyn/venv/bin/supervision" not in ln  # not installed here
                and "Failed to prepare filename" not in ln]
    assert not problems, done.stderr


def test_https_login_relayed_lookin_and_alert_through_caddy(deployment: Deployment) -> None:
    need(os.path.exists(CHROMIUM), f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    trusted = spki_hash(deployment.ca / "intermediate.crt")
    camera = deployment.nodes[0].world["cameras"][0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            *DEFAULT_WEBRTC_FLAGS, f"--ignore-certificate-errors-spki-list={trusted}"])
        try:
            patrol = browser.new_context(locale="sv-SE").new_page()
            login(patrol, deployment.url, "patrull")
            assert patrol.url == deployment.url + "/patrol"
            patrol.wait_for_selector("#link-state.ok")  # the patrol socket, through Caddy

            staff = browser.new_context(locale="sv-SE").new_page()
            staff.add_init_script(RECORD_PEERS)
            login(staff, deployment.url, "natt")
            assert staff.url == deployment.url + "/rounds"
            cookies = staff.context.cookies()
            assert cookies and all(c["secure"] for c in cookies)
            row = staff.locator("li.check.state-open", has_text=camera["recipient"])
            start = row.locator("button.start:enabled")
            start.wait_for(timeout=30_000)
            start.click()
            wait_playing(staff, 20_000)
            pair = staff.evaluate(SELECTED_PAIR)
            assert pair is not None and (pair["local"], pair["remote"]) == ("relay", "relay")
            assert str(deployment.coturn.port) in pair["localUrl"], pair

            staff.click("button[data-outcome=needs-help]")
            card = patrol.locator("li.alert", has_text=camera["recipient"])
            card.wait_for(timeout=5000)
            assert "behöver hjälp" in card.inner_text().lower()
        finally:
            browser.close()


def test_a_clients_own_forwarded_headers_do_not_pass_caddy(deployment: Deployment) -> None:
    """A client that claims another address (``X-Forwarded-For``, ``Forwarded``) is still
    seen by the service at the address Caddy saw: the login limits and the access log
    count the real client, not the one it names."""
    context = ssl.create_default_context(cafile=str(deployment.ca / "root.crt"))
    marker = f"xffprobe{os.getpid()}"
    for _ in range(4):  # Caddy spreads them over both nodes
        request = urllib.request.Request(f"{deployment.url}/healthz?{marker}=1", headers={
            "X-Forwarded-For": "203.0.113.9", "Forwarded": "for=198.51.100.7;proto=http",
            "X-Real-IP": "192.0.2.4"})
        with urllib.request.urlopen(request, context=context, timeout=5) as answer:
            assert answer.status == 200
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while len(seen) < 4 and time.monotonic() < deadline:
        seen = [line for node in deployment.nodes
                for line in map(_json_or_none, node.log.read_text(errors="replace").splitlines())
                if line and marker in str(line.get("path", ""))]
        time.sleep(0.05)
    assert len(seen) == 4, seen
    assert {line["client"] for line in seen} == {"127.0.0.1"}, seen


def _json_or_none(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
