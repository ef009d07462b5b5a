"""A real HTTP alarm receiver on loopback (stdlib server in a thread) that records what it
gets and can be told to fail; it checks nothing itself, so each test checks the signature."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.harness import free_port

SECRET = "test-webhook-secret-1234"


@dataclass
class Received:
    at: float  # time.time() when it arrived
    headers: dict[str, str]
    body: bytes
    answered: int


def signature_ok(secret: str, got: Received) -> bool:
    """The receiver's check, written from the documented scheme, not from the service's code."""
    stamp = got.headers["x-nattillsyn-timestamp"]
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + got.body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + mac.hexdigest(), got.headers["x-nattillsyn-signature"])


class _Server(ThreadingHTTPServer):
    # the default listen backlog (5) drops most of a batch of 20 deliveries, and the SYN
    # retries stretch each batch to seconds
    request_queue_size = 128


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    fail_first: int = 0  # answer this many requests with fail_status, then 200
    fail_status: int = 500
    got: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alarm"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    failing = len(receiver.got) < receiver.fail_first
                    status = receiver.fail_status if failing else 200
                    receiver.got.append(Received(time.time(), {k.lower(): v for k, v in
                                                               self.headers.items()},
                                                 body, status))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait(self, n: int, timeout: float = 20) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.got) >= n:
                    return list(self.got)
            time.sleep(0.05)
        raise TimeoutError(f"receiver got {len(self.got)} of {n} requests")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    try:
        yield rx
    finally:
        rx.stop()
