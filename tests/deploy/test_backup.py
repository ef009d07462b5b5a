"""`supervision backup` / `restore` on SQLite and PostgreSQL: a consistent copy of a
seeded database with the server key and the settings, bound by a manifest; a restore
into an empty database and data directory gives the same records and a service key that
matches them, and every mix-up is refused before anything changes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from camera_agent.identity import Identity
from supervision import backup, identity
from supervision.cli import _with_db
from supervision.config import Settings
from supervision.db import Database, code_head
from tests.conftest import fresh_pg_database


@contextlib.contextmanager
def two_databases(kind: str, tmp: Path) -> Iterator[tuple[str, str]]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp}/a.sqlite3", f"sqlite+aiosqlite:///{tmp}/b.sqlite3"
        return
    with fresh_pg_database() as (a, _), fresh_pg_database() as (b, _):
        yield a, b


def records(url: str) -> dict[str, object]:
    async def go() -> dict[str, object]:
        database = Database.open(url)
        try:
            async with database.read() as db:
                return {q: (await db.execute(text(q))).all() for q in (
                    "SELECT username, role, password_hash FROM users ORDER BY username",
                    "SELECT public_key FROM server_identity",
                    "SELECT count(*), max(hash) FROM audit_events",
                    "SELECT version_num FROM alembic_version")}
        finally:
            await database.engine.dispose()
    return asyncio.run(go())


def seed(settings: Settings) -> None:
    """A few people and their audit entries (the demo world would hash eight passwords)."""
    from supervision import audit
    from supervision.models import User

    async def add(db: AsyncSession) -> None:
        for name, role in (("natt", "staff"), ("patrull", "patrol"), ("chef", "admin")):
            db.add(User(username=name, display_name=name.title(), role=role,
                        password_hash=f"$argon2id$stand-in-{name}"))
            await audit.append(db, "cli", "user.added", f"user:{name}", {"role": role})
    asyncio.run(_with_db(settings, add))


def settle_key(settings: Settings) -> str:
    """What a first `serve` does: record the node's key as the service's."""
    async def go() -> str:
        database = Database.open(settings.database_url)
        try:
            return (await identity.settle(database, settings)).public_key_b64
        finally:
            await database.engine.dispose()
    return asyncio.run(go())


def rehash(folder: Path) -> None:
    """Make the manifest agree with the parts again (a careful forger)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["parts"] = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
                         for name in manifest["parts"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def refused(settings: Settings, source: Path, match: str, **kw: bool) -> None:
    with pytest.raises(backup.BackupRefused, match=match):
        backup.restore(settings, source, **kw)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_backup_restores_the_same_service_and_refuses_mix_ups(kind: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    toml = tmp_path / "supervision.toml"
    toml.write_text('default_locale = "en"\n')
    monkeypatch.setenv("SUPERVISION_CONFIG", str(toml))
    with two_databases(kind, tmp_path) as (url_a, url_b):
        a = Settings(database_url=url_a, data_dir=tmp_path / "a")
        seed(a)
        public_key = settle_key(a)
        before = records(url_a)

        made = backup.make(a, tmp_path / "bk")
        manifest = json.loads((made / "manifest.json").read_text())
        assert manifest["server_public_key"] == public_key
        assert manifest["schema_revision"] == code_head()
        assert set(manifest["parts"]) == {
            "database.sqlite3" if kind == "sqlite" else "database.pgdump", "server.key",
            "settings.json", "settings.toml"}
        assert (made / "server.key").stat().st_mode & 0o077 == 0
        saved = json.loads((made / "settings.json").read_text())
        assert saved["default_locale"] == "en" and "secret" not in json.dumps(
            {k: v for k, v in saved.items() if "secret" in k and v})

        # into an empty database and data directory: the same records, the same key
        b = Settings(database_url=url_b, data_dir=tmp_path / "b")
        said = backup.restore(b, made)
        assert records(url_b) == before
        assert (tmp_path / "b" / "server.key").read_bytes() == \
            (tmp_path / "a" / "server.key").read_bytes()
        assert settle_key(b) == public_key  # a node started here is the same service
        assert any(line.startswith("setting data_dir:") for line in said), said

        # not over a database in use, unless told; told, it is replaced
        refused(b, made, "not empty")
        backup.restore(b, made, force=True)
        assert records(url_b) == before

        # the parts must be the ones the manifest names, unchanged
        forged = tmp_path / "forged"
        shutil.copytree(made, forged)
        (forged / "settings.json").write_text("{}")
        refused(b, forged, "does not match the manifest's hash", force=True)
        # ... and the key the database's own: another key, even with the hashes redone
        Identity.create(forged / "other.key")
        (forged / "other.key").replace(forged / "server.key")
        shutil.copyfile(made / "settings.json", forged / "settings.json")
        rehash(forged)
        refused(b, forged, "not the database's", force=True)
        (forged / "stray").write_text("x")
        refused(b, forged, "files the manifest does not name", force=True)
        assert records(url_b) == before  # nothing refused changed anything

        # a node whose own key file is another key is not overwritten unless told
        c = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/c.sqlite3"
                     if kind == "sqlite" else url_a, data_dir=tmp_path / "c")
        Identity.create(tmp_path / "c" / "server.key")
        refused(c, made, "holds another key")


def test_a_newer_schema_or_another_kind_of_database_is_refused(tmp_path: Path) -> None:
    a = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/a.sqlite3",
                 data_dir=tmp_path / "a")
    seed(a)
    settle_key(a)
    made = backup.make(a, tmp_path / "bk.tar")
    assert made.is_file() and made.stat().st_mode & 0o077 == 0
    b = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/b.sqlite3",
                 data_dir=tmp_path / "b")
    backup.restore(b, made)  # the packed form restores too
    assert records(f"sqlite+aiosqlite:///{tmp_path}/b.sqlite3") == \
        records(f"sqlite+aiosqlite:///{tmp_path}/a.sqlite3")

    newer = tmp_path / "newer"
    backup.make(a, newer)
    with sqlite3.connect(newer / "database.sqlite3") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999'")
    conn.close()
    manifest = json.loads((newer / "manifest.json").read_text())
    (newer / "manifest.json").write_text(json.dumps({**manifest, "schema_revision": "0999"}))
    rehash(newer)
    fresh = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/c.sqlite3",
                     data_dir=tmp_path / "c")
    refused(fresh, newer, "not one this release knows")
    pg = Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
                  data_dir=tmp_path / "d")
    refused(pg, made, "holds a sqlite database")
    assert not (tmp_path / "c" / "server.key").exists()
