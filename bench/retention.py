"""The retention purge on PostgreSQL: a year of data (``bench/report.py``'s, for
``--recipients``), with ``retention_days`` 365 so that about eleven months of it are old.
Times the whole purge (checkpoint, audit entries and nights in batches) while another task
appends an audit entry every 20 ms, as the service would during a night: their latencies
show how long the chain's head is held up (it should not be: the purge's batches do not
take the head's lock), beside the same appends for ``--baseline`` seconds without a purge.

    .venv/bin/python bench/retention.py --url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

Last line: audit_entries=N checks=N visits=N purge_s=N append_p99_ms=N append_max_ms=N
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import percentile
from bench.report import admin, fill
from supervision import audit, retention
from supervision.config import Settings
from supervision.db import Database, migrate
from supervision.tickets import ServerKey


async def appending(database: Database, stop: asyncio.Event, latencies: list[float],
                    ends: list[float] | None = None) -> None:
    """An audit entry every 20 ms until ``stop``, each in its own transaction (``ends``:
    when each ended, on ``time.perf_counter``)."""
    n = 0
    while not stop.is_set():
        began = time.perf_counter()
        async with database.write() as db:
            await audit.append(db, "bench", "bench.tick", f"tick:{n}", {})
        latencies.append((time.perf_counter() - began) * 1000)
        if ends is not None:
            ends.append(time.perf_counter())
        n += 1
        await asyncio.sleep(0.02)


async def counts(database: Database) -> tuple[int, int, int]:
    async with database.engine.connect() as conn:
        got = [(await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()
               for t in ("audit_events", "checks", "visits")]
    return int(got[0]), int(got[1]), int(got[2])


async def main(args: argparse.Namespace) -> None:
    name = f"nt_bench_retention_{secrets.token_hex(4)}"
    await admin(args.url, f"CREATE DATABASE {name}")
    url = f"{args.url.rsplit('/', 1)[0]}/{name}"
    database = Database.open(url)
    try:
        await migrate(database.engine)
        args.nights = 365
        await fill(database, args)
        before = await counts(database)
        data = Path(tempfile.mkdtemp(prefix="nt-retention-"))
        settings = Settings(database_url=url, data_dir=data, retention_days=365)
        key = ServerKey.load_or_create(settings.key_file)
        # "now": the year's last night plus the retention period, less a month
        now = datetime.combine(date(2025, 1, 1) + timedelta(days=365 + 365 - 30),
                               datetime.min.time(), UTC)
        # the same appends for a while without a purge: what the machine gives anyway
        stop = asyncio.Event()
        baseline: list[float] = []
        ticker = asyncio.create_task(appending(database, stop, baseline))
        await asyncio.sleep(args.baseline)
        stop.set()
        await ticker
        stop = asyncio.Event()
        latencies: list[float] = []
        ends: list[float] = []
        ticker = asyncio.create_task(appending(database, stop, latencies, ends))
        began = time.perf_counter()
        async with database.write() as db:  # step 1, timed apart: the head's lock is in it
            first = await retention.begin(db, settings, key, now)
        begun = time.perf_counter()
        done = await retention.run(database, settings, key, now=now, batch=args.batch)
        took = time.perf_counter() - began
        assert first is not None and done.began is None
        stop.set()
        await ticker
        after = await counts(database)
        print(f"before: audit {before[0]}, checks {before[1]}, visits {before[2]}; after: "
              f"audit {after[0]}, checks {after[1]}, visits {after[2]}")
        done.add("audit_events", 0)
        print(f"deleted {done.deleted} in {took:.1f} s (batches of {args.batch}); "
              f"{len(latencies)} appends meanwhile: median "
              f"{percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} "
              f"ms, max {max(latencies):.1f} ms; without a purge ({len(baseline)} appends): "
              f"median {percentile(baseline, 0.5):.1f} ms, p99 "
              f"{percentile(baseline, 0.99):.1f} ms, max {max(baseline):.1f} ms")
        during = [ms for ms, end in zip(latencies, ends, strict=True)
                  if end - ms / 1000 < begun]
        print(f"step 1 (boundary, counts, checkpoint, entry) took {begun - began:.2f} s; "
              f"the appends that overlapped it: max {max(during, default=0):.1f} ms")
        print(f"audit_entries={before[0]} checks={before[1]} visits={before[2]} "
              f"purge_s={took:.1f} append_p99_ms={percentile(latencies, 0.99):.0f} "
              f"append_max_ms={max(latencies):.0f}")
    finally:
        await database.engine.dispose()
        await admin(args.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="a PostgreSQL URL (a database is made "
                                                     "beside it and dropped afterwards)")
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=retention.BATCH)
    parser.add_argument("--baseline", type=float, default=20.0,
                        help="seconds of appends without a purge first")
    asyncio.run(main(parser.parse_args()))
