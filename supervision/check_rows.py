"""Check rows in bulk: the planner's rows stored by the driver's fast path.

The ORM's per-row work costs more than the database itself at 40,000 rows, so PostgreSQL
gets a COPY and SQLite one ``executemany`` with ready parameters; any other database takes
the ORM's bulk insert. Values are converted by SQLAlchemy's own bind processing for each
column's type on the session's dialect (the ``UTCDateTime`` decorator, then the dialect's
date and time handling), so what is stored is by construction what the ORM stores. Rows
share instants and nights, so each distinct value of a column is converted once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from supervision.models import Check

__all__ = ["Row", "insert_checks"]


class Row(NamedTuple):
    """A check row as the planner derives it, in the bulk insert's column order."""

    slot: str
    recipient_id: int
    night: date
    due_at: datetime
    opens_at: datetime
    closes_at: datetime
    state: str
    follow_ups: int
    parent_id: int | None
    reason: str | None
    reason_detail: str | None
    ended_at: datetime | None
    actor: str | None
    max_lookin_seconds: int


def _processors(dialect: Dialect) -> list[Callable[[Any], Any] | None]:
    """Each ``Row`` column's bind processor on ``dialect`` (None: passed as it is)."""
    columns = Check.__table__.columns
    return [columns[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in Row._fields]


def _bound(rows: Sequence[Row], dialect: Dialect) -> Iterator[tuple[Any, ...]]:
    """The rows as the driver's parameters: each column through its bind processor."""
    by_column: list[Any] = list(zip(*rows, strict=True))
    for i, process in enumerate(_processors(dialect)):
        if process is not None:
            done = {value: process(value) for value in set(by_column[i])}
            by_column[i] = map(done.__getitem__, by_column[i])
    return zip(*by_column, strict=True)


async def insert_checks(db: AsyncSession, rows: Sequence[Row]) -> None:
    """Bulk insert with the driver's fast path; same stored form as the ORM writes."""
    if not rows:
        return
    dialect = db.get_bind().dialect
    if dialect.name == "postgresql":
        conn = await db.connection()
        raw = await conn.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            Check.__tablename__, records=list(_bound(rows, dialect)),
            columns=list(Row._fields))
    elif dialect.name == "sqlite":
        conn = await db.connection()
        await conn.exec_driver_sql(
            f"INSERT INTO {Check.__tablename__} ({', '.join(Row._fields)}) "
            f"VALUES ({', '.join('?' for _ in Row._fields)})", list(_bound(rows, dialect)))
    else:
        await db.execute(insert(Check), [r._asdict() for r in rows])
