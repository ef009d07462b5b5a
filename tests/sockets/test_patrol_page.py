"""The patrol page in real Chromium: when its session ends (logout in another tab) it goes
to the login page at once and keeps no door code on screen; opened on another origin it
says so, shows nothing and does not retry."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.browser.conftest import browser, login  # noqa: F401 (browser: a fixture)
from tests.sockets.conftest import Start

STRINGS = Path(__file__).parents[2] / "supervision" / "i18n" / "en" / "common.json"
WRONG_ORIGIN = json.loads(STRINGS.read_text())["patrol.wrong_origin"]


def test_logout_in_another_tab_takes_the_patrol_page_to_login(  # type: ignore[no-untyped-def]
        start: Start, browser) -> None:  # noqa: F811
    svc = start()
    ctx = browser.new_context(locale="en-GB")
    try:
        page = ctx.new_page()
        login(page, svc.url, "patrull")
        assert page.url.endswith("/patrol")
        page.wait_for_selector("#link-state.ok")
        page.wait_for_selector("li.alert .access")  # door codes on screen
        other = ctx.new_page()  # a second tab of the same session
        other.goto(svc.url + "/patrol")
        other.click("form[action='/logout'] button")
        other.wait_for_url(re.compile(r"/login"))
        page.wait_for_url(re.compile(r"/login"), timeout=2000)
        assert page.locator(".access").count() == 0
    finally:
        ctx.close()


def test_patrol_page_on_another_origin_gets_nothing(  # type: ignore[no-untyped-def]
        start: Start, browser) -> None:  # noqa: F811
    svc = start()
    elsewhere = svc.url.replace("127.0.0.1", "localhost")  # same service, another origin
    ctx = browser.new_context(locale="en-GB")
    try:
        page = ctx.new_page()
        login(page, svc.url, "patrull")
        # the same session cookie, given to the other host name
        ctx.add_cookies([{**c, "domain": "localhost"} for c in ctx.cookies(svc.url)])
        sockets: list[object] = []
        page.on("websocket", lambda ws: sockets.append(ws))
        page.goto(elsewhere + "/patrol")
        page.wait_for_function("(text) => document.getElementById('link-state').textContent"
                               " === text", arg=WRONG_ORIGIN, timeout=10_000)
        page.wait_for_timeout(3000)  # a retry would come within 0.5-1 s
        assert len(sockets) == 1, "no retry: retrying cannot help"
        assert page.locator("li.alert").count() == 0
    finally:
        ctx.close()
