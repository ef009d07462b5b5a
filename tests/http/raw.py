"""Plain sockets against a real service: what a slow, idle or greedy client does."""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass
from typing import Any


def connect(port: int, source: str | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30,
                                    source_address=(source, 0) if source else None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@dataclass
class Ending:
    """How a connection ended: after how long, and what the server said before it."""

    seconds: float
    data: bytes
    closed: bool  # False: still open when we stopped waiting

    @property
    def status(self) -> int | None:
        line = self.data.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 and line[1].isdigit() else None

    def json(self) -> Any:
        body = self.data.partition(b"\r\n\r\n")[2]
        return json.loads(body)

    def header(self, name: str) -> str | None:
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        for line in head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


def wait_for_close(sock: socket.socket, limit: float, started: float | None = None,
                   trickle: bytes = b"", every: float = 0.5) -> Ending:
    """Read until the server closes the connection or ``limit`` seconds pass, sending
    ``trickle`` every ``every`` seconds meanwhile (a slow client)."""
    start = time.monotonic() if started is None else started
    data = b""
    next_send = time.monotonic() + every
    while True:
        now = time.monotonic()
        if now - start > limit:
            return Ending(now - start, data, closed=False)
        wait = min(limit - (now - start), max(0.0, next_send - now) if trickle else limit)
        readable, _, _ = select.select([sock], [], [], max(0.01, wait))
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return Ending(time.monotonic() - start, data, closed=True)
            data += chunk
        elif trickle and time.monotonic() >= next_send:
            try:
                sock.sendall(trickle)
            except (BrokenPipeError, ConnectionResetError):
                return Ending(time.monotonic() - start, data, closed=True)
            next_send = time.monotonic() + every
