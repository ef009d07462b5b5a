"""Bounded requests against a real `supervision serve` process, with plain sockets: a body
over the limit is refused before it is read (declared or chunked), a slow body is cut
off, and slow, idle or silent connections are closed within the stated times.

The service runs with short limits (2 s) so the tests are quick; the defaults are the same
code with larger numbers (docs/architecture.md, "HTTP limits"). Tolerance for "within":
the stated time plus 3 s, for a loaded 2-core machine.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import Service, make_service
from tests.http.raw import connect, wait_for_close

TIMEOUT = 2.0  # header, body and keep-alive timeouts of the service under test
SLACK = 3.0
LIMIT = 256 * 1024  # its body limit
ENROL = "/api/agent/enrol"  # public, JSON body: the first thing a stranger can reach


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = make_service(Path(tmp_path_factory.mktemp("limits")),
                           header_timeout_seconds=str(TIMEOUT),
                           body_timeout_seconds=str(TIMEOUT),
                           keepalive_timeout_seconds=str(int(TIMEOUT)),
                           send_timeout_seconds=str(TIMEOUT),
                           max_body_bytes=str(LIMIT), max_header_bytes=str(16 * 1024))
    service.start()
    try:
        yield service
    finally:
        service.stop()


def head(method: str, path: str, **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Accept-Language: en",
             *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- bodies ----------------------------------------------------------------------------


def test_a_declared_oversize_body_is_refused_before_any_of_it_is_read(svc: Service) -> None:
    with connect(svc.port) as sock:
        sock.sendall(head("POST", ENROL, Content_Type="application/json",
                          Content_Length=str(200 * 1024 * 1024)))
        ending = wait_for_close(sock, 10)  # not one byte of the 200 MB is sent
    assert ending.closed, "the service waited for a 200 MB body"
    assert ending.status == 413
    assert ending.header("connection") == "close"
    detail = ending.json()["detail"]
    assert detail["code"] == "error.too_large" and detail["limit"] == LIMIT
    assert str(LIMIT) in detail["message"]


def test_a_chunked_body_is_counted_and_cut_off_at_the_limit(svc: Service) -> None:
    chunk = b"[" + b"1," * (32 * 1024 - 1)  # 64 KiB of a JSON array that never ends
    sent = 0
    answer = b""
    with connect(svc.port) as sock:
        sock.sendall(head("POST", ENROL, Content_Type="application/json",
                          Transfer_Encoding="chunked"))
        while sent < 16 * LIMIT and not answer:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            if select.select([sock], [], [], 0.05)[0]:
                answer = sock.recv(65536)
        ending = wait_for_close(sock, 10)
    data = answer + ending.data
    assert data.startswith(b"HTTP/1.1 413"), f"no refusal after {sent} bytes: {data[:200]!r}"
    assert sent <= LIMIT + 8 * len(chunk), f"{sent} bytes were taken before the refusal"
    body = json.loads(data.partition(b"\r\n\r\n")[2])
    assert body["detail"]["code"] == "error.too_large"


def test_a_body_within_the_limit_reaches_the_route(svc: Service) -> None:
    big = {"code": "x" * (LIMIT - 1024), "public_key": "y"}
    reply = httpx.post(svc.url + ENROL, json=big)
    assert reply.status_code == 422, "validated by the route, not refused for its size"

    def pieces() -> Iterator[bytes]:  # chunked, under the limit
        yield b'{"code": "abcdef", '
        yield b'"public_key": "not-a-key-not-a-key-not-a-key-not-a-key-not-a-key"}'
    chunked = httpx.post(svc.url + ENROL, content=pieces(),
                         headers={"content-type": "application/json"})
    assert chunked.status_code == 422, chunked.text


def test_a_body_that_stalls_is_cut_off(svc: Service) -> None:
    with connect(svc.port) as sock:
        sock.sendall(head("POST", ENROL, Content_Type="application/json",
                          Content_Length="100") + b'{"code": ')
        ending = wait_for_close(sock, TIMEOUT + SLACK + 5)
    assert ending.closed and ending.seconds <= TIMEOUT + SLACK, ending
    assert ending.status == 408
    assert ending.json()["detail"]["code"] == "error.too_slow"


# --- heads and idle connections ------------------------------------------------------------


def test_half_a_header_then_silence_is_closed_in_time(svc: Service) -> None:
    with connect(svc.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        ending = wait_for_close(sock, TIMEOUT + SLACK + 5)
    assert ending.closed, "a half-sent header held the connection"
    assert ending.seconds <= TIMEOUT + SLACK, ending
    assert ending.status == 408


def test_a_header_sent_a_byte_at_a_time_is_closed_in_time(svc: Service) -> None:
    with connect(svc.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        ending = wait_for_close(sock, TIMEOUT + SLACK + 5, trickle=b"X", every=0.3)
    assert ending.closed and ending.seconds <= TIMEOUT + SLACK, ending


def test_a_connection_that_says_nothing_is_closed_in_time(svc: Service) -> None:
    with connect(svc.port) as sock:
        ending = wait_for_close(sock, TIMEOUT + SLACK + 5)
    assert ending.closed and ending.seconds <= TIMEOUT + SLACK, ending
    assert ending.data == b"", "nothing to answer: closed silently"


def test_an_idle_kept_alive_connection_is_closed(svc: Service) -> None:
    with connect(svc.port) as sock:
        sock.sendall(head("GET", "/healthz"))
        ending = wait_for_close(sock, TIMEOUT + SLACK + 5)
    assert ending.data.startswith(b"HTTP/1.1 200"), ending.data[:100]
    assert ending.closed and ending.seconds <= TIMEOUT + SLACK, ending


def test_line_breaks_after_an_answer_do_not_keep_a_connection(svc: Service) -> None:
    """Empty lines between requests are allowed by HTTP; they must not stop the clock."""
    with connect(svc.port) as sock:
        sock.sendall(head("GET", "/healthz"))
        ending = wait_for_close(sock, 2 * TIMEOUT + SLACK + 5, trickle=b"\r\n", every=0.3)
    assert ending.closed and ending.seconds <= 2 * TIMEOUT + SLACK, ending


def test_an_answer_left_unread_ends_the_connection(svc: Service) -> None:
    """A client that asks (here: 300 pipelined pages, some 6 MB) and never reads holds
    the connection only until the send timeout: then the service aborts it (RST), which
    the client sees as a reset on its next send."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    with sock:
        sock.connect(("127.0.0.1", svc.port))
        sock.sendall(head("GET", "/login") * 300)
        time.sleep(TIMEOUT + SLACK)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            for _ in range(3):
                sock.send(b"GET /healthz HTTP/1.1\r\n\r\n")
                time.sleep(0.2)


def test_an_oversize_head_is_refused(svc: Service) -> None:
    with connect(svc.port) as sock:
        sock.sendall(head("GET", "/healthz", X_Padding="p" * (20 * 1024)))
        ending = wait_for_close(sock, 10)
    assert ending.status == 431 and ending.closed, ending.data[:200]
    long_path = httpx.get(svc.url + "/healthz?" + "q" * (20 * 1024))
    assert long_path.status_code == 431


def test_a_normal_client_is_unaffected(svc: Service) -> None:
    """Keep-alive works within the timeout: several requests on one connection."""
    with httpx.Client(base_url=svc.url) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(TIMEOUT / 4)
        login = client.get("/login")
    assert login.status_code == 200
