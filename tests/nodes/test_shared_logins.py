"""Failed logins are limited across nodes: a guesser whose tries a proxy spreads over two
nodes gets no more than one node would give it, and the real person still gets in."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import make_service
from tests.http.test_logins import Browser
from tests.nodes.conftest import extra_node, stop_all

pytestmark = pytest.mark.postgres

PER_MINUTE = 3


def test_guesses_through_two_nodes_count_together(pg_url: str, tmp_path: Path) -> None:
    a = make_service(tmp_path / "a", pg_url, login_attempts_per_minute=str(PER_MINUTE))
    a.start()
    b = extra_node(a, tmp_path / "b", key_from=a)
    try:
        b.start()
        guesser = [Browser(a, "127.0.0.7"), Browser(b, "127.0.0.7")]
        answers = [guesser[i % 2].login("natt", f"wrong-{i}") for i in range(PER_MINUTE + 2)]
        # N failures in all, then refused on both nodes (one node alone would let 2N through)
        assert answers == [401] * PER_MINUTE + [429, 429], answers
        # failing in someone's name never locks them out: their own address gets in
        assert Browser(b, "127.0.0.8").login("natt", "natt") == 303
        # a right password after wrong ones takes the right one's count back
        fresh = [Browser(a, "127.0.0.9"), Browser(b, "127.0.0.9")]
        assert fresh[0].login("kvall", "nope") == 401
        assert fresh[1].login("kvall", "kvall") == 303
        assert fresh[0].login("kvall", "kvall") == 303
    finally:
        stop_all([b, a])
