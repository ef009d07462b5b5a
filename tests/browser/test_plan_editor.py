"""A care manager edits a plan in Chromium: an overlapping window is pointed out next to the
field before saving, the fix saves, and the night staff's rounds board shows the new check.
The coming nights make the next clock change visible."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.browser.conftest import login
from tests.conftest import Service
from tests.people import Person

STOCKHOLM = ZoneInfo("Europe/Stockholm")
NAME = "Astrid Lindqvist"


def hhmm(instant: datetime) -> str:
    return instant.astimezone(STOCKHOLM).strftime("%H:%M")


def test_manager_edits_plan_and_rounds_show_it(service: Service, browser) -> None:  # type: ignore[no-untyped-def]
    staff = Person(service.url, "natt")
    soon = min(datetime.fromisoformat(c["due_at"]) for c in staff.rounds()
               if c["recipient"] == NAME)
    overlapping, fixed = hhmm(soon + timedelta(minutes=10)), hhmm(soon + timedelta(minutes=60))
    ctx = browser.new_context(locale="sv-SE", timezone_id="Europe/Stockholm")
    board_ctx = browser.new_context(locale="sv-SE", timezone_id="Europe/Stockholm")
    try:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        login(page, service.url, "chef")
        assert page.url.endswith("/manage")
        page.click(f"text={NAME}")
        page.wait_for_url("**/manage/recipients/1")
        page.locator("#nights li.night").first.wait_for()
        count = page.locator("#check-times li").count()

        page.click("#add-time")
        new_time = page.locator(f'input[name="check_times.{count}.at"]')
        new_time.fill(overlapping)
        inline = page.locator(f'[data-field="check_times.{count}.at"] .field-error')
        inline.wait_for(timeout=5000)
        assert f"Tillsynstid {count + 1}" in inline.inner_text()
        # the page is Swedish: the service's code and params, shown in Swedish
        assert "överlappar fönstret" in inline.inner_text()
        assert "overlaps" not in inline.inner_text()
        assert page.locator("#error-summary").is_visible()
        page.click("#save")
        page.wait_for_function(
            "() => document.getElementById('save-status').textContent.includes('Inte sparat')")
        assert inline.is_visible(), "still shown next to the field after a refused save"

        new_time.fill(fixed)
        inline.wait_for(state="detached", timeout=5000)
        assert not page.locator("#error-summary").is_visible()
        page.locator(f'#timeline .win[data-at="{fixed}"]').wait_for(timeout=5000)
        page.click("#save")
        page.wait_for_function(
            "() => document.getElementById('save-status').textContent.includes('Version 2 sparad')")
        status = page.locator("#save-status").inner_text()
        assert "Planen har skickats till kameran" in status
        page.locator('#history li[data-version="2"]').wait_for()
        assert "Version 2, sparad av chef" in page.locator("#plan-status").inner_text()

        page.click("#next-dst")
        page.locator("#nights li.night.dst").first.wait_for(timeout=5000)
        assert "Sommartid" in page.locator("#nights li.night.dst").first.inner_text()
        assert not errors, errors

        board = board_ctx.new_page()
        login(board, service.url, "natt")
        row = board.locator("li.check", has_text=NAME).filter(
            has=board.locator(".due", has_text=fixed))
        row.wait_for(timeout=5000)
        assert "planerad" in row.inner_text() or "öppnar om" in row.inner_text()
    finally:
        ctx.close()
        board_ctx.close()

    stored = service.agent_dir("cam-0001") / "plan.json"
    deadline = time.monotonic() + 5
    while json.loads(stored.read_text())["version"] != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    held = json.loads(stored.read_text())
    assert held["version"] == 2 and fixed in held["plan_json"], "the agent holds the new plan"
