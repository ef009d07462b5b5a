"""With TURN, an offer made ahead carries one check's short-lived TURN credential: the
rounds page makes it only for the row under the pointer (or the focus), never at load,
and a look-in on another check never uses it (it gets its own, and the other is closed)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.browser.conftest import login
from tests.browser.test_prepared_offer import PEERS, two_cameras
from tests.conftest import CHROMIUM, Service, need
from tests.people import Person
from tests.turn.browser import DEFAULT_WEBRTC_FLAGS, RECORD_PEERS
from tests.turn.coturn import Coturn, have_coturn, start_coturn

SECRET = "prepared-test-secret-" + hashlib.sha256(b"ahead").hexdigest()[:16]

#: each of the page's peers: the TURN username it was made with, and its state
TURN_PEERS = f"""() => {{
  const states = ({PEERS})();
  return window.nattPeers.map(({{ config }}, i) => ({{
    ...states[i],
    username: ((config.iceServers || []).find((s) => s.username) || {{}}).username || null,
  }}));
}}"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Coturn]]:
    need(have_coturn(), "coturn's turnserver not found (apt-get install coturn)")
    root = tmp_path_factory.mktemp("prepared-turn")
    coturn = start_coturn(root / "coturn", SECRET)
    svc: Service | None = None
    try:
        svc = two_cameras(root / "svc", turn_urls=json.dumps([coturn.url]), turn_secret=SECRET,
                          turn_credential_seconds="120", ice_transport_policy="relay")
        yield svc, coturn
    finally:
        if svc is not None:
            svc.stop()
        coturn.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    need(os.path.exists(CHROMIUM), f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=DEFAULT_WEBRTC_FLAGS)
        yield browser
        browser.close()


def test_an_offer_with_a_turn_credential_serves_only_its_own_check(
        world: tuple[Service, Coturn], chromium: Any) -> None:
    svc, _ = world
    Person(svc.url, "natt").wait_open_checks(2)
    context = chromium.new_context(locale="sv-SE")
    try:
        page = context.new_page()
        page.add_init_script(RECORD_PEERS)
        login(page, svc.url, "natt")  # waits until the network is idle
        rows = page.locator("li.check.state-open:has(button.start)")
        rows.nth(1).wait_for()
        first, second = (rows.nth(i).get_attribute("data-check") for i in (0, 1))
        assert page.evaluate(TURN_PEERS) == [], "no TURN credential is used up at load"

        # the pointer on a row: an offer for that check, with that check's credential
        rows.nth(0).hover()
        page.wait_for_function(f"() => ({TURN_PEERS})().some((p) => p.gathered)",
                               timeout=10_000)
        [ahead] = page.evaluate(TURN_PEERS)
        assert re.fullmatch(rf"\d+:check{first}-user\d+-[0-9a-f]{{8}}", ahead["username"])
        assert set(re.findall(r" typ (\w+)", ahead["sdp"])) == {"relay"}

        # Start on the other check: its own credential, and the first offer is closed
        with page.expect_response(re.compile(r"/api/checks/\d+/lookin$")) as lookin:
            rows.nth(1).locator("button.start").click()
        page.wait_for_function("() => document.getElementById('lookin').dataset.ttff",
                               timeout=15_000)
        sent = json.loads(lookin.value.request.post_data or "{}")["offer"]
        peers = page.evaluate(TURN_PEERS)
        [used] = [p for p in peers if p["sdp"] == sent]
        assert re.fullmatch(rf"\d+:check{second}-user\d+-[0-9a-f]{{8}}", used["username"])
        assert int(used["username"].split(":")[0]) <= datetime.fromisoformat(
            lookin.value.json()["expires_at"]).timestamp()
        assert [p["closed"] for p in peers if p["username"] == ahead["username"]] == [True]
        page.click("#lookin-close")
    finally:
        context.close()
