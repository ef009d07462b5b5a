"""All nodes share one server identity: a node whose key is not the service's, or that has
none, refuses to start and says why; with the key file copied from a running node it
starts. In-process too, on both databases: what is recorded and when."""

from __future__ import annotations

from pathlib import Path

import pytest

from camera_agent.identity import Identity
from supervision import identity
from supervision.config import Settings
from supervision.db import Database, migrate
from tests.harness import make_service
from tests.nodes.conftest import copy_key, extra_node, key_file, run_to_exit, sql, stop_all


def test_a_node_with_another_key_refuses_and_starts_with_the_copied_one(
        pg_url: str, tmp_path: Path) -> None:
    first = make_service(tmp_path / "a", pg_url)
    first.start()
    nodes = [first]
    try:
        service_key = Identity.load(key_file(first)).public_key_b64
        assert sql(pg_url, "SELECT public_key FROM server_identity") == [(service_key,)]

        other = extra_node(first, tmp_path / "b")
        own = Identity.create(key_file(other)).public_key_b64  # made on this node by mistake
        code, out = run_to_exit(other)
        assert code != 0, out[-2000:]
        refusal = next(ln for ln in out.splitlines() if "refusing to start" in ln)
        assert own in refusal and service_key in refusal, refusal
        assert "Copy" in refusal or "copied" in refusal, refusal

        bare = extra_node(first, tmp_path / "c")  # no key file at all
        code, out = run_to_exit(bare)
        assert code != 0, out[-2000:]
        refusal = next(ln for ln in out.splitlines() if "refusing to start" in ln)
        assert service_key in refusal and str(key_file(bare)) in refusal, refusal
        assert not key_file(bare).exists(), "a node must not make a key of its own"

        copy_key(first, other.root)  # what the message says to do
        nodes.append(other)
        other.start()
        assert other.proc is not None and other.proc.poll() is None  # up: healthz answered
        assert sql(pg_url, "SELECT public_key FROM server_identity") == [(service_key,)]
    finally:
        stop_all(nodes)


async def test_the_first_start_records_its_key_and_later_ones_must_match(
        database_url: str, tmp_path: Path) -> None:
    db = Database.open(database_url)
    try:
        await migrate(db.engine)
        first = Settings(database_url=database_url, data_dir=tmp_path / "first")
        key = await identity.settle(db, first)  # no key anywhere yet: made and recorded
        assert first.key_file.exists()
        again = await identity.settle(db, first)
        assert again.public_key_b64 == key.public_key_b64

        stranger = Settings(database_url=database_url, data_dir=tmp_path / "stranger")
        stranger.data_dir.mkdir()
        theirs = Identity.create(stranger.key_file).public_key_b64
        with pytest.raises(identity.WrongServerKey) as refused:
            await identity.settle(db, stranger)
        assert theirs in str(refused.value) and key.public_key_b64 in str(refused.value)

        bare = Settings(database_url=database_url, data_dir=tmp_path / "bare")
        with pytest.raises(identity.WrongServerKey, match=key.public_key_b64):
            await identity.settle(db, bare)
        assert not bare.key_file.exists()
    finally:
        await db.engine.dispose()
