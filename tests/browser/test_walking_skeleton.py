"""The whole mission on one path: staff see a due check live in Chromium, flag Needs help,
and the patrol's page shows the alert within 2 s without reload; the visit is audited."""

from __future__ import annotations

import sqlite3
import time

from tests.browser.conftest import login
from tests.conftest import Service
from tests.people import Person


def test_lookin_needs_help_reaches_patrol(service: Service, browser) -> None:  # type: ignore[no-untyped-def]
    Person(service.url, "natt").wait_open_checks(1)  # sweep opened it, agents linked
    staff_ctx = browser.new_context(locale="sv-SE")
    patrol_ctx = browser.new_context(locale="sv-SE")
    try:
        patrol = patrol_ctx.new_page()
        login(patrol, service.url, "patrull")
        assert patrol.url.endswith("/patrol")
        patrol.wait_for_selector("#link-state.ok")
        assert patrol.locator("li.alert").count() == 0

        staff = staff_ctx.new_page()
        login(staff, service.url, "natt")
        assert staff.url.endswith("/rounds")
        start = staff.locator("li.check.state-open button.start").first
        start.wait_for()
        recipient = start.locator("xpath=..").locator(".who").inner_text()
        start.click()
        staff.wait_for_function(
            "() => { const v = document.getElementById('lookin-video');"
            " return v && v.videoWidth > 0 && v.currentTime > 0; }", timeout=10_000)
        t0 = staff.evaluate("document.getElementById('lookin-video').currentTime")
        staff.wait_for_timeout(1000)
        t1 = staff.evaluate("document.getElementById('lookin-video').currentTime")
        assert t1 > t0, "the video is playing, not frozen"
        assert staff.evaluate("document.getElementById('lookin-video').videoWidth") == 640
        assert "0:" in staff.locator("#lookin-countdown").inner_text()

        staff.click("button[data-outcome=needs-help]")
        clicked = time.monotonic()
        card = patrol.locator("li.alert", has_text=recipient.split("uppföljning")[0].strip())
        card.wait_for(timeout=2000)
        assert time.monotonic() - clicked < 2.0
        assert "behöver hjälp" in card.inner_text().lower()
        assert "Nyckel/kod" in card.inner_text(), "access info shown on an active dispatch"
        card.locator("button.act-acknowledged").click()
        patrol.locator("li.alert button.act-on-the-way").wait_for(timeout=3000)
    finally:
        staff_ctx.close()
        patrol_ctx.close()

    db = sqlite3.connect(service.root / "test.db")
    deadline = time.monotonic() + 10
    row = None
    while time.monotonic() < deadline:
        row = db.execute(
            "SELECT v.viewer_id, v.camera_id, v.requested_at, v.ended_at, v.seconds, v.outcome,"
            " u.username FROM visits v JOIN users u ON u.id = v.viewer_id").fetchone()
        if row and row[3] is not None:
            break
        time.sleep(0.2)
    assert row is not None
    _viewer_id, camera, start_at, end_at, seconds, outcome, username = row
    assert username == "natt" and camera.startswith("cam-")
    assert start_at and end_at and 0 < seconds < 30
    assert outcome == "needs-help"
    kinds = [k for (k,) in db.execute("SELECT kind FROM audit_events ORDER BY id")]
    for kind in ("lookin.requested", "camera.opened", "check.outcome", "alert.raised",
                 "camera.released", "lookin.ended", "alert.acknowledged"):
        assert kind in kinds, kind
