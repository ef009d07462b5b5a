"""supervision serve | migrate | backup | restore | seed-demo | demo | user add |
audit verify/checkpoint/export."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from supervision import logs, passwords
from supervision.config import EXIT_CONFIG, Settings, describe, get_settings
from supervision.db import Database, SchemaRefused, migrate, schema, settle_schema

#: the exit status of a process refused the database's schema (sysexits' EX_DATAERR): a
#: unit does not restart it in a loop (RestartPreventExitStatus), an operator acts
EXIT_SCHEMA = 65


def _serve(settings: Settings) -> None:
    import uvicorn

    from supervision import drain
    from supervision.app import create_app, served
    from supervision.http_server import DrainingServer, guarded_protocol

    async def settle() -> None:  # an empty database is migrated, an unknown one refused
        database = Database.open(settings.database_url)
        try:
            await settle_schema(database.engine, auto_migrate=settings.auto_migrate)
        finally:
            await database.engine.dispose()
    asyncio.run(settle())
    app = create_app(settings, own_process=True)

    async def before_close() -> None:  # SIGTERM: look-ins in progress end first
        if getattr(app.state, "runtime", None) is not None:
            await drain.end_lookins(app.state.runtime)

    config = uvicorn.Config(
                served(app), host=settings.host, port=settings.port, log_level="info",
                log_config=None,  # logs.configure set the handlers
                ws_max_size=settings.ws_max_message_bytes * 2,
                # alerts are small; compressing each one once per patrol socket cost more
                # CPU than anything else in the fan-out (bench/alert_latency.py)
                access_log=False, ws_per_message_deflate=False,
                # connection bounds (docs/architecture.md, "HTTP limits"): a head must
                # arrive in time and fit, an idle kept-alive connection is closed
                http=guarded_protocol(settings.header_timeout_seconds,
                                      settings.max_header_bytes, settings.send_timeout_seconds),
                timeout_keep_alive=settings.keepalive_timeout_seconds,
                limit_concurrency=settings.max_connections,
                # X-Forwarded-For/-Proto only from the configured proxies (uvicorn's own
                # default believes 127.0.0.1, so anyone on the host could name an address)
                proxy_headers=bool(settings.trusted_proxies),
                forwarded_allow_ips=list(settings.trusted_proxies), server_header=False)
    DrainingServer(config, before_close).run()


T = TypeVar("T")


async def _with_db(settings: Settings, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``fn`` in one transaction on a database whose schema this code runs on
    (``settle_schema``: an empty one is migrated first)."""
    database = Database.open(settings.database_url)
    try:
        await settle_schema(database.engine, auto_migrate=settings.auto_migrate)
        async with database.write() as db:
            return await fn(db)
    finally:
        await database.engine.dispose()


def seed_demo(settings: Settings) -> dict[str, Any]:
    from supervision.demo import seed
    return asyncio.run(_with_db(settings, seed))


async def _migrate(settings: Settings) -> int:
    """``supervision migrate``: the upgrade step, run once from one node (under the
    migration lock on PostgreSQL, so a second run waits and then finds nothing to do).
    A schema this code does not know is left alone."""
    database = Database.open(settings.database_url)
    try:
        found = await schema(database.engine)
        problem = found.refusal(migrating=True)
        if problem:
            print(f"supervision migrate: refused: {problem}", file=sys.stderr)
            return EXIT_SCHEMA
        await migrate(database.engine)
    finally:
        await database.engine.dispose()
    was = {"empty": "an empty database", "current": "it already"}.get(
        found.state, f"revision {found.revision}")
    print(f"schema at {found.head} (was {was})")
    return 0


def _wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"service did not start at {url}")


def run_demo(settings: Settings, fresh: bool) -> int:
    """Service on SQLite + three simulated cameras, each enrolled like a real device."""
    state = Path("var/demo")
    if fresh and state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SUPERVISION_DATABASE_URL=f"sqlite+aiosqlite:///{state}/demo.db",
               SUPERVISION_DATA_DIR=str(state))
    demo_settings = Settings(database_url=env["SUPERVISION_DATABASE_URL"], data_dir=state,
                             host=settings.host, port=settings.port,
                             public_url=f"http://{settings.host}:{settings.port}")
    world = seed_demo(demo_settings)
    url = demo_settings.public_url
    exe = Path(sys.executable).parent
    server = subprocess.Popen([str(exe / "supervision"), "serve"], env=env)
    agents: list[subprocess.Popen[bytes]] = []
    try:
        _wait_ready(url)
        for cam in world["cameras"]:
            cam_dir = state / cam["camera_id"]
            subprocess.run([str(exe / "camera-agent"), "enrol", "--server", url, "--code",
                            cam["code"], "--state-dir", str(cam_dir),
                            "--source", f"synthetic:{cam['recipient_id']}"], check=True)
            agents.append(subprocess.Popen([str(exe / "camera-agent"), "run", "--config",
                                            str(cam_dir / "agent.toml")]))
        print(f"\n  Nattillsyn demo running at {url}\n")
        for username, password, role in world["users"]:
            print(f"    {role:8} {username} / {password}")
        print("\n  Three checks fall due within ~10 minutes. Ctrl-C stops everything.\n")
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for proc in [*agents, server]:
            proc.terminate()
        for proc in [*agents, server]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


#: the password rules' refusal codes (``supervision.passwords``), in the command's words
PASSWORD_RULES = {
    "too-short": f"at least {passwords.MIN_LENGTH} characters (a few words make a good one)",
    "too-long": f"at most {passwords.MAX_LENGTH} characters",
    "control": "no control characters",
    "common": "too common or too easy to guess (a known breached password, a run or a "
              "repeat)",
    "personal": "little but the person's own name or username",
    "context": "little but the service's name or the word password",
}


async def _user_add(settings: Settings, args: argparse.Namespace) -> None:
    from supervision import audit
    from supervision.auth import ROLES, hash_password
    from supervision.models import User
    if args.role not in ROLES:
        raise SystemExit(f"role must be one of {', '.join(ROLES)}")
    password = args.password or getpass.getpass(f"password for {args.username}: ")
    refused = passwords.problems(password, username=args.username, name=args.name or "")
    if refused and not args.allow_short:
        raise SystemExit("password refused: " + "; ".join(PASSWORD_RULES.get(c, c)
                                                  for c in refused))

    async def add(db: AsyncSession) -> None:
        if (await db.execute(select(User).where(User.username == args.username))).scalar():
            raise SystemExit(f"user {args.username} exists")
        db.add(User(username=args.username, display_name=args.name or args.username,
                    role=args.role, shift_lead=args.shift_lead,
                    password_hash=await hash_password(password)))
        await audit.append(db, "cli", "user.added", f"user:{args.username}",
                           {"role": args.role, "shift_lead": args.shift_lead})
    await _with_db(settings, add)


async def _user_role(settings: Settings, args: argparse.Namespace) -> None:
    """Change a role or the shift-lead flag; audited like every change of who may do what."""
    from supervision import audit
    from supervision.auth import ROLES
    from supervision.models import User, WebSession
    if args.role is not None and args.role not in ROLES:
        raise SystemExit(f"role must be one of {', '.join(ROLES)}")

    async def change(db: AsyncSession) -> None:
        user = (await db.execute(select(User).where(User.username == args.username))).scalar()
        if user is None:
            raise SystemExit(f"no user {args.username}")
        before = {"role": user.role, "shift_lead": user.shift_lead, "active": user.active}
        if args.role is not None:
            user.role = args.role
        if args.shift_lead is not None:
            user.shift_lead = args.shift_lead
        if args.disable:
            user.active = False
        after = {"role": user.role, "shift_lead": user.shift_lead, "active": user.active}
        # a changed role takes effect at once: the user's sessions end
        await db.execute(delete(WebSession).where(WebSession.user_id == user.id))
        await audit.append(db, "cli", "user.changed", f"user:{user.username}",
                           {"before": before, "after": after})
    await _with_db(settings, change)


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    from supervision import audit, audit_anchor
    from supervision.tickets import ServerKey

    if args.audit_command == "public-key":
        if not settings.key_file.exists():  # never make a key here: it would be a stray one
            print(f"no server key at {settings.key_file}", file=sys.stderr)
            return 2
        print(ServerKey.load(settings.key_file).public_key_b64)
        return 0
    if args.audit_command == "checkpoint":
        async def anchor() -> audit_anchor.Checkpoint | None:
            database = Database.open(settings.database_url)
            try:
                await settle_schema(database.engine, auto_migrate=settings.auto_migrate)
                return await audit_anchor.write_checkpoint(database, settings, "manual")
            finally:
                await database.engine.dispose()
        try:
            made = asyncio.run(anchor())
        except OSError as exc:
            print(f"checkpoint failed: {exc}", file=sys.stderr)
            return 1
        assert made is not None
        print(f"checkpoint of entry {made.entry} ({made.count} entries) at {made.at} "
              f"written to {settings.audit_witness}"
              + (f" and syslog {settings.audit_syslog}" if settings.audit_syslog else ""))
        return 0
    if args.audit_command == "export":
        sys.stdout.write(asyncio.run(_with_db(
            settings, lambda db: audit.export_csv(db, _utc(args.from_), _utc(args.to)))))
        return 0
    return _audit_verify(settings, args)


def _audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    """The chain, and the chain against the checkpoints: by default the service's own
    witness file and key; an auditor names the copies and the public key they kept."""
    from camera_agent.protocol import Refusal, load_public_key
    from supervision import audit_anchor
    from supervision.tickets import ServerKey

    keys: list[str] = args.public_key or []
    for key in keys:
        try:
            load_public_key(key)
        except Refusal:
            print(f"--public-key {key!r} is not an Ed25519 public key (base64url, 32 bytes)",
                  file=sys.stderr)
            return 2
    if not keys:
        if not settings.key_file.exists():
            print(f"no server key at {settings.key_file}: give the public key with "
                  "--public-key", file=sys.stderr)
            return 2
        keys = [ServerKey.load(settings.key_file).public_key_b64]
    witnesses = ([audit_anchor.Witness(Path(p)) for p in args.witness or []]
                 + [audit_anchor.Witness(Path(p), syslog=True) for p in args.syslog_copy or []])
    witnesses = witnesses or [audit_anchor.Witness(settings.audit_witness)]

    report = asyncio.run(_with_db(settings, lambda db: audit_anchor.check(db, witnesses, keys)))
    for problem in report.problems:
        print(f"{problem.place}: {problem.what}")
    if report.purge is not None:
        print(f"purged up to entry {report.purge.entry} (entries before "
              f"{report.purge.before}); verified from the purge checkpoint of "
              f"{report.purge.at}")
    if report.latest is not None:
        cp = report.latest
        print(f"checkpoints verified: {report.verified}; the newest names entry {cp.entry} "
              f"({cp.count} entries, at {cp.at}); entries after it, not yet checkpointed: "
              f"{report.unanchored}")
    print("audit chain intact" if report.intact
          else f"{len(report.problems)} problem(s) found")
    return 0 if report.intact else 1


def _purge(settings: Settings) -> int:
    """Purge what is older than ``retention_days`` now (the leader's ``retention`` job does
    it every day); finishes a purge an earlier run left unfinished."""
    from supervision import retention
    from supervision.tickets import ServerKey

    if not settings.key_file.exists():  # a purge checkpoint must be signed with the service's
        print(f"no server key at {settings.key_file}", file=sys.stderr)
        return 2

    async def run() -> retention.Purged:
        database = Database.open(settings.database_url)
        try:
            await settle_schema(database.engine, auto_migrate=settings.auto_migrate)
            return await retention.run(database, settings, ServerKey.load(settings.key_file))
        finally:
            await database.engine.dispose()
    try:
        done = asyncio.run(run())
    except OSError as exc:
        print(f"purge refused, nothing deleted: the checkpoint could not be written: {exc}",
              file=sys.stderr)
        return 1
    if done.began is not None:
        print(f"purge checkpoint: entries up to id {done.began.entry} ({done.began.purged}), "
              f"nights before {done.began.keep_night}; written to {settings.audit_witness}")
    print("deleted: " + (", ".join(f"{t} {n}" for t, n in sorted(done.deleted.items()))
                         or f"nothing older than {settings.retention_days} days"))
    return 0


def _utc(text: str | None) -> datetime | None:
    """A command-line time: ISO 8601, UTC unless it names its offset."""
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="supervision")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    sub.add_parser("migrate", help="bring the schema to this release's (the upgrade step)")
    backup = sub.add_parser("backup", help="the database, the server key and the settings, "
                                           "bound by a manifest")
    backup.add_argument("target", type=Path,
                        help="a new or empty directory, or a file name ending in .tar")
    restore = sub.add_parser("restore", help="a backup into this configuration's database "
                                             "and data directory")
    restore.add_argument("source", type=Path, help="the backup directory or .tar file")
    restore.add_argument("--force", action="store_true",
                         help="replace a database that is not empty and a server key "
                              "file that differs (the old key is kept beside it)")
    seed = sub.add_parser("seed-demo")
    seed.add_argument("--json", action="store_true")
    demo = sub.add_parser("demo")
    demo.add_argument("--keep", action="store_true", help="keep var/demo from the last run")
    user = sub.add_parser("user")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add")
    add.add_argument("username")
    add.add_argument("--role", required=True)
    add.add_argument("--name")
    add.add_argument("--password")
    add.add_argument("--shift-lead", action="store_true")
    add.add_argument("--allow-short", action="store_true", help=argparse.SUPPRESS)
    change = user_sub.add_parser("set", help="change role, shift-lead flag, or disable")
    change.add_argument("username")
    change.add_argument("--role")
    change.add_argument("--shift-lead", dest="shift_lead", action="store_true", default=None)
    change.add_argument("--no-shift-lead", dest="shift_lead", action="store_false")
    change.add_argument("--disable", action="store_true")
    sub.add_parser("purge", help="delete what is older than retention_days, after a signed "
                                 "purge checkpoint (the service does it every day)")
    aud = sub.add_parser("audit")
    aud_sub = aud.add_subparsers(dest="audit_command", required=True)
    verify = aud_sub.add_parser("verify", help="the hash chain, and it against the checkpoints")
    verify.add_argument("--public-key", action="append", metavar="KEY",
                        help="the server's public key as kept by the auditor, written "
                             "--public-key=KEY (a key may start with '-'); repeat for an "
                             "older key; default: this server's key")
    verify.add_argument("--witness", action="append", metavar="FILE",
                        help="a copy of the checkpoint file (repeatable); default: the "
                             "service's own witness file")
    verify.add_argument("--syslog-copy", action="append", metavar="FILE",
                        help="a syslog file holding checkpoint lines (repeatable)")
    aud_sub.add_parser("checkpoint", help="sign the chain's head and write it to the witnesses")
    aud_sub.add_parser("public-key", help="print the server's public key (for auditors)")
    export = aud_sub.add_parser("export")
    export.add_argument("--from", dest="from_")
    export.add_argument("--to")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:  # refused before anything starts: say what and where
        for line in describe(exc):
            print(f"supervision: configuration refused: {line}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(settings.log_format)
    try:
        return _command(settings, args)
    except SchemaRefused as exc:
        print(f"supervision {args.command}: refused: {exc}", file=sys.stderr)
        return EXIT_SCHEMA


def _command(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "serve":
        if args.host:
            settings.host = args.host
        if args.port:
            settings.port = args.port
        _serve(settings)
    elif args.command == "migrate":
        return asyncio.run(_migrate(settings))
    elif args.command in ("backup", "restore"):
        from supervision.backup import BackupRefused, make, restore
        try:
            if args.command == "backup":
                print(make(settings, args.target))
            else:
                for line in restore(settings, args.source, force=args.force):
                    print(line)
        except BackupRefused as exc:
            print(f"supervision {args.command}: refused: {exc}", file=sys.stderr)
            return 1
    elif args.command == "seed-demo":
        world = seed_demo(settings)
        print(json.dumps(world) if args.json else world)
    elif args.command == "demo":
        return run_demo(settings, fresh=not args.keep)
    elif args.command == "user" and args.user_command == "add":
        asyncio.run(_user_add(settings, args))
    elif args.command == "user":
        asyncio.run(_user_role(settings, args))
    elif args.command == "audit":
        return _audit(settings, args)
    elif args.command == "purge":
        return _purge(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
