"""An admin sees every camera live with how its picture leaves the device, registers one
(enrolment code), and revokes one."""

from __future__ import annotations

from tests.browser.conftest import login
from tests.conftest import Service


def test_admin_registers_and_revokes_cameras(service: Service, browser) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(locale="en-GB")
    try:
        page = ctx.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        login(page, service.url, "admin")
        page.goto(service.url + "/admin/cameras")
        page.wait_for_function(
            "() => document.querySelectorAll('li.camera .pill.ok').length === 3", timeout=15_000)
        assert "Astrid Lindqvist" in page.inner_text("#cameras")
        # each camera says how its picture leaves the device, and why (synthetic: encoded)
        page.wait_for_function("() => document.querySelectorAll('li.camera')[0]"
                               ".innerText.includes('decoded and encoded on the device')",
                               timeout=10_000)
        assert "not an RTSP camera" in page.inner_text("li.camera >> nth=0")

        page.click("#register button[type=submit]")
        code = page.locator("#code")
        code.wait_for(state="visible")
        assert "camera-agent enroll" in code.inner_text()
        page.wait_for_function("() => document.querySelectorAll('li.camera').length === 4")
        assert "not enrolled" in page.inner_text("#cameras")

        target = page.locator("li.camera", has_text="cam-0002")
        target.locator("button.revoke").click()
        target.locator(".pill.danger", has_text="revoked").wait_for(timeout=5000)
        page.screenshot(path=str(service.root / "admin_cameras.png"), full_page=True)
    finally:
        ctx.close()
