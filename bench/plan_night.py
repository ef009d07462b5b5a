"""Planning one night for many recipients: plans read, parsed, expanded and stored as checks.

Measures `supervision.planning.materialise(db, now, nights=1)`, the planning job's own code,
cold (no checks yet, parse cache emptied), in one transaction including its commit, best of
--repeat runs (the machine may be shared; every run is printed), on SQLite (a fresh
file) and on PostgreSQL (a schema of its own in the `test` database, dropped afterwards,
so running tests are not disturbed). Each recipient has one plan version with 4 check
times drawn from realistic sets, its own consent on record, and some have a pause or a
skip-night (their checks are stored as skipped). `now` is just after the night boundary,
so every check of the night is still to come. A second, warm run must create nothing.

Last line: recipients=N checks=N sqlite_s=N postgres_s=N   (goal: each under 2 s)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import secrets
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import schedules
from supervision import planning
from supervision.db import make_engine, make_sessionmaker, migrate
from supervision.models import Check, ConsentRecord, Plan, Recipient
from supervision.plans import forget_parsed

PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ZONE = ZoneInfo(schedules.DEFAULT_TZ)
SLOTS = (  # four parts of a night, quarter hours; one time from each keeps windows apart
    [f"{h:02d}:{m:02d}" for h in (21, 22) for m in (0, 15, 30, 45)],
    [f"{h:02d}:{m:02d}" for h in (0, 1) for m in (0, 15, 30, 45)],
    [f"{h:02d}:{m:02d}" for h in (3,) for m in (0, 15, 30, 45)],
    [f"{h:02d}:{m:02d}" for h in (5, 6) for m in (0, 15, 30, 45)],
)


def plans(n: int, night: date, seed: int = 7) -> tuple[list[dict[str, Any]], list[date]]:
    """The stored plans (no consent of their own) and each recipient's consent date."""
    rng = random.Random(seed)
    out, given = [], []
    for i in range(n):
        data: dict[str, Any] = {
            "check_times": [{"at": rng.choice(slot)} for slot in SLOTS],
            "max_lookin_seconds": rng.choice((20, 30, 45)),
            "follow_up": {"interval_minutes": rng.choice((10, 15, 20)), "max_follow_ups": 1},
        }
        given.append(night - timedelta(days=rng.randrange(1, 900)))
        if i % 20 == 0:
            data["pauses"] = [{"start": str(night - timedelta(days=1)),
                               "end": str(night + timedelta(days=3)), "reason": "sjukhus"}]
        elif i % 20 == 1:
            data["skip_nights"] = [{"night": str(night), "reason": "hos anhöriga"}]
        out.append(schedules.plan_to_dict(schedules.parse_plan(data)))  # stored normalised
    return out, given


async def seed(engine: AsyncEngine, n: int, night: date, now: datetime) -> None:
    """Recipients, plans, and each one's written consent on record: the record, and the
    consent it gives kept on the recipient row, as ``supervision.consent`` keeps it (in
    bulk here; one by one through the service would take minutes)."""
    sessions = make_sessionmaker(engine)
    stored, given = plans(n, night)
    async with sessions() as db, db.begin():
        await db.execute(insert(Recipient), [
            {"id": i, "name": f"Brukare {i}", "address": f"Gatan {i}", "access_info": "",
             "unit": "bench", "consent_recorded": True, "consent_from": given[i - 1],
             "consent_until": None} for i in range(1, n + 1)])
        await db.execute(insert(ConsentRecord), [
            {"recipient_id": i, "party": "person", "name": f"Brukare {i}", "method": "written",
             "witness": "", "document_ref": f"BENCH-{i}", "given_on": given[i - 1],
             "valid_until": None, "recorded_at": now, "recorded_by": "bench"}
            for i in range(1, n + 1)])
        await db.execute(insert(Plan), [
            {"recipient_id": i, "version": 1, "data": data, "created_at": now,
             "created_by": "bench"} for i, data in enumerate(stored, start=1)])


async def clear_checks(engine: AsyncEngine) -> None:
    """Between runs, not timed; each run then starts as the first did. (A plain DELETE
    checks the self-referencing parent_id foreign key row by row without an index: minutes
    for 40,000 rows on SQLite.)"""
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("TRUNCATE checks CASCADE"))
        else:
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await conn.execute(delete(Check))
            await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        await conn.commit()
        if engine.dialect.name == "sqlite":  # start each run with an empty write-ahead log
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    gc.collect()


async def measure(engine: AsyncEngine, n: int, repeat: int) -> tuple[float, int]:
    """Best of ``repeat`` cold runs (checks deleted and parse cache emptied before each)."""
    night = datetime.now(ZONE).date() + timedelta(days=1)
    now = datetime.combine(night, datetime.min.time().replace(hour=12, minute=5),
                           ZONE).astimezone(UTC)
    await migrate(engine)
    await seed(engine, n, night, now)
    sessions = make_sessionmaker(engine)
    runs: list[tuple[float, float]] = []
    for _ in range(repeat):
        await clear_checks(engine)
        forget_parsed()
        wall, cpu = time.perf_counter(), time.process_time()
        async with sessions() as db, db.begin():
            made = await planning.materialise(db, now, nights=1)
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    started = time.perf_counter()
    async with sessions() as db, db.begin():
        again = await planning.materialise(db, now, nights=1)
    warm = time.perf_counter() - started
    async with sessions() as db:
        stored = (await db.execute(select(func.count(Check.id)))).scalar_one()
        skipped = (await db.execute(select(func.count(Check.id)).where(
            Check.state == "skipped"))).scalar_one()
    assert made.created == stored and again.created == 0, (made, again, stored)
    walls = ", ".join(f"{w:.3f}" for w, _ in runs)
    cpus = ", ".join(f"{c:.3f}" for _, c in runs)
    print(f"  {engine.dialect.name}: {made.created} checks ({skipped} skipped); cold runs "
          f"wall s [{walls}] (this process's CPU s [{cpus}]); warm re-run {warm:.3f} s, "
          f"{again.created} new; load average {os.getloadavg()[0]:.1f}", flush=True)
    return min(w for w, _ in runs), stored


async def on_sqlite(n: int, repeat: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
        try:
            return await measure(engine, n, repeat)
        finally:
            await engine.dispose()


async def on_postgres(url: str, n: int, repeat: int) -> tuple[float, int]:
    schema = f"bench_plan_{secrets.token_hex(4)}"
    admin = create_async_engine(url)
    async with admin.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_async_engine(url, connect_args={"server_settings": {"search_path": schema}})
    try:
        return await measure(engine, n, repeat)
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await admin.dispose()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="cold runs; the best counts")
    parser.add_argument("--postgres", default=os.environ.get("SUPERVISION_TEST_POSTGRES_URL")
                        or PG_DEFAULT)
    args = parser.parse_args()
    print(f"plan_night: {args.recipients} recipients x {len(SLOTS)} checks, one night")
    sqlite_s, checks = await on_sqlite(args.recipients, args.repeat)
    try:
        postgres_s, pg_checks = await on_postgres(args.postgres, args.recipients, args.repeat)
        assert pg_checks == checks
    except OSError as exc:
        print(f"  postgresql: not reachable at {args.postgres}: {exc}", file=sys.stderr)
        postgres_s = float("nan")
    print(f"recipients={args.recipients} checks={checks} sqlite_s={sqlite_s:.3f} "
          f"postgres_s={postgres_s:.3f}")
    return 0 if max(sqlite_s, postgres_s) < 2 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
