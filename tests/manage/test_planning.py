"""Planning on SQLite and PostgreSQL: idempotent, re-derives only what has not opened,
versions take over from their effective_from, and the bulk insert stores exactly what the
ORM would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from supervision import check_rows, planning, plans
from supervision.cameras import push_switched
from supervision.checks import State
from supervision.config import Settings
from supervision.consent import ConsentIn, record_unplanned
from supervision.db import Database, make_engine, make_sessionmaker, migrate
from supervision.models import Camera, Check, Plan, Recipient
from supervision.runtime import Runtime
from supervision.signaling import AgentConnection, AgentLinks

# 21:00 in Stockholm on Monday 2026-11-23: tonight is the night of the 23rd
NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
TONIGHT = date(2026, 11, 23)


CONSENT = {"given_on": "2026-01-01", "valid_until": None}


def plan(*times: str, **extra: Any) -> dict[str, Any]:
    """A plan as the service stores it: no consent of its own (it is on record)."""
    return {"check_times": [{"at": at} for at in times], **extra}


def consent(given_on: str, valid_until: str | None = None) -> ConsentIn:
    return ConsentIn(party="person", name="R", method="written", witness="",
                     document_ref="DNR 1", given_on=date.fromisoformat(given_on),
                     valid_until=None if valid_until is None else date.fromisoformat(valid_until))


@pytest.fixture
async def rt(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    engine = make_engine(database_url)
    await migrate(engine)
    runtime = Runtime.create(Settings(database_url=database_url, data_dir=tmp_path),
                             Database(engine, make_sessionmaker(engine)))
    async with runtime.write() as db:  # with the person's consent on record
        recipient = Recipient(id=1, name="R", address="A", access_info="", unit="")
        db.add(recipient)
        await db.flush()
        await record_unplanned(db, recipient, consent("2026-01-01"), "t", NOW)
    try:
        yield runtime
    finally:
        await engine.dispose()


async def save(db: AsyncSession, data: dict[str, Any], version: int) -> None:
    data = schedules.plan_to_dict(schedules.parse_plan(data))
    db.add(Plan(recipient_id=1, version=version, data=data, created_at=NOW, created_by="t"))
    await db.flush()


async def checks(rt: Runtime) -> dict[str, Check]:
    async with rt.read() as db:
        return {c.slot: c for c in (await db.execute(select(Check))).scalars()}


async def test_materialise_is_idempotent_and_replaces_only_what_has_not_opened(
        rt: Runtime) -> None:
    async with rt.write() as db:
        await save(db, plan("22:00", "23:30", "01:00", "03:00"), 1)
        first = await planning.materialise(db, NOW)
    assert (first.created, first.updated, first.removed) == (8, 0, 0)
    async with rt.write() as db:
        again = await planning.materialise(db, NOW, replace=True)
    assert (again.created, again.updated, again.removed, again.kept) == (0, 0, 0, 8)
    before = await checks(rt)
    async with rt.write() as db:  # the sweep opened tonight's 22:00
        opened = await db.get(Check, before["1:2026-11-23:22:00"].id)
        assert opened is not None
        opened.state = State.OPEN

    async with rt.write() as db:
        await save(db, plan("22:00", "23:45", "02:00", window_before_minutes=10), 2)
        changed = await planning.materialise(db, NOW, recipient_ids=[1], replace=True)
    after = await checks(rt)
    assert sorted(after) == sorted([
        "1:2026-11-23:22:00", "1:2026-11-23:23:45", "1:2026-11-23:02:00",
        "1:2026-11-24:22:00", "1:2026-11-24:23:45", "1:2026-11-24:02:00"])
    opened_now = after["1:2026-11-23:22:00"]
    assert opened_now.state == State.OPEN and opened_now.opens_at == opened.opens_at
    kept = after["1:2026-11-24:22:00"]
    assert kept.id == before["1:2026-11-24:22:00"].id, "updated in place, same id"
    assert kept.due_at - kept.opens_at == timedelta(minutes=10)
    assert (changed.created, changed.updated, changed.removed) == (4, 1, 6)
    async with rt.write() as db:
        last = await planning.materialise(db, NOW, replace=True)
        assert last.created + last.updated + last.removed == 0


async def test_a_version_takes_over_from_its_effective_from(rt: Runtime) -> None:
    async with rt.write() as db:
        await save(db, plan("22:00"), 1)
        await save(db, plan("23:00", effective_from="2026-11-24"), 2)
        await planning.materialise(db, NOW)
        assert (await plans.current_plan(db, 1, NOW))[0].version == 1  # type: ignore[index]
        tomorrow = NOW + timedelta(days=1)
        assert (await plans.current_plan(db, 1, tomorrow))[0].version == 2  # type: ignore[index]
        assert (await plans.newest_plan(db, 1))[0].version == 2  # type: ignore[index]
    assert sorted(await checks(rt)) == ["1:2026-11-23:22:00", "1:2026-11-24:23:00"]


async def test_skip_nights_and_consent_make_skipped_checks_that_come_back(rt: Runtime) -> None:
    async with rt.write() as db:
        await save(db, plan("22:00", skip_nights=[{"night": "2026-11-23", "reason": "away"}]), 1)
        await planning.materialise(db, NOW)
    tonight = (await checks(rt))["1:2026-11-23:22:00"]
    assert (tonight.state, tonight.reason, tonight.reason_detail, tonight.actor) == (
        State.SKIPPED, "skip-night", "away", "planner")
    async with rt.write() as db:
        await save(db, plan("22:00"), 2)
        await planning.materialise(db, NOW, recipient_ids=[1], replace=True)
    back = (await checks(rt))["1:2026-11-23:22:00"]
    assert (back.id, back.state, back.reason, back.ended_at) == (tonight.id, State.PLANNED,
                                                                  None, None)
    async with rt.write() as db:  # renewed, but only until before tonight
        recipient = await db.get(Recipient, 1)
        assert recipient is not None
        await record_unplanned(db, recipient, consent("2026-01-01", "2026-11-22"), "t", NOW)
        await planning.materialise(db, NOW, recipient_ids=[1], replace=True)
    assert {c.reason for c in (await checks(rt)).values()} == {"no-consent"}


async def test_bulk_insert_stores_what_the_orm_stores(rt: Runtime) -> None:
    due = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
    row: dict[str, Any] = {
        "recipient_id": 1, "night": TONIGHT, "due_at": due, "opens_at": due,
        "closes_at": due + timedelta(microseconds=5), "state": "planned", "follow_ups": 0,
        "parent_id": None, "reason": None, "reason_detail": None, "ended_at": None,
        "actor": None,
        "max_lookin_seconds": 30}
    async with rt.write() as db:
        db.add(Check(slot="orm", **row))
        await db.flush()
        await check_rows.insert_checks(db, [check_rows.Row(slot="bulk", **row)])
    async with rt.read() as db:
        raw = (await db.execute(text(
            "SELECT slot, night, due_at, closes_at FROM checks ORDER BY slot"))).all()
        assert raw[0][1:] == raw[1][1:], "identical stored form"
        found = (await db.execute(select(Check.slot).where(
            Check.closes_at == row["closes_at"], Check.night == TONIGHT)
            .order_by(Check.slot))).scalars().all()
    assert found == ["bulk", "orm"]
    stored = (await checks(rt))["bulk"]
    assert stored.due_at == due and stored.due_at.tzinfo is UTC


class Wire:
    """Stands in for an agent's WebSocket: records what the service sends, and acknowledges
    each plan as an agent that verified it does (a push counts only when acknowledged)."""

    def __init__(self, links: AgentLinks) -> None:
        self.sent: list[str] = []
        self.links = links

    async def send_text(self, data: str) -> None:
        self.sent.append(data)
        msg = json.loads(data)
        if msg["type"] == "plan":
            await self.links.handle("cam-1", {"type": "plan_ack", "version": msg["version"]})


async def test_a_future_version_is_pushed_once_its_first_night_begins(rt: Runtime) -> None:
    """push_plan signs the version in force at the real clock, so this test uses it too."""
    tonight = schedules.night_of(datetime.now(UTC))
    async with rt.write() as db:
        db.add(Camera(id="cam-1", recipient_id=1, public_key="k" * 43, revoked=False))
        await save(db, plan("22:00"), 1)
        await save(db, plan("23:00", effective_from=str(tonight + timedelta(days=1))), 2)
    wire = Wire(rt.links)
    rt.links.attach(AgentConnection("cam-1", wire))  # type: ignore[arg-type]
    assert await push_switched(rt) == [], "tomorrow's version waits"
    async with rt.write() as db:
        await save(db, plan("23:30", effective_from=str(tonight)), 3)
    assert await push_switched(rt) == ["cam-1"], "tonight's version goes out"
    assert '"version":3' in wire.sent[-1].replace(" ", "")


async def test_the_store_decodes_in_bulk_what_it_parses_one_by_one(rt: Runtime) -> None:
    """Complete stored rows skip validation in bulk, partial ones are parsed (and cached),
    an invalid one is left out either way."""
    async with rt.write() as db:
        await save(db, plan("22:00", pauses=[
            {"start": "2026-11-25", "end": "2026-11-27", "reason": "sjukhus"}]), 1)
        for version, data in ((2, {"check_times": [{"at": "23:00"}]}),
                              (3, {"check_times": [{"at": "22:00"}, {"at": "22:10"}]})):
            db.add(Plan(recipient_id=1, version=version, data=data, created_at=NOW,
                        created_by="t"))
        await db.flush()
        ids = [v.id for v in (await plans.versions_of(db))[1]]
        plans.forget_parsed()
        bulk = await plans.load_plans(db, ids, bulk=True)
        one_by_one = await plans.load_plans(db, ids)
    assert bulk == one_by_one and len(bulk) == 2
    partial = {"check_times": [{"at": "23:00"}]}
    assert plans.parse_stored(partial) is plans.parse_stored(dict(partial)), "parsed once"


def test_shared_expansion_equals_expand() -> None:
    """Plans of one shape share their windows; each keeps its own skip reason."""
    shapes = [["22:00", "01:00"], ["22:00", "01:00"], ["02:30"], ["22:00", "01:00"]]
    extras: list[dict[str, Any]] = [
        {"consent": CONSENT},
        {"consent": CONSENT, "skip_nights": [{"night": "2027-03-27", "reason": "borta"}]},
        {"consent": CONSENT,
         "pauses": [{"start": "2027-03-26", "end": "2027-03-28", "reason": "sjukhus"}]},
        {}]
    plans = [schedules.parse_plan(plan(*times, **extra))
             for times in shapes for extra in extras]
    plans.append(schedules.parse_plan(plan("23:00", effective_from="2027-03-28",
                                           consent=CONSENT)))
    memo: dict[Any, Any] = {}
    for night in (date(2027, 3, 26), date(2027, 3, 27), date(2027, 3, 28)):  # DST night
        for p in plans:
            assert planning.windows_of(p, night, memo) == schedules.expand(
                p, night, include_skipped=True), (p, night)
    assert len(memo) < len(plans) * 3
