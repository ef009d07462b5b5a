"""A service for socket tests: no agents, and offline cameras get no grace period, so the
demo's checks that are open now are dispatched by the sweep at start: real alerts with door
codes in every snapshot, re-sent every 10 s while unacknowledged (no outcome is posted)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import Service, make_service

RECHECK = 2.0  # SUPERVISION_SOCKET_RECHECK_SECONDS in these services

Start = Callable[..., Service]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start a service (no agents) with these extra settings; stopped after the test."""
    started: list[Service] = []

    def run(**settings: str) -> Service:
        values = {"agent_offline_seconds": "0", "socket_recheck_seconds": str(RECHECK)}
        svc = make_service(tmp_path / f"svc{len(started)}", **(values | settings))
        started.append(svc)
        svc.start()
        return svc

    yield run
    for svc in started:
        svc.stop()
