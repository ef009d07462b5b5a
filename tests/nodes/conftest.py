"""Several `supervision serve` processes on one fresh PostgreSQL database.

The first node is made by `make_service` (which seeds the demo world); more nodes start
from its environment with a port and a data directory of their own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import browser  # noqa: F401 (a fixture for these tests)
from tests.conftest import fresh_pg_database
from tests.harness import BIN, Service, free_port


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database of this test's own."""
    with fresh_pg_database() as (url, _):
        yield url


def node_env(base: dict[str, str], root: Path) -> tuple[dict[str, str], int]:
    """``base`` (another node's environment) with this node's own port and data directory."""
    port = free_port()
    env = dict(base)
    env.update({"SUPERVISION_DATA_DIR": str(root / "data"), "SUPERVISION_PORT": str(port),
                "SUPERVISION_PUBLIC_URL": f"http://127.0.0.1:{port}"})
    return env, port


def extra_node(first: Service, root: Path, *, key_from: Service | None = None) -> Service:
    """Another node on ``first``'s database (not started); with ``key_from``, that node's
    server key file copied in, as an operator adds a node."""
    root.mkdir(parents=True, exist_ok=True)
    env, port = node_env(first.env, root)
    if key_from is not None:
        copy_key(key_from, root)
    return Service(root=root, port=port, env=env, world=first.world)


def key_file(node: Service) -> Path:
    return Path(node.env["SUPERVISION_DATA_DIR"]) / "server.key"


def copy_key(source: Service, root: Path) -> None:
    target = root / "data" / "server.key"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(key_file(source), target)
    os.chmod(target, 0o600)


def run_to_exit(node: Service, timeout: float = 30) -> tuple[int, str]:
    """Start ``node`` expecting it to stop by itself: (exit code, its output)."""
    node.root.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([str(BIN / "supervision"), "serve"], env=node.env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node.log.write_text(done.stdout)
    return done.returncode, done.stdout


async def asql(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """One statement on the test's database, on a connection of its own."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(r) for r in await conn.fetch(query, *args)]
    finally:
        await conn.close()


def sql(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    return asyncio.run(asql(url, query, *args))


def stop_all(nodes: Sequence[Service]) -> None:
    for node in nodes:
        node.stop()
