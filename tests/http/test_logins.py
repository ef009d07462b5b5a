"""Who a login comes from, and how failed logins are limited, against real services.

Forwarded headers count only from configured proxies; a made-up X-Forwarded-For changes
nothing. Failures are limited per address and per (user, address), so a guesser is
stopped, but failing in someone's name elsewhere never locks them out: their own address
still gets in. The clients use distinct loopback source addresses (127.0.0.x) to be
distinct addresses to the service.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from supervision.auth import RateLimiter
from tests.harness import Service, make_service

PER_MINUTE = 10  # the service's login_attempts_per_minute (the default)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = make_service(Path(tmp_path_factory.mktemp("logins")),
                           login_attempts_per_minute=str(PER_MINUTE))
    service.start()
    try:
        yield service
    finally:
        service.stop()


class Browser:
    """A login form from one source address."""

    def __init__(self, svc: Service, address: str) -> None:
        self.http = httpx.Client(base_url=svc.url, follow_redirects=False, timeout=30,
                                 transport=httpx.HTTPTransport(local_address=address))
        page = self.http.get("/login")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found
        self.csrf = found.group(1)

    def login(self, username: str, password: str, **headers: str) -> int:
        reply = self.http.post("/login", data={"username": username, "password": password,
                                               "csrf": self.csrf}, headers=headers)
        return reply.status_code


def login_addresses(svc: Service, username: str) -> list[str]:
    """The address the service recorded for each login of ``username``, in order."""
    db = sqlite3.connect(svc.root / "test.db")
    try:
        rows = db.execute("SELECT data FROM audit_events WHERE kind LIKE 'login.%' "
                          "AND subject = ? ORDER BY id", (f"user:{username}",)).fetchall()
    finally:
        db.close()
    return [json.loads(data)["address"] for (data,) in rows]


def test_a_made_up_forwarded_address_is_ignored_and_does_not_escape_the_limit(
        svc: Service) -> None:
    """From 127.0.0.1 (which uvicorn believed by default), each guess naming another
    address: every one is counted against the real peer, and the address limit (5N
    failures) stops them."""
    guesser = Browser(svc, "127.0.0.1")
    codes = [guesser.login(f"guess-{i}", "wrong", **{"X-Forwarded-For": f"203.0.113.{i}"})
             for i in range(5 * PER_MINUTE + 5)]
    assert codes == [401] * (5 * PER_MINUTE) + [429] * 5
    assert login_addresses(svc, "guess-3") == ["127.0.0.1"]


def test_failing_in_someones_name_does_not_lock_them_out(svc: Service) -> None:
    attacker = Browser(svc, "127.0.0.2")
    codes = [attacker.login("natt", f"guess-{i}") for i in range(20)]
    assert codes == [401] * PER_MINUTE + [429] * (20 - PER_MINUTE), "the guesser is limited"

    natt = Browser(svc, "127.0.0.3")
    assert natt.login("natt", "natt") == 303, "natt still signs in from her own address"
    assert attacker.login("natt", "natt") == 429, "the guessing address stays limited"
    assert login_addresses(svc, "natt")[-1] == "127.0.0.3"


def test_a_distributed_guesser_gets_one_slow_guess_per_address(svc: Service) -> None:
    first = Browser(svc, "127.0.0.5")
    assert [first.login("kvall", "wrong") for _ in range(PER_MINUTE)] == [401] * PER_MINUTE
    # kvall is now under attack: another address gets one guess, delayed, then no more
    second = Browser(svc, "127.0.0.6")
    began = time.monotonic()
    assert second.login("kvall", "wrong") == 401
    assert time.monotonic() - began >= 0.9, "the guess waited for the delay"
    assert second.login("kvall", "kvall") == 429, "that address has failed for kvall"
    # the real kvall, from an address that has not failed, gets in (after the delay)
    assert Browser(svc, "127.0.0.7").login("kvall", "kvall") == 303


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = make_service(Path(tmp_path_factory.mktemp("proxy")),
                           trusted_proxies='["127.0.0.1"]')
    service.start()
    try:
        yield service
    finally:
        service.stop()


def test_a_configured_proxy_is_believed_and_nobody_else(behind_proxy: Service) -> None:
    assert Browser(behind_proxy, "127.0.0.1").login(
        "visitor", "wrong", **{"X-Forwarded-For": "198.51.100.9"}) == 401
    assert Browser(behind_proxy, "127.0.0.2").login(
        "visitor", "wrong", **{"X-Forwarded-For": "198.51.100.10"}) == 401
    assert login_addresses(behind_proxy, "visitor") == ["198.51.100.9", "127.0.0.2"]


# --- the limiter's rules, on a clock of our own ---------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_rules() -> None:
    clock = Clock()
    limiter = RateLimiter(3, delay=1.0, clock=clock)
    # one address, one user: three failures, then refused until they age out
    assert [limiter.attempt("Natt", "a") for _ in range(4)] == [0.0, 0.0, 0.0, None]
    clock.now += 61
    assert limiter.attempt("natt", "a") == 0.0
    # a success takes its own attempt back and clears that address for that user
    limiter.succeeded("natt", "a")
    assert [limiter.attempt("natt", "a") for _ in range(3)] == [0.0, 0.0, 0.0]
    # natt is under attack (3 failures): a clean address waits, a failed one is refused
    assert limiter.attempt("natt", "b") == 1.0
    assert limiter.attempt("natt", "b") is None
    assert limiter.attempt("natt", "c") == 1.0
    # other users from a clean address are not affected
    assert limiter.attempt("kvall", "d") == 0.0


def test_limiter_address_limit_and_memory() -> None:
    clock = Clock()
    limiter = RateLimiter(2, clock=clock)
    results = [limiter.attempt(f"user-{i}", "nat") for i in range(11)]
    assert results == [0.0] * 10 + [None], "5N failures per address"
    clock.now += 61
    limiter.attempt("x", "y")  # the next call after a window prunes what aged out
    assert len(limiter._fails) == 3, limiter._fails.keys()
