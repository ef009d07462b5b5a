"""Kill the service (SIGKILL) mid-night with checks open, a follow-up pending and an alert
unacknowledged; start it again: nothing lost or duplicated, and everything still happens.

The database is edited only to move the clock: a window that would close in 15 minutes is
made to close during the outage, and so on."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.harness import Service, make_service
from tests.people import Person
from tests.viewer import see


@pytest.fixture
def night(tmp_path: Path) -> Iterator[Service]:
    svc = make_service(tmp_path / "svc", escalate_after_minutes="0.15")
    svc.start()
    try:
        for cam in svc.world["cameras"]:
            svc.enrol(cam)
            svc.start_agent(cam["camera_id"])
        yield svc
    finally:
        svc.stop()


def db_rows(svc: Service, sql: str, *args: object) -> list[tuple[object, ...]]:
    db = sqlite3.connect(svc.root / "test.db")
    try:
        rows = db.execute(sql, args).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def test_sigkill_loses_nothing(night: Service) -> None:
    staff = Person(night.url, "natt")
    opened = staff.wait_open_checks(3)
    first, second, third = (c["id"] for c in opened[:3])
    # second: Not visible -> a follow-up is pending; third: Needs help -> alert unacknowledged
    for check_id, outcome in ((second, "not-visible"), (third, "needs-help")):
        session = asyncio.run(see(staff, check_id))  # the outcome rests on a real look-in
        reply = staff.post(f"/api/checks/{check_id}/outcome",
                           {"outcome": outcome, "session": session})
        assert reply.status_code == 200, reply.text
    slots_before = db_rows(night, "SELECT id, slot FROM checks ORDER BY id")
    (follow_up,), = db_rows(night, "SELECT id FROM checks WHERE parent_id = ?", second)

    night.kill()  # SIGKILL: no shutdown code runs
    now = datetime.now(UTC)
    # during the outage: first's window closes; the follow-up's window opens
    db_rows(night, "UPDATE checks SET closes_at = ? WHERE id = ?",
            stamp(now + timedelta(seconds=1)), first)
    db_rows(night, "UPDATE checks SET opens_at = ?, due_at = ? WHERE id = ?",
            stamp(now), stamp(now + timedelta(minutes=1)), follow_up)
    time.sleep(1.5)
    night.start()

    deadline = time.monotonic() + 30
    states: dict[int, str] = {}
    escalated = None
    while time.monotonic() < deadline:
        states = dict(db_rows(night, "SELECT id, state FROM checks"))  # type: ignore[arg-type]
        escalated = db_rows(night, "SELECT escalated_at FROM alerts WHERE check_id = ?", third)
        if states[first] == "missed" and states[follow_up] == "open" and escalated[0][0]:
            break
        time.sleep(0.3)
    assert states[first] == "missed", "overdue check ended as missed"
    assert db_rows(night, "SELECT reason FROM alerts WHERE check_id = ?", first) == [("missed",)]
    assert states[follow_up] == "open", "the pending follow-up still opened"
    assert escalated and escalated[0][0], "the unacknowledged alert still escalated"
    slots_after = db_rows(night, "SELECT id, slot FROM checks ORDER BY id")
    assert slots_after == slots_before, "no check lost or duplicated by the restart"
    assert len(db_rows(night, "SELECT id FROM alerts")) == 2
    # and the night goes on: the agents are back and the follow-up can be looked in on
    Person(night.url, "natt").wait_open_checks(1, timeout=20)
