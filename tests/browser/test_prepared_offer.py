"""The rounds page makes its look-in offer before Start is pressed (no TURN configured: one
offer for whichever check is started), so neither Chromium's gathering wait nor the ICE
request is in the time to first frame; the picture and what an outcome rests on are as
before, and an offer nobody used is closed once no check is open."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.browser.conftest import login
from tests.conftest import Service
from tests.harness import eventually, start_world
from tests.people import Person
from tests.turn.browser import PEERS, RECORD_PEERS
from tests.viewer import see


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = start_world(tmp_path_factory.mktemp("prepared") / "svc", agents=2)
    try:
        yield svc
    finally:
        svc.stop()


def ready_offers(page: Any) -> list[dict[str, Any]]:
    """The open peers whose offer is made and gathered, waiting for at least one."""
    page.wait_for_function(f"() => ({PEERS})().some((p) => p.gathered && !p.closed)",
                           timeout=10_000)
    return [p for p in page.evaluate(PEERS) if p["gathered"] and not p["closed"]]


def test_start_sends_the_offer_made_before_the_press(world: Service, chromium: Any) -> None:
    Person(world.url, "natt").wait_open_checks(2)
    context = chromium.new_context(locale="sv-SE")
    try:
        page = context.new_page()
        page.add_init_script(RECORD_PEERS)
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if r.method == "POST" else None)
        login(page, world.url, "natt")
        page.locator("li.check.state-open button.start").nth(1).wait_for()

        # before any press: one offer, gathered, direct candidates only (no TURN here)
        [waiting] = ready_offers(page)
        assert re.search(r"^a=candidate:.* typ host", waiting["sdp"], flags=re.MULTILINE)
        assert " typ relay" not in waiting["sdp"]
        peers_before = len(page.evaluate(PEERS))
        asked.clear()

        # it serves whichever check is started (here not the first on the board)
        with page.expect_request(re.compile(r"/api/checks/\d+/lookin$")) as lookin:
            page.locator("li.check.state-open button.start").nth(1).click()
        page.wait_for_function("() => document.getElementById('lookin').dataset.ttff",
                               timeout=10_000)
        sent = json.loads(lookin.value.post_data or "{}")["offer"]
        assert sent == waiting["sdp"], "Start sent the offer made before the press"
        assert len(page.evaluate(PEERS)) == peers_before, "no peer made at the press"
        assert not [u for u in asked if u.endswith("/ice")], asked  # nothing asked first
        timing = page.evaluate("window.nattLastLookin")
        assert timing["preparedMs"] >= 0
        # what an outcome rests on is unchanged: Calm unlocks once this viewer saw it
        page.wait_for_function(
            "() => !document.querySelector('button[data-outcome=calm]').disabled",
            timeout=5_000)
        assert any(u.endswith("/picture") for u in asked), asked

        page.click("#lookin-close")
        # the used peer is closed with the look-in; the next offer is made for the next press
        [following] = ready_offers(page)
        assert following["sdp"] != waiting["sdp"]
        peers = page.evaluate(PEERS)
        assert [p["closed"] for p in peers if p["sdp"] == sent] == [True]
        assert sum(not p["closed"] for p in peers) == 1, "one offer waits, no more"

        # every check leaves the open state (another staff member records them): the
        # offer waiting for a press is closed at the board's next refresh, none is made
        natt, kvall = Person(world.url, "natt"), Person(world.url, "kvall")
        session = lookin.value.response().json()["session"]
        eventually(lambda: natt.get(f"/api/lookins/{session}").json()["end_reason"],
                   what="the closed look-in ended")
        for check in natt.wait_open_checks(2):
            with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's loop
                seen = pool.submit(asyncio.run, see(kvall, check["id"])).result()
            done = kvall.post(f"/api/checks/{check['id']}/outcome",
                              {"outcome": "calm", "session": seen})
            assert done.status_code == 200, done.text
        asked.clear()
        page.wait_for_function(f"() => ({PEERS})().every((p) => p.closed)", timeout=15_000)
        assert not [u for u in asked if u.endswith("/ice")], asked
    finally:
        context.close()
