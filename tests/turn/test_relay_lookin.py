"""A look-in relayed by a real coturn, as sites whose policy demands relay run it:
the service mints per-look-in TURN credentials (``use-auth-secret``); Chromium with its
default WebRTC settings (local addresses hidden behind mDNS names, as on staff machines)
gets them before its offer and is told ``iceTransportPolicy: 'relay'``; a real agent
gets its own in the ``lookin`` message and is told to relay too. The video plays over a
relay-to-relay candidate pair, and no page or camera ever holds the TURN secret. An offer
the rounds page makes ahead carries one check's credential and serves no other check."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from supervision import turn
from tests.browser.conftest import login
from tests.conftest import CHROMIUM, Service, need
from tests.harness import start_world
from tests.people import Person
from tests.turn.browser import (
    DEFAULT_WEBRTC_FLAGS,
    PEERS,
    RECORD_PEERS,
    SELECTED_PAIR,
    wait_playing,
)
from tests.turn.coturn import Coturn, allocate, have_coturn, start_coturn

SECRET = "relay-test-secret-" + hashlib.sha256(b"nattillsyn").hexdigest()[:16]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Coturn]]:
    """coturn, the service told to relay, two enrolled agents with no ICE settings of their
    own."""
    need(have_coturn(), "coturn's turnserver not found (apt-get install coturn)")
    root = tmp_path_factory.mktemp("turn")
    coturn = start_coturn(root / "coturn", SECRET)
    svc: Service | None = None
    try:
        svc = start_world(root / "svc", agents=2, turn_urls=json.dumps([coturn.url]),
                          turn_secret=SECRET, turn_credential_seconds="120",
                          ice_transport_policy="relay")
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


def candidate_types(sdp: str) -> list[str]:
    return re.findall(r"^a=candidate:.* typ (\w+)", sdp, flags=re.MULTILINE)


def test_lookin_plays_over_turn_relay_on_both_sides(world: tuple[Service, Coturn],
                                                     chromium: Any) -> None:
    svc, coturn = world
    camera = svc.world["cameras"][0]
    Person(svc.url, "natt").wait_open_checks(1)
    context = chromium.new_context(locale="sv-SE")
    try:
        page = context.new_page()
        page.add_init_script(RECORD_PEERS)
        login(page, svc.url, "natt")
        row = page.locator("li.check.state-open", has_text=camera["recipient"])
        with page.expect_response(re.compile(r"/api/checks/\d+/ice$")) as ice_info, \
                page.expect_response(re.compile(r"/api/checks/\d+/lookin$")) as lookin_info:
            row.locator("button.start").click()
        ice, reply = ice_info.value.json(), lookin_info.value.json()
        offer = json.loads(lookin_info.value.request.post_data or "{}")["offer"]
        wait_playing(page)
        pair = page.evaluate(SELECTED_PAIR)
        config = page.evaluate("window.nattPeers[window.nattPeers.length - 1].config")
        html = page.content()
        page.click("#lookin-close")
    finally:
        context.close()

    # the page made its peer with the servers it asked for before the offer, relay only
    assert config["iceTransportPolicy"] == "relay"
    turn_entry = next(s for s in config["iceServers"] if "username" in s)
    assert turn_entry["urls"] == [coturn.url]
    expiry, subject = turn_entry["username"].split(":", 1)
    assert re.fullmatch(r"check\d+-user\d+-[0-9a-f]{8}", subject), subject
    assert turn_entry["credential"] == turn.credential(SECRET, turn_entry["username"])
    # ... valid no longer than the ticket the look-in got after it
    assert int(expiry) <= datetime.fromisoformat(reply["expires_at"]).timestamp()
    assert ice["ice_transport_policy"] == "relay"
    # the browser offered relayed candidates only (no host or mDNS candidate) ...
    assert candidate_types(offer) and set(candidate_types(offer)) == {"relay"}, offer
    # ... and so did the camera: aiortc gathered nothing but its own TURN allocation
    assert candidate_types(reply["sdp"]) and set(candidate_types(reply["sdp"])) == {"relay"}
    # the media flows relay to relay: the browser's own relayed candidate, paired with the
    # camera's relayed candidate (an address coturn allocated on loopback)
    assert pair is not None and pair["state"] == "succeeded", pair
    assert (pair["local"], pair["remote"]) == ("relay", "relay"), pair
    assert pair["localUrl"] and str(coturn.port) in pair["localUrl"], pair
    assert pair["bytesReceived"] > 0
    # coturn allocated for both, each under its own short-lived name: the camera's
    # named for the visit, the browser's for check and viewer
    log = coturn.log
    assert re.search(rf"user <\d+:{reply['session']}>: incoming packet ALLOCATE processed, "
                     "success", log), log[-3000:]
    assert re.search(rf"user <{re.escape(turn_entry['username'])}>: incoming packet "
                     "ALLOCATE processed, success", log), log[-3000:]
    # the secret is on no page and no camera
    assert SECRET not in html and SECRET not in json.dumps(ice) and SECRET not in json.dumps(reply)
    for path in svc.agent_dir(camera["camera_id"]).rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    agent_config = (svc.agent_dir(camera["camera_id"]) / "agent.toml").read_text()
    assert "ice_servers" not in agent_config  # the camera has no TURN account of its own


def test_ice_credentials_only_for_staff_who_may_look_in_now(world: tuple[Service, Coturn]) -> None:
    svc, coturn = world
    natt = Person(svc.url, "natt")
    checks = natt.rounds()
    open_check = next(c for c in checks if c["state"] == "open")
    planned = next(c for c in checks if c["state"] == "planned")
    asked = datetime.now(UTC)
    reply = natt.post(f"/api/checks/{open_check['id']}/ice")
    assert reply.status_code == 200, reply.text
    ice = reply.json()
    assert ice["ice_transport_policy"] == "relay"
    (server,) = ice["ice_servers"]
    assert server["urls"] == [coturn.url]
    expires_at = datetime.fromisoformat(ice["expires_at"])
    assert int(server["username"].split(":")[0]) == int(expires_at.timestamp())
    # no longer than a ticket could last: the plan's maximum look-in (30 s), its window
    assert expires_at <= asked + timedelta(seconds=open_check["max_lookin_seconds"] + 1)
    assert expires_at <= datetime.fromisoformat(open_check["closes_at"])
    assert isinstance(allocate(coturn, server["username"], server["credential"]), tuple)
    # two asks, two credentials
    assert natt.post(f"/api/checks/{open_check['id']}/ice").json()["ice_servers"][0][
        "username"] != server["username"]

    def code(person: Person, check_id: int, csrf: bool = True) -> tuple[int, str]:
        answer = person.post(f"/api/checks/{check_id}/ice", csrf=csrf)
        detail = answer.json().get("detail")
        return answer.status_code, detail.get("code") if isinstance(detail, dict) else ""

    assert code(natt, planned["id"]) == (409, "error.outside_window")
    assert code(natt, 2**31 - 1) == (404, "error.no_check")
    assert code(natt, open_check["id"], csrf=False) == (403, "error.csrf")
    for other in ("patrull", "chef", "admin"):  # only night staff look in
        assert code(Person(svc.url, other), open_check["id"]) == (403, "error.role")
    anonymous = natt.http.__class__(base_url=svc.url)
    assert anonymous.post(f"/api/checks/{open_check['id']}/ice").status_code == 401


#: each of the page's peers: the TURN username it was made with, and its state
TURN_PEERS = f"""() => {{
  const states = ({PEERS})();
  return window.nattPeers.map(({{ config }}, i) => ({{
    ...states[i],
    username: ((config.iceServers || []).find((s) => s.username) || {{}}).username || null,
  }}));
}}"""


def test_an_offer_with_a_turn_credential_serves_only_its_own_check(
        world: tuple[Service, Coturn], chromium: Any) -> None:
    """With TURN, an offer made ahead carries one check's short-lived TURN credential: the
    rounds page makes it only for the row under the pointer (or the focus), never at load,
    and a look-in on another check never uses it (it gets its own, and the other is closed)."""
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
