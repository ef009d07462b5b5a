"""Whether this node is ready for traffic (``/readyz``), as opposed to merely alive
(``/healthz``).

Ready means: the database answers, its schema is at the head this code knows, and the
shared duties (the sweep, planning, the outboxes; supervision/leadership.py) are run by
this node or known to be held by another (some session holds the leader lock). A node that
is up but whose cluster has no leader is not ready: windows would open late for everyone.
The answer names only which of the three failed, nothing about the database or the nodes.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache

from alembic.script import ScriptDirectory
from sqlalchemy import text

from supervision.db import Database, alembic_config
from supervision.leadership import LEADER_LOCK

#: a database that takes longer than this to answer counts as not answering
DEADLINE_SECONDS = 2.0

#: a session advisory lock on a bigint key: high half in classid, low half in objid
_LEADER_HELD = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid = 0 AND objid = :k AND objsubid = 1)")


@lru_cache(maxsize=1)
def schema_head() -> str | None:
    """The newest migration this code ships (read once: the files do not change)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _problems(database: Database, leading: bool) -> list[str]:
    problems = []
    try:
        async with database.read() as db:
            await db.execute(text("SELECT 1"))
            if not leading and database.engine.dialect.name == "postgresql" and not (
                    await db.execute(_LEADER_HELD, {"k": LEADER_LOCK})).scalar():
                problems.append("duties")
    except Exception:  # not answering, or answering nonsense: either way not ready
        return ["database"]
    try:
        async with database.read() as db:
            version = (await db.execute(text("SELECT version_num FROM alembic_version")))\
                .scalar()
    except Exception:  # no version table: never migrated
        version = None
    if version != schema_head():
        problems.insert(0, "migrations")
    return problems


async def not_ready(database: Database, leading: bool) -> list[str]:
    """What keeps this node from being ready: "database", "migrations", "duties"; empty
    when it is ready. ``leading``: this node holds the shared duties itself."""
    try:
        return await asyncio.wait_for(_problems(database, leading), DEADLINE_SECONDS)
    except TimeoutError:
        return ["database"]
