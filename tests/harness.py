"""A real service process with demo data and real agent processes, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(fetch: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll until fetch() returns something truthy; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = fetch()
        if found:
            return found
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def wait_http(url: str, timeout: float = 30.0,
              process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


@dataclass
class Service:
    """A running `supervision serve` process with seeded demo data."""

    root: Path
    port: int
    env: dict[str, str]
    world: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "service.log"

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen([str(BIN / "supervision"), "serve"], env=self.env,
                                     stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_http(self.url + "/healthz", process=self.proc)
        except (TimeoutError, RuntimeError) as exc:
            tail = self.log.read_text()[-3000:]
            raise RuntimeError(f"service did not start ({exc}); log tail:\n{tail}") from exc

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        for agent in self.agents.values():
            if agent.poll() is None:
                agent.terminate()
        for agent in self.agents.values():
            try:
                agent.wait(10)
            except subprocess.TimeoutExpired:
                agent.kill()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def agent_dir(self, camera_id: str) -> Path:
        return self.root / camera_id

    def enrol(self, camera: dict[str, Any], source: str = "synthetic") -> Path:
        state = self.agent_dir(camera["camera_id"])
        subprocess.run([str(BIN / "camera-agent"), "enrol", "--server", self.url, "--code",
                        camera["code"], "--state-dir", str(state), "--source", source],
                       check=True, capture_output=True)
        self.configure_agent(camera["camera_id"], heartbeat_seconds=2, backoff_cap_seconds=2)
        return state

    def configure_agent(self, camera_id: str, **values: object) -> None:
        """Rewrite settings in an enrolled agent's config file."""
        path = self.agent_dir(camera_id) / "agent.toml"
        lines = [ln for ln in path.read_text().splitlines()
                 if ln.split("=")[0].strip() not in values]
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        path.write_text("\n".join(lines) + "\n")

    def start_agent(self, camera_id: str) -> subprocess.Popen[bytes]:
        state = self.agent_dir(camera_id)
        out = (state / "agent.log").open("ab")
        proc = subprocess.Popen([str(BIN / "camera-agent"), "run", "--config",
                                 str(state / "agent.toml")], stdout=out,
                                stderr=subprocess.STDOUT, cwd=state)
        self.agents[camera_id] = proc
        return proc


def make_service(root: Path, database_url: str | None = None, **settings: str) -> Service:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    env.update({
        "SUPERVISION_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{root}/test.db",
        "SUPERVISION_DATA_DIR": str(root / "data"),
        "SUPERVISION_PORT": str(port),
        "SUPERVISION_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SUPERVISION_SWEEP_SECONDS": "1",
        "SUPERVISION_AGENT_OFFLINE_SECONDS": "20",
    })
    env.update({f"SUPERVISION_{k.upper()}": v for k, v in settings.items()})
    seeded = subprocess.run([str(BIN / "supervision"), "seed-demo", "--json"], env=env,
                            check=True, capture_output=True, text=True)
    world = json.loads(seeded.stdout.strip().splitlines()[-1])
    return Service(root=root, port=port, env=env, world=world)


def start_world(root: Path, database_url: str | None = None, *, agents: int = 3,
                **settings: str) -> Service:
    """Service + the first ``agents`` of its three cameras enrolled with running synthetic
    agents (all three: as in `make demo`)."""
    svc = make_service(root, database_url, **settings)
    svc.start()
    for cam in svc.world["cameras"][:agents]:
        svc.enrol(cam, source=f"synthetic:{cam['recipient_id']}")
        svc.start_agent(cam["camera_id"])
    return svc


def in_thread(make: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 60) -> Any:
    """Run a coroutine on a loop of its own thread, off the thread sync Playwright (or
    pytest's own loop) holds; its exception is raised here, and one that does not finish
    within ``timeout`` fails."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = asyncio.run(make())
        except BaseException as exc:  # re-raised in the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout)
    if "error" in out:
        raise out["error"]
    assert not thread.is_alive(), f"did not finish within {timeout} s"
    return out.get("value")
