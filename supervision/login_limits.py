"""Failed logins limited across every node: ``auth.RateLimiter``'s rule, counted in PostgreSQL.

With several nodes behind a proxy, a limiter in each node's memory would give a guesser N
tries a minute per node, and the proxy spreads the tries over all of them. So on
PostgreSQL the failures of the last minute are rows (``login_failures``), counted under a
transaction lock on the user's key, so that parallel attempts through different nodes are
judged one after the other exactly as one node judges them (each counts as a failure from
the moment it is let through; a success takes its own back). On SQLite there is one node:
the in-memory ``RateLimiter`` does the same without a query.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, text

from supervision.auth import RateLimiter, judge, login_keys
from supervision.db import Database
from supervision.models import LoginFailure

WINDOW = timedelta(seconds=RateLimiter.WINDOW)


class LoginLimits:
    def __init__(self, database: Database, per_minute: int, delay: float = 1.0) -> None:
        self.database = database
        self.per_minute = per_minute
        self.delay = delay
        self.shared = database.engine.dialect.name == "postgresql"
        self.local = RateLimiter(per_minute, delay)

    async def attempt(self, username: str, address: str) -> float | None:
        """None: refuse this attempt. Else the seconds to wait before checking it."""
        if not self.shared:
            return self.local.attempt(username, address)
        keys = login_keys(username, address)
        now = datetime.now(UTC)
        async with self.database.write() as db:
            # one attempt per user at a time, on any node: judged in turn, never together
            await db.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                             {"k": keys[2]})
            await db.execute(delete(LoginFailure).where(LoginFailure.at <= now - WINDOW))
            counts = dict((await db.execute(
                select(LoginFailure.key, func.count()).where(LoginFailure.key.in_(keys))
                .group_by(LoginFailure.key))).all())
            by_address, by_pair, by_user = (int(counts.get(k, 0)) for k in keys)
            wait = judge(by_address, by_pair, by_user, self.per_minute, self.delay)
            if wait is not None:
                db.add_all(LoginFailure(key=k, at=now) for k in keys)
        return wait

    async def succeeded(self, username: str, address: str) -> None:
        """The attempt let through last was right: it was no failure."""
        if not self.shared:
            self.local.succeeded(username, address)
            return
        by_address, by_pair, by_user = login_keys(username, address)
        async with self.database.write() as db:
            for key in (by_address, by_user):
                newest = select(func.max(LoginFailure.id)).where(
                    LoginFailure.key == key).scalar_subquery()
                await db.execute(delete(LoginFailure).where(LoginFailure.id == newest))
            await db.execute(delete(LoginFailure).where(LoginFailure.key == by_pair))
