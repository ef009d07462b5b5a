"""Several nodes starting at once on an empty PostgreSQL database: the migration runs under
a lock, so every node comes up and the schema is migrated exactly once."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from alembic.script import ScriptDirectory

from camera_agent.identity import Identity
from supervision.db import alembic_config
from tests.harness import BIN, Service, wait_http
from tests.nodes.conftest import node_env, sql, stop_all


def test_three_nodes_start_together_on_an_empty_database(pg_url: str, tmp_path: Path) -> None:
    key = Identity.create(tmp_path / "server.key")  # one service, one key: copied to each
    base = dict(os.environ, SUPERVISION_DATABASE_URL=pg_url, SUPERVISION_SWEEP_SECONDS="1")
    nodes: list[Service] = []
    for i in range(3):
        root = tmp_path / f"node{i}"
        env, port = node_env(base, root)
        (root / "data").mkdir(parents=True)
        (root / "data" / "server.key").write_bytes((tmp_path / "server.key").read_bytes())
        os.chmod(root / "data" / "server.key", 0o600)
        nodes.append(Service(root=root, port=port, env=env, world={}))
    try:
        for node in nodes:  # all three at once: none waits for another to be up
            node.proc = subprocess.Popen([str(BIN / "supervision"), "serve"], env=node.env,
                                         stdout=node.log.open("ab"), stderr=subprocess.STDOUT)
        for node in nodes:
            try:
                wait_http(node.url + "/healthz", timeout=40, process=node.proc)
            except (TimeoutError, RuntimeError) as exc:
                raise AssertionError(f"node on {node.port} did not come up ({exc}):\n"
                                     + node.log.read_text()[-3000:]) from exc
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert sql(pg_url, "SELECT version_num FROM alembic_version") == [(head,)]
        assert sql(pg_url, "SELECT public_key FROM server_identity") == [(key.public_key_b64,)]
        for node in nodes:
            assert node.proc is not None and node.proc.poll() is None
            assert "Traceback" not in node.log.read_text(), node.log.read_text()[-3000:]
    finally:
        stop_all(nodes)
