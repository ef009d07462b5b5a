"""Check rows: the planner's rows stored in bulk, and every change of a check's state as a
guarded update.

A state change is ``UPDATE checks ... WHERE id = :id AND state = :expected`` with the row
count checked: of two writers (two staff members, an outcome and the sweep, two nodes) that
read the same state, exactly one moves the check; the other learns it lost and changes
nothing else (no second alert, no second follow-up). The pure ``checks`` state machine
decides what the new state is; this module only makes the write race-free.

Bulk insert: the planner's rows stored by the driver's fast path.

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

from sqlalchemy import CursorResult, delete, insert, or_, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from supervision import checks
from supervision.checks import ENDED, State, Transition
from supervision.models import Check

__all__ = ["Row", "delete_unopened", "insert_checks", "move", "rederive"]


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


async def move(db: AsyncSession, check_id: int, expected: State, step: Transition, *,
               now: datetime, actor: str, note: str | None = None,
               reason_detail: str | None = None) -> bool:
    """Write ``step`` if the check is still ``expected``; whether this writer won."""
    values = _written(step, now, actor, reason_detail)
    if note is not None:
        values["note"] = note
    result = await db.execute(
        update(Check).where(Check.id == check_id, Check.state == expected.value)
        .values(**values).execution_options(synchronize_session=False))
    return _one(result)


async def move_many(db: AsyncSession, check_ids: list[int], expected: State, step: Transition,
                    *, now: datetime, actor: str) -> list[int]:
    """``move`` for many checks taking the same step (the sweep opening a window for
    thousands): one guarded statement per thousand; the ids whose writer this was."""
    values = _written(step, now, actor, None)
    won: list[int] = []
    for start in range(0, len(check_ids), 1000):
        chunk = check_ids[start:start + 1000]
        result = await db.execute(
            update(Check).where(Check.id.in_(chunk), Check.state == expected.value)
            .values(**values).returning(Check.id).execution_options(synchronize_session=False))
        won += sorted(result.scalars())
    return won


def _written(step: Transition, now: datetime, actor: str,
             reason_detail: str | None) -> dict[str, Any]:
    """The columns a step writes: its state and reason, and who ended it when."""
    values: dict[str, Any] = {"state": step.state.value, "reason": step.reason,
                              "reason_detail": reason_detail}
    if step.state in ENDED:
        values |= {"ended_at": now, "actor": actor}
    return values


def _one(result: Any) -> bool:
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


def _unopened(now: datetime) -> Any:
    """Checks a plan change may still re-derive: planned and not yet open, or skipped by
    the planner; never a follow-up."""
    return (Check.parent_id.is_(None)) & or_(
        (Check.state == State.PLANNED.value) & (Check.opens_at > now),
        (Check.state == State.SKIPPED.value) & (Check.actor == "planner")
        & (Check.closes_at > now))


async def rederive(db: AsyncSession, check: Check, new: Row, now: datetime) -> bool:
    """Move a not-yet-open check to its re-derived window and state, guarded on the state
    it was read in (so a check the sweep opened meanwhile is left alone)."""
    step = checks.rederive(State(check.state),
                           new.reason if new.state == State.SKIPPED else None,
                           skipped_by_planner=check.actor == "planner")
    skipped = step.state is State.SKIPPED
    result = await db.execute(
        update(Check).where(Check.id == check.id, Check.state == check.state, _unopened(now))
        .values(due_at=new.due_at, opens_at=new.opens_at, closes_at=new.closes_at,
                state=step.state.value, reason=new.reason, reason_detail=new.reason_detail,
                max_lookin_seconds=new.max_lookin_seconds, ended_at=now if skipped else None,
                actor="planner" if skipped else None)
        .execution_options(synchronize_session=False))
    return _one(result)


async def delete_unopened(db: AsyncSession, ids: Sequence[int], now: datetime) -> int:
    """Remove checks a plan no longer has, if they are still unopened; how many went."""
    if not ids:
        return 0
    result = await db.execute(delete(Check).where(Check.id.in_(ids), _unopened(now))
                              .execution_options(synchronize_session=False))
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
