"""``supervision backup`` and ``supervision restore``: the database, the server key and the
settings, as one copy whose parts cannot be mixed up.

A backup is a directory (or the same packed in a ``.tar``) holding
- the database: ``database.sqlite3`` (SQLite's online backup API: a consistent copy while
  the service runs) or ``database.pgdump`` (``pg_dump``'s custom format, one snapshot);
- ``server.key``: the key every agent pinned at enrolment (mode 0600);
- ``settings.toml``: the file ``SUPERVISION_CONFIG`` names, if any, and
  ``settings.json``: the effective settings without secrets (secrets and database URL
  passwords are not in it: they belong in the operator's secret store, not in backups);
- ``manifest.json``: what binds them: the server key's public key, the schema revision,
  both as read from the database copy itself, and the SHA-256 of every part.

A restore refuses, before it changes anything, a part whose hash does not match, a key
that is not the one the copy's ``server_identity`` row names, a schema this code does not
know, a database that is not empty and a different key file already in place (unless
``force``). An older schema is migrated after the restore.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, make_url

from supervision.config import Settings
from supervision.db import Database, alembic_config, migrate, schema
from supervision.tickets import ServerKey

FORMAT = "nattillsyn-backup/1"
MANIFEST = "manifest.json"
SQLITE_PART = "database.sqlite3"
PG_PART = "database.pgdump"
KEY_PART = "server.key"


class BackupRefused(RuntimeError):
    """A backup or restore that would be wrong: nothing was changed."""


@dataclass(frozen=True)
class Contents:
    """What a database copy says about itself."""

    revision: str | None
    public_key: str | None


# -- the database, per dialect -------------------------------------------------------------

def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupRefused("an in-memory SQLite database has nothing to back up")
    return Path(url.database)


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string for pg_dump/pg_restore and the environment carrying the
    password (never on a command line, where ``ps`` shows it)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    query = {("sslmode" if k == "ssl" else k): v for k, v in url.query.items()}
    plain = url.set(drivername="postgresql", password=None, query=query)
    return plain.render_as_string(hide_password=False), env


def _run(args: list[str], env: dict[str, str] | None = None) -> str:
    tool = shutil.which(args[0])
    if tool is None:
        raise BackupRefused(f"{args[0]} not found: install postgresql-client "
                            "(of the server's major version or newer)")
    done = subprocess.run([tool, *args[1:]], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupRefused(f"{args[0]} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def _copy_rows(dump: str, table: str) -> list[list[str]]:
    """The rows of ``table`` in a plain-text dump's COPY block."""
    rows: list[list[str]] = []
    inside = False
    for line in dump.splitlines():
        if line.startswith(f"COPY public.{table} "):
            inside = True
        elif inside and line == "\\.":
            break
        elif inside:
            rows.append(line.split("\t"))
    return rows


def _contents_pgdump(path: Path) -> Contents:
    """Read without a database: pg_restore prints the two small tables' data as text."""
    text = _run(["pg_restore", "--data-only", "--table=alembic_version",
                 "--table=server_identity", "--file=-", str(path)])
    revisions = [row[0] for row in _copy_rows(text, "alembic_version")]
    keys = [row[1] for row in _copy_rows(text, "server_identity") if len(row) > 1]
    return Contents(",".join(sorted(revisions)) or None, keys[0] if keys else None)


def _contents_sqlite(path: Path) -> Contents:
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)  # no -wal/-shm made
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master "
                                             "WHERE type = 'table'")}
        revision = key = None
        if "alembic_version" in tables:
            revision = ",".join(sorted(r[0] for r in conn.execute(
                "SELECT version_num FROM alembic_version"))) or None
        if "server_identity" in tables:
            row = conn.execute("SELECT public_key FROM server_identity WHERE id = 1").fetchone()
            key = row[0] if row else None
        return Contents(revision, key)
    finally:
        conn.close()


def _dump(url: URL, out: Path) -> str:
    if url.get_backend_name() == "sqlite":
        source = sqlite3.connect(f"file:{_sqlite_path(url)}?mode=ro", uri=True)
        target = sqlite3.connect(out)
        try:
            source.backup(target)  # page by page, consistent while the service writes
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
            source.close()
        return SQLITE_PART
    dsn, env = _libpq(url)
    _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
          f"--file={out}", f"--dbname={dsn}"], env)
    return PG_PART


def _contents(part: Path) -> Contents:
    return _contents_sqlite(part) if part.name == SQLITE_PART else _contents_pgdump(part)


# -- making one ----------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def public_settings(settings: Settings) -> dict[str, Any]:
    """The effective settings an operator compares after a restore: no secret's value
    (the secret settings are named, with whether they are set), no database password."""
    values: dict[str, Any] = json.loads(settings.model_dump_json())
    for name, field in Settings.model_fields.items():
        if "SecretStr" in str(field.annotation):
            values[name] = "(set)" if getattr(settings, name).get_secret_value() else ""
    values["database_url"] = make_url(settings.database_url).render_as_string(
        hide_password=True)
    return values


def make(settings: Settings, target: Path) -> Path:
    """Write a backup to ``target`` (a new or empty directory, or ``*.tar``); its path."""
    packed = target.suffix == ".tar"
    if packed and target.exists():
        raise BackupRefused(f"{target} exists: name a new file")
    if not packed and target.exists() and any(target.iterdir()):
        raise BackupRefused(f"{target} is not empty: name a new or empty directory")
    if not settings.key_file.exists():
        raise BackupRefused(f"no server key at {settings.key_file}: a backup without it "
                            "cannot serve the enrolled cameras")
    key = ServerKey.load(settings.key_file)
    with _workdir(target, packed) as out:
        out.chmod(0o700)  # the server key is in it
        part = _dump(make_url(settings.database_url), out / "database.tmp")
        (out / "database.tmp").rename(out / part)
        found = _contents(out / part)
        if found.public_key is not None and found.public_key != key.public_key_b64:
            raise BackupRefused(f"the server key {settings.key_file} ({key.public_key_b64}) "
                                f"is not the database's ({found.public_key}): this node "
                                "runs with the wrong key; back up from a node that starts")
        shutil.copyfile(settings.key_file, out / KEY_PART)
        (out / KEY_PART).chmod(0o600)
        parts = [part, KEY_PART, "settings.json"]
        (out / "settings.json").write_text(json.dumps(public_settings(settings), indent=2,
                                                      sort_keys=True) + "\n")
        config = os.environ.get("SUPERVISION_CONFIG")
        if config:
            shutil.copyfile(config, out / "settings.toml")
            (out / "settings.toml").chmod(0o600)  # it may hold secrets
            parts.append("settings.toml")
        manifest = {
            "format": FORMAT, "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": make_url(settings.database_url).get_backend_name(),
            "schema_revision": found.revision, "server_public_key": key.public_key_b64,
            "parts": {name: _sha256(out / name) for name in sorted(parts)},
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return target


@contextmanager
def _workdir(target: Path, packed: bool) -> Iterator[Path]:
    """Where the parts are written: ``target`` itself, or a scratch directory then packed
    into ``target``. A failed backup leaves nothing that looks like one."""
    if not packed:
        made = not target.exists()
        target.mkdir(parents=True, exist_ok=True)
        try:
            yield target
        except BaseException:
            for child in target.iterdir():
                child.unlink()
            if made:
                target.rmdir()
            raise
        return
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        yield Path(scratch)
        with tarfile.open(target, "x") as tar:
            for child in sorted(Path(scratch).iterdir()):
                tar.add(child, arcname=child.name)
        target.chmod(0o600)


# -- restoring one -------------------------------------------------------------------------

@contextmanager
def _opened(source: Path) -> Iterator[Path]:
    if source.is_dir():
        yield source
        return
    if not source.is_file():
        raise BackupRefused(f"no backup at {source}")
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(source) as tar:
        tar.extractall(scratch, filter="data")
        yield Path(scratch)


def _verified(folder: Path) -> dict[str, Any]:
    """The manifest, once every part it names is there with its hash and nothing else."""
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupRefused(f"no readable {MANIFEST} in {folder}: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BackupRefused(f"not a backup this release reads ({manifest.get('format')!r})")
    parts: dict[str, str] = manifest.get("parts", {})
    extra = sorted({p.name for p in folder.iterdir()} - set(parts) - {MANIFEST})
    if extra:
        raise BackupRefused(f"files the manifest does not name: {', '.join(extra)}")
    for name, digest in parts.items():
        if "/" in name or not (folder / name).is_file():
            raise BackupRefused(f"part {name} is missing")
        if _sha256(folder / name) != digest:
            raise BackupRefused(f"part {name} does not match the manifest's hash: the "
                                "backup was changed or its parts come from different backups")
    return manifest


def _check_parts(folder: Path, manifest: dict[str, Any], settings: Settings) -> tuple[
        str, ServerKey]:
    """The database part, and the key, once they belong together and to this code."""
    part = SQLITE_PART if SQLITE_PART in manifest["parts"] else PG_PART
    if part not in manifest["parts"] or KEY_PART not in manifest["parts"]:
        raise BackupRefused("the manifest names no database copy or no server key")
    backend = make_url(settings.database_url).get_backend_name()
    if (part == SQLITE_PART) != (backend == "sqlite"):
        raise BackupRefused(f"the backup holds a {manifest['database']} database and this "
                            f"configuration names a {backend} one")
    key = ServerKey.load(folder / KEY_PART)
    found = _contents(folder / part)
    if key.public_key_b64 != manifest["server_public_key"] or \
            found.public_key not in (None, key.public_key_b64):
        raise BackupRefused(f"the server key ({key.public_key_b64}) is not the database's "
                            f"({found.public_key}) or the manifest's: the parts do not "
                            "belong together")
    if found.revision != manifest["schema_revision"]:
        raise BackupRefused(f"the database copy is at schema {found.revision}, the manifest "
                            f"says {manifest['schema_revision']}")
    known = {r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if found.revision not in known:
        raise BackupRefused(f"the backup's schema {found.revision} is not one this release "
                            "knows (a newer release made it): restore it with that release")
    return part, key


def restore(settings: Settings, source: Path, *, force: bool = False) -> list[str]:
    """Restore ``source`` into the configured database and data directory; what was done."""
    with _opened(source) as folder:
        manifest = _verified(folder)
        part, key = _check_parts(folder, manifest, settings)
        target_key = settings.key_file
        old_key = ServerKey.load(target_key) if target_key.exists() else None
        if old_key is not None and old_key.public_key_b64 != key.public_key_b64 and not force:
            raise BackupRefused(f"{target_key} holds another key ({old_key.public_key_b64}); "
                                "give --force to replace it (it is kept beside it)")
        url = make_url(settings.database_url)
        state = asyncio.run(_state(settings.database_url))
        if state != "empty" and not force:
            raise BackupRefused("the database is not empty: give --force to replace it, "
                                "with every node stopped")
        if url.get_backend_name() == "sqlite":
            _restore_sqlite(folder / part, _sqlite_path(url))
        else:
            asyncio.run(_empty_pg(settings.database_url))
            dsn, env = _libpq(url)
            _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
                  "--single-transaction", f"--dbname={dsn}", str(folder / part)], env)
        done = [f"database restored from {source} ({manifest['made_at']}, schema "
                f"{manifest['schema_revision']})"]
        if old_key is None or old_key.public_key_b64 != key.public_key_b64:
            target_key.parent.mkdir(parents=True, exist_ok=True)
            if old_key is not None:
                kept = target_key.with_name(f"server.key.replaced-{datetime.now(UTC):%Y%m%d%H%M%S}")
                target_key.rename(kept)
                done.append(f"the server key that was in place is kept as {kept}")
            shutil.copyfile(folder / KEY_PART, target_key)
            target_key.chmod(0o600)
        done.append(f"server key {key.public_key_b64} at {target_key}")
        migrated = asyncio.run(_migrate(settings.database_url))
        if migrated:
            done.append(f"schema migrated from {migrated} to this release's")
        done.extend(_settings_changes(folder, settings))
    return done


def _restore_sqlite(copy: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{copy}?immutable=1", uri=True)
    target = sqlite3.connect(path)
    try:
        source.backup(target)  # into the file in place: its owner and mode stay
    finally:
        target.close()
        source.close()


async def _state(url: str) -> str:
    database = Database.open(url)
    try:
        return (await schema(database.engine)).state
    finally:
        await database.engine.dispose()


async def _empty_pg(url: str) -> None:
    """Everything in the public schema goes (the restore brings all of it back)."""
    database = Database.open(url)
    try:
        async with database.engine.begin() as conn:
            await conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            await conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        await database.engine.dispose()


async def _migrate(url: str) -> str | None:
    """Bring an older restored schema to head; the revision it was at, or None."""
    database = Database.open(url)
    try:
        found = await schema(database.engine)
        if found.state == "older":
            await migrate(database.engine)
            return found.revision
        return None
    finally:
        await database.engine.dispose()


def _settings_changes(folder: Path, settings: Settings) -> list[str]:
    """The settings are the operator's to put back (a file may hold secrets and paths of
    this machine): say where they are and how they differ from the ones in force."""
    saved = json.loads((folder / "settings.json").read_text())
    now = public_settings(settings)
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    lines = [f"setting {k}: backup {saved.get(k)!r}, in force {now.get(k)!r}" for k in changed]
    if (folder / "settings.toml").exists():
        lines.append("the backup holds the settings file it ran with (settings.toml)")
    return lines
