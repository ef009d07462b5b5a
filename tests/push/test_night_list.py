"""The patrol page's "tonight" list is the plan's night, on both databases: the resolved
alerts of the checks of the night going on, as planning names it (each recipient's plan
zone and night boundary), and in the morning also of the night just ended; never access
information. Asked one minute either side of the boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from zoneinfo import ZoneInfo

from supervision.alert_states import AlertState
from supervision.db import Database, migrate
from supervision.demo import demo_plan
from supervision.models import Alert, Check, Plan, Recipient
from supervision.patrol import night_alerts, nights_shown

D = date(2026, 11, 20)  # the evening a night is named by
STHLM = ZoneInfo("Europe/Stockholm")


def at(day: date, hh: int, mm: int, tz: ZoneInfo = STHLM) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=tz).astimezone(UTC)


def test_the_nights_shown_by_zone_and_boundary() -> None:
    noon, eight = dt_time(12, 0), dt_time(8, 0)
    one = timedelta(days=1)
    assert nights_shown(at(D + one, 11, 59), "Europe/Stockholm", noon) == {D}
    assert nights_shown(at(D + one, 12, 0), "Europe/Stockholm", noon) == {D + one}
    # a night that ends at 08:00 stays on the list through the morning it ended
    assert nights_shown(at(D + one, 7, 59), "Europe/Stockholm", eight) == {D}
    assert nights_shown(at(D + one, 8, 0), "Europe/Stockholm", eight) == {D, D + one}
    assert nights_shown(at(D + one, 11, 59), "Europe/Stockholm", eight) == {D, D + one}
    assert nights_shown(at(D + one, 12, 0), "Europe/Stockholm", eight) == {D + one}
    # the plan's own zone: noon in Stockholm is six in the morning in New York
    assert nights_shown(at(D + one, 12, 0), "America/New_York", noon) == {D}


async def test_the_list_is_the_plans_night_at_its_boundaries(database_url: str,
                                                             tmp_path: Path) -> None:
    db = Database.open(database_url)
    try:
        await migrate(db.engine)
        made = at(D, 12, 0)
        checks: dict[int, tuple[str, date]] = {}  # check id -> (recipient, night)
        async with db.write() as w:
            shapes = {"Noon": ("Europe/Stockholm", "12:00"), "Early": ("Europe/Stockholm", "08:00"),
                      "Far": ("America/New_York", "12:00"), "Planless": None}
            for name, shape in shapes.items():
                home = Recipient(name=name, address=f"{name}gatan 1",
                                 access_info=f"Portkod {name}", care_notes="rullator",
                                 contacts=[{"name": "Lisa", "phone": "070"}])
                w.add(home)
                await w.flush()
                if shape is not None:
                    data = demo_plan(made, [2], shape[0]) | {"timezone": shape[0],
                                                             "night_boundary": shape[1]}
                    w.add(Plan(recipient_id=home.id, version=1, data=data, created_at=made,
                               created_by="test"))
                for k in (-1, 0, 1, 2):
                    night = D + timedelta(days=k)
                    due = at(night, 23, 0)
                    check = Check(slot=f"{home.id}:{night}", recipient_id=home.id, night=night,
                                  due_at=due, opens_at=due, closes_at=due, state="failed",
                                  actor="natt")
                    w.add(check)
                    await w.flush()
                    checks[check.id] = (name, night)
                    for state in (AlertState.RESOLVED, AlertState.NEW):
                        w.add(Alert(check_id=check.id if state is AlertState.RESOLVED else None,
                                    recipient_id=home.id, priority=1,
                                    reason="technical-failure", state=state.value,
                                    created_at=due, updated_at=due + timedelta(minutes=k + 5),
                                    note="Hjälpt upp"))

        async def listed(now: datetime) -> set[tuple[str, date]]:
            async with db.read() as r:
                got = await night_alerts(r, now)
            for item in got:
                assert item["state"] == "resolved" and item["note"] == "Hjälpt upp"
                assert not {"access_info", "contacts", "care_notes"} & item.keys(), item
            stamps = [item["updated_at"] for item in got]
            assert stamps == sorted(stamps, reverse=True), "newest first"
            return {checks[item["check"]] for item in got}

        one = timedelta(days=1)
        assert await listed(at(D + one, 7, 59)) == {
            ("Noon", D), ("Early", D), ("Far", D), ("Planless", D)}
        assert await listed(at(D + one, 8, 0)) == {
            ("Noon", D), ("Early", D), ("Early", D + one), ("Far", D), ("Planless", D)}
        assert await listed(at(D + one, 11, 59)) == {
            ("Noon", D), ("Early", D), ("Early", D + one), ("Far", D), ("Planless", D)}
        assert await listed(at(D + one, 12, 0)) == {
            ("Noon", D + one), ("Early", D + one), ("Far", D), ("Planless", D + one)}
        # New York's noon: its night changes six hours later
        assert ("Far", D + one) in await listed(at(D + one, 12, 0, ZoneInfo("America/New_York")))
    finally:
        await db.engine.dispose()
