"""The month report on a year of data: 10,000 recipients, two checks a night each.

Makes a fresh PostgreSQL database (migrated to head), fills it in the database itself
(``generate_series``, so generation is minutes, not hours) with a year as the service would
have left it: checks (mostly calm, some late, missed, skipped, dispatched), a look-in for
each looked-in check (a few technical failures), an alert for each missed or dispatched
check and the patrol's audited moves (acknowledged, arrived). Then rolls the year up
(``supervision.rollup``, as the nightly job would have, timed) and times
``supervision.reports.period_report`` for a whole month of the whole service (the largest
report there is) and for one unit: one warm-up, then the median of ``--runs``; and the
whole service again with the month's last two nights read live (as the current month
is: the night now running and one not yet ended for good). ``--live`` times the report
with no roll-ups at all (as before them).

    .venv/bin/python bench/report.py --url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

Last line: recipients=N checks=N month_report_ms=N
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supervision import reports, rollup
from supervision.db import Database, migrate

UNITS = 20
FIRST = date(2025, 1, 1)

FILL = [
    # people: one staff member per unit
    """INSERT INTO users (id, username, display_name, password_hash, role, shift_lead, active)
       SELECT i, 'natt' || i, 'Natt ' || i, 'x', 'staff', false, true
       FROM generate_series(1, :units) i""",
    """INSERT INTO recipients (id, name, address, access_info, unit, contacts, care_notes,
                               cohabitants, consent_recorded)
       SELECT i, 'Person ' || i, 'Gatan ' || i, '', 'Enhet ' || (i % :units), '[]', '',
              '[]', false
       FROM generate_series(1, :recipients) i""",
    """INSERT INTO cameras (id, recipient_id, revoked)
       SELECT 'cam-' || i, i, false FROM generate_series(1, :recipients) i""",
    # two checks a night (22:00 and 03:00 local, winter time); h decides what became of it
    """INSERT INTO checks (id, slot, recipient_id, night, due_at, opens_at, closes_at, state,
                           follow_ups, reason, actor, max_lookin_seconds)
       SELECT id, r || ':' || night || ':' || k, r, night, due,
              due - interval '10 minutes', due + interval '20 minutes',
              CASE WHEN h < 2 THEN 'missed' WHEN h < 5 THEN 'skipped'
                   WHEN h < 7 THEN 'dispatched' ELSE 'done' END,
              0,
              CASE WHEN h < 2 THEN 'window-closed' WHEN h < 4 THEN 'paused'
                   WHEN h < 5 THEN 'no-consent' WHEN h < 6 THEN 'needs-help'
                   WHEN h < 7 THEN 'camera-offline' ELSE 'calm' END,
              CASE WHEN h >= 5 THEN 'natt1' END, 30
       FROM (SELECT row_number() OVER (ORDER BY d, r, k) AS id, r, night, k,
                    night + CASE k WHEN 0 THEN time '21:00' ELSE time '02:00' END
                          + CASE k WHEN 0 THEN interval '0' ELSE interval '1 day' END AS due,
                    abs(hashtext(r || ':' || d || ':' || k)) % 100 AS h
             FROM generate_series(1, :recipients) r,
                  generate_series(0, :nights - 1) d,
                  LATERAL (SELECT CAST(:first AS date) + d AS night) n,
                  (VALUES (0), (1)) AS ks(k)) c""",
    # a look-in for each check someone looked at: within 10 minutes of due (some late),
    # one in two hundred ended by a technical failure
    """INSERT INTO visits (id, check_id, camera_id, recipient_id, viewer_id, nonce,
                           requested_at, expires_at, ended_at, seconds, end_reason, outcome)
       SELECT 'v' || id, id, 'cam-' || recipient_id, recipient_id,
              1 + (recipient_id % :units), 'n' || id, at, at + interval '30 seconds',
              at + interval '20 seconds', 20,
              CASE WHEN id % 200 = 0 THEN 'technical-failure' ELSE 'ended' END,
              CASE WHEN reason = 'needs-help' THEN 'needs-help' ELSE 'calm' END
       FROM (SELECT id, recipient_id, reason,
                    due_at + make_interval(secs => abs(hashtext('v' || id)) % 600) AS at
             FROM checks WHERE state = 'done' OR reason = 'needs-help') v""",
    """INSERT INTO alerts (check_id, recipient_id, priority, reason, state, created_at,
                          updated_at, acknowledged_by)
       SELECT id, recipient_id, 2,
              CASE reason WHEN 'window-closed' THEN 'missed' ELSE reason END, 'resolved',
              closes_at, closes_at, 'patrull'
       FROM checks WHERE state IN ('missed', 'dispatched')""",
    # the patrol's moves, as the audit log holds them (hashes made up but unique)
    """INSERT INTO audit_events (at, actor, kind, subject, data, prev_hash, hash)
       SELECT created_at + make_interval(secs => s), 'patrull', 'alert.' || kind,
              'alert:' || id, '{}', md5(id || kind || 'p'), md5(id || kind || 'h')
       FROM (SELECT id, created_at, 'acknowledged' AS kind,
                    20 + abs(hashtext('a' || id)) % 180 AS s FROM alerts
             UNION ALL
             SELECT id, created_at, 'arrived', 300 + abs(hashtext('r' || id)) % 1200
             FROM alerts) m""",
    "SELECT setval('checks_id_seq', (SELECT max(id) FROM checks))",
]


async def admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def timed(database: Database, month: date, unit: str | None, runs: int,
                live: bool = False) -> float:
    """Median milliseconds of the month report (after one warm-up run). ``live``: with the
    roll-ups out of sight (deleted in a transaction rolled back afterwards)."""
    samples = []
    for _ in range(runs + 1):
        async with database.sessions() as db, db.begin():
            if live:
                await db.execute(text("DELETE FROM night_rollups"))
            began = time.perf_counter()
            report = await reports.period_report(db, "month", month, unit, 5)
            samples.append((time.perf_counter() - began) * 1000)
            await db.rollback()
    assert report.by_unit[-1].planned > 0
    return statistics.median(samples[1:])


async def main(args: argparse.Namespace) -> None:
    name = args.reuse or f"nt_bench_report_{secrets.token_hex(4)}"
    if not args.reuse:
        await admin(args.url, f"CREATE DATABASE {name}")
    url = f"{args.url.rsplit('/', 1)[0]}/{name}"
    database = Database.open(url)
    try:
        await migrate(database.engine)
        if not args.reuse:
            await fill(database, args)
        async with database.engine.connect() as conn:
            checks = (await conn.execute(text("SELECT count(*) FROM checks"))).scalar_one()
        month = FIRST + timedelta(days=args.nights // 2)  # a whole month of the data
        if args.live:
            whole = await timed(database, month, None, args.runs, live=True)
            one = await timed(database, month, "Enhet 1", args.runs, live=True)
            print(f"month report without roll-ups, whole service: {whole:.0f} ms; one "
                  f"unit: {one:.0f} ms (median of {args.runs})")
            print(f"recipients={args.recipients} checks={checks} month_report_ms={whole:.0f}")
            return
        began = time.perf_counter()
        rolled = await rollup.roll_up(database, late_minutes=5, grace=timedelta(hours=24),
                                      limit=100_000)
        print(f"rolled up {len(rolled)} nights in {time.perf_counter() - began:.1f} s",
              flush=True)
        whole = await timed(database, month, None, args.runs)
        one = await timed(database, month, "Enhet 1", args.runs)
        last = reports.period_bounds("month", month)[1]
        partly = await partly_live(database, month, [last - timedelta(days=1), last],
                                   args.runs)
        print(f"month report, whole service: {whole:.0f} ms; one unit: {one:.0f} ms; "
              f"whole service with two nights live: {partly:.0f} ms (median of {args.runs})")
        print(f"recipients={args.recipients} checks={checks} month_report_ms={whole:.0f}")
    finally:
        await database.engine.dispose()
        if not args.keep and not args.reuse:
            await admin(args.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def partly_live(database: Database, month: date, nights: list[date], runs: int
                      ) -> float:
    """The whole service's month with ``nights`` read live (their roll-ups marked dirty),
    then rolled up again."""
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE night_rollups SET dirty = true WHERE night = ANY(:n)"),
                           {"n": nights})
    try:
        return await timed(database, month, None, runs)
    finally:
        await rollup.roll_up(database, late_minutes=5, grace=timedelta(hours=24),
                             limit=100_000)


async def fill(database: Database, args: argparse.Namespace) -> None:
    """The year, generated in the database; then fresh planner statistics."""
    began = time.perf_counter()
    values = {"units": UNITS, "recipients": args.recipients, "nights": args.nights,
              "first": FIRST}
    async with database.engine.begin() as conn:
        await conn.execute(text("SET LOCAL synchronous_commit = off"))
        # no triggers (the roll-ups' dirty marks, the foreign keys): there is no roll-up
        # yet to mark, and the rows are made consistent
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        for sql in FILL:
            await conn.execute(text(sql), {k: v for k, v in values.items()
                                           if f":{k}" in sql})
    async with database.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE"))  # outside a transaction, so it is kept
        checks = (await conn.execute(text("SELECT count(*) FROM checks"))).scalar_one()
        visits = (await conn.execute(text("SELECT count(*) FROM visits"))).scalar_one()
        alerts = (await conn.execute(text("SELECT count(*) FROM alerts"))).scalar_one()
    print(f"generated {checks} checks, {visits} look-ins, {alerts} alerts in "
          f"{time.perf_counter() - began:.0f} s", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True,
                        help="a PostgreSQL server (postgresql+asyncpg://...); a database "
                        "is made on it and dropped afterwards")
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--nights", type=int, default=365)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--live", action="store_true",
                        help="time the report without roll-ups (as before them)")
    parser.add_argument("--reuse", metavar="NAME",
                        help="time the report on a database kept by --keep (no generation)")
    asyncio.run(main(parser.parse_args()))
