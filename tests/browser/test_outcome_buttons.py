"""The rounds page in Chromium: night staff take tonight's shift with one button; outcome
buttons unlock only with the picture, say why they are disabled, and a second staff member
refused the video can send the patrol but not press Calm; the note reaches the patrol's
card."""

from __future__ import annotations

from tests.browser.conftest import login
from tests.conftest import Service


def test_buttons_follow_the_picture_and_the_note_reaches_the_patrol(
        service: Service, browser: object) -> None:
    natt_ctx = browser.new_context(locale="sv-SE")  # type: ignore[attr-defined]
    kvall_ctx = browser.new_context(locale="sv-SE")  # type: ignore[attr-defined]
    patrol_ctx = browser.new_context(locale="sv-SE")  # type: ignore[attr-defined]
    try:
        patrol = patrol_ctx.new_page()
        login(patrol, service.url, "patrull")
        natt = natt_ctx.new_page()
        login(natt, service.url, "natt")
        # first the night's shift: one button on the board, then the board says so
        take = natt.locator("#shifts li.shift button.take").first
        take.wait_for()
        assert "Du har inte det här passet." in natt.locator("#shifts li.shift").first.inner_text()
        take.click()
        natt.locator("#shifts li.shift.on button.leave").first.wait_for(timeout=5000)
        shift = natt.locator("#shifts li.shift.on").first.inner_text()
        assert "Du har det här passet." in shift and "Nora Natt" in shift, shift
        start = natt.locator("li.check.state-open button.start").first
        start.wait_for()
        check = start.locator("xpath=..").get_attribute("data-check")
        start.click()
        # a modal dialog: the keyboard is in it, the board behind it is inert
        assert natt.evaluate("document.activeElement.id") == "lookin-name"
        assert natt.evaluate("document.getElementById('board').inert") is True
        natt.wait_for_function(
            "() => document.getElementById('lookin-video').videoWidth > 0", timeout=10_000)
        calm = natt.locator("button[data-outcome=calm]")
        calm.wait_for(state="visible")
        natt.wait_for_function(
            "() => !document.querySelector('button[data-outcome=calm]').disabled",
            timeout=5_000)
        assert natt.locator("button[data-outcome=technical-failure]").is_disabled()
        box = natt.locator("#lookin-close").bounding_box()
        assert box is not None and box["height"] >= 16, "the way out keeps its size"

        # kvall tries the same check while natt watches: refused, so only Technical failure
        kvall = kvall_ctx.new_page()
        login(kvall, service.url, "kvall")
        theirs = kvall.locator(f"li.check[data-check='{check}'] button.start")
        theirs.wait_for()
        theirs.click()
        kvall.wait_for_function(
            "() => !document.querySelector('button[data-outcome=technical-failure]').disabled",
            timeout=10_000)
        assert kvall.locator("button[data-outcome=calm]").is_disabled()
        assert kvall.locator("#outcome-why").inner_text().strip(), "says why"
        assert "Nora Natt" in kvall.locator("#lookin-status").inner_text()
        kvall.click("#lookin-close")  # closed: the keyboard is back on the board
        assert kvall.evaluate("document.getElementById('board').inert") is False
        assert kvall.evaluate("document.activeElement.closest('#board') !== null")

        natt.fill("#outcome-note", "Andas tungt, ligger på golvet")
        natt.click("button[data-outcome=needs-help]")
        card = patrol.locator("li.alert:has-text('Andas tungt')")
        card.wait_for(timeout=3000)
        assert "Nora Natt" in card.inner_text() or "natt" in card.inner_text()
    finally:
        natt_ctx.close()
        kvall_ctx.close()
        patrol_ctx.close()
