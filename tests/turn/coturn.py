"""A real coturn (Debian's ``turnserver``) on loopback, as the service expects it:
``use-auth-secret`` with a shared secret, for the tests and ``bench/ttff.py``."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aioice import stun
from aioice import turn as turn_client

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
REALM = "nattillsyn.test"


def have_coturn() -> bool:
    return Path(TURNSERVER).exists()


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP on loopback (coturn listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free UDP+TCP port on loopback")


@dataclass
class Coturn:
    port: int
    secret: str
    root: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def log(self) -> str:
        return (self.root / "turnserver.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_coturn(root: Path, secret: str, port: int | None = None) -> Coturn:
    """coturn with the TURN REST API scheme on a free loopback port (or ``port``: a server
    restarted where the service expects it); relays on loopback too
    (``allow-loopback-peers``: both peers of a test are on this machine)."""
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_udp_tcp_port()
    log = (root / "turnserver.log").open("wb")
    proc = subprocess.Popen([
        TURNSERVER, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
        f"--listening-port={port}", "--use-auth-secret", f"--static-auth-secret={secret}",
        f"--realm={REALM}", "--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli",
        "--no-software-attribute", "--log-file=stdout", "--simple-log", "--verbose",
        f"--db={root / 'turndb'}", f"--pidfile={root / 'turnserver.pid'}",
    ], stdout=log, stderr=subprocess.STDOUT)
    coturn = Coturn(port=port, secret=secret, root=root, proc=proc)
    deadline = time.monotonic() + 10
    while "UDP listener opened on" not in coturn.log:
        if proc.poll() is not None or time.monotonic() > deadline:
            coturn.stop()
            raise RuntimeError(f"coturn did not start; log tail:\n{coturn.log[-2000:]}")
        time.sleep(0.05)
    return coturn


@contextlib.contextmanager
def running_coturn(root: Path, secret: str) -> Iterator[Coturn]:
    coturn = start_coturn(root, secret)
    try:
        yield coturn
    finally:
        coturn.stop()


def allocate(server: Coturn, username: str, password: str) -> tuple[str, int] | int:
    """A TURN Allocate with these credentials (aioice's client): the relayed address,
    or the error code coturn answered with."""
    async def run() -> tuple[str, int] | int:
        try:
            transport, _ = await turn_client.create_turn_endpoint(
                asyncio.DatagramProtocol, server.address, username, password)
        except stun.TransactionFailed as exc:
            code: int = exc.response.attributes["ERROR-CODE"][0]
            return code
        relayed: tuple[str, int] = transport.get_extra_info("sockname")
        transport.close()
        return relayed
    # on a thread of its own: a sync Playwright in the same module keeps a loop running here
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()
