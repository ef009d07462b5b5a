"""What a new user noticed, checked in Chromium against a real service with real agents:
refusals name their values, every word is Swedish on a Swedish page (plurals included),
each role starts on its own page and sees only what it may do, nothing is wider than a
390 px phone, a signed-in person never gets a login form, the board shows the plan's local
time, the startup log names the real port, and saving a plan says when no camera can look.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from supervision.i18n import catalog
from tests.browser.conftest import login
from tests.harness import Service, eventually, in_thread, make_service, start_world
from tests.people import Person

PHONE = {"width": 390, "height": 844}
#: 120+ characters without a space: a name and an address nothing can wrap at a space
LONG_NAME = "Cecilia" + "Holmqvistdotter" * 8
LONG_ADDRESS = "Sjögatan" + "7B" * 60
STOCKHOLM = ZoneInfo("Europe/Stockholm")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service with three running agents for the module (each test leaves it usable)."""
    svc = start_world(tmp_path_factory.mktemp("new_user") / "svc")
    try:
        yield svc
    finally:
        svc.stop()


def sql(svc: Service, statement: str, *values: object) -> None:
    with sqlite3.connect(svc.root / "test.db") as db:
        db.execute(statement, values)


def phone(browser: Any, locale: str = "sv-SE", **options: Any) -> Any:
    return browser.new_context(locale=locale, viewport=PHONE, **options)


def open_check(svc: Service, recipient: int) -> dict[str, Any]:
    staff = Person(svc.url, "natt")
    return eventually(lambda: next(
        (c for c in staff.rounds() if c["state"] == "open" and c["camera_online"]
         and c["id"] in _checks_of(svc, recipient)), None),
        30, f"an open check for recipient {recipient}")


def _checks_of(svc: Service, recipient: int) -> set[int]:
    with sqlite3.connect(svc.root / "test.db") as db:
        return {row[0] for row in db.execute(
            "SELECT id FROM checks WHERE recipient_id = ?", (recipient,))}


def start_lookin(page: Any, check_id: int) -> None:
    page.locator(f"li.check[data-check='{check_id}'] button.start").click()
    page.wait_for_function(
        "() => document.getElementById('lookin-video').videoWidth > 0", timeout=15_000)


# --- the startup log -----------------------------------------------------------------------

def test_startup_log_names_the_port_the_service_listens_on(tmp_path: Path) -> None:
    svc = make_service(tmp_path / "svc")
    del svc.env["SUPERVISION_PUBLIC_URL"]  # left at its default, which names port 8000
    svc.start()
    try:
        line = eventually(lambda: next((ln for ln in svc.log.read_text().splitlines()
                                        if "supervision ready" in ln), None), 10, "ready line")
    finally:
        svc.stop()
    assert f"listening on 127.0.0.1:{svc.port}" in line, line
    assert "public URL http://127.0.0.1:8000" in line, line


# --- refusals carry their values ---------------------------------------------------------

def test_refusals_show_their_values_and_the_services_own_words(world: Service,
                                                               browser: Any) -> None:
    natt_ctx, kvall_ctx = phone(browser), phone(browser)
    try:
        natt = natt_ctx.new_page()
        login(natt, world.url, "natt")
        # the cause: an ApiError's message was its code, so showing it lost every value;
        # and the page's words for a code cannot translate a coded value the service did
        shown = natt.evaluate("""async () => {
          const { ApiError, explain } = await import('/static/common.js');
          const busy = new ApiError(409, { detail: { code: 'error.being_viewed',
            message: 'Kameran används just nu av Nora Natt.', viewer: 'Nora Natt' } });
          const bare = new ApiError(409,
            { detail: { code: 'error.being_viewed', viewer: 'Kalle' } });
          const coded = new ApiError(409, { detail: { code: 'error.not_authorised',
            reason: 'paused', message: 'Servern: tillsynen är pausad' } });
          return [busy.message, explain(busy), bare.message, explain(coded),
                  explain(new Error('error.network')), explain(new TypeError('Failed to fetch'))];
        }""")
        assert shown[0] == shown[1] == "Kameran används just nu av Nora Natt."
        assert shown[2] == "Kameran används just nu av Kalle."
        assert shown[3] == "Servern: tillsynen är pausad"
        assert shown[4] == shown[5] == catalog("sv")["error.network"]

        # and for real: kvall is refused the camera natt is watching, and told by whom
        check = open_check(world, 1)
        start_lookin(natt, check["id"])
        kvall = kvall_ctx.new_page()
        login(kvall, world.url, "kvall")
        kvall.locator(f"li.check[data-check='{check['id']}'] button.start").click()
        kvall.wait_for_function(
            "() => document.getElementById('lookin-status').textContent.includes('Nora Natt')",
            timeout=10_000)
        assert "{viewer}" not in kvall.locator("#lookin-status").inner_text()
        kvall.screenshot(path=str(world.root / "being_viewed.png"))
        natt.click("#lookin-close")
    finally:
        natt_ctx.close()
        kvall_ctx.close()


# --- Swedish everywhere ------------------------------------------------------------------

def test_lookin_end_reasons_are_words_on_the_admin_cameras_page(world: Service,
                                                                browser: Any) -> None:
    check = open_check(world, 2)
    ctx, admin_ctx = phone(browser), phone(browser)
    try:
        natt = ctx.new_page()
        login(natt, world.url, "natt")
        start_lookin(natt, check["id"])
        natt.click("#lookin-close")  # ended by the viewer: the agent's heartbeat says so
        admin = admin_ctx.new_page()
        login(admin, world.url, "admin")
        admin.goto(world.url + "/admin/cameras")
        card = admin.locator("li.camera[data-camera='cam-0002']")
        sv = catalog("sv")
        label = sv["agents.cameras.last_lookin"] + ": "
        card.locator(f"text={label}").wait_for(timeout=30_000)
        said = card.inner_text().split(label, 1)[1].splitlines()[0]
        # the viewer closed it: "ended" or "peer-closed", whichever the agent saw first
        assert said in {sv["agents.end.ended"], sv["agents.end.peer-closed"]}, said
        admin.screenshot(path=str(world.root / "admin_cameras_sv.png"), full_page=True)
    finally:
        ctx.close()
        admin_ctx.close()


def test_new_recipient_form_speaks_the_pages_language_with_plurals(world: Service,
                                                                   browser: Any) -> None:
    sv, en = catalog("sv"), catalog("en")
    for locale, words in (("sv-SE", sv), ("en-GB", en)):
        ctx = phone(browser, locale)
        try:
            page = ctx.new_page()
            login(page, world.url, "chef")
            page.click("details.new-recipient summary")
            page.fill("#new-recipient input[name=name]", "   ")  # blank once trimmed
            page.click("#new-recipient button[type=submit]")
            summary = page.locator("#new-recipient-status")
            summary.locator("ul li").nth(1).wait_for(timeout=5000)
            text = summary.inner_text()
            assert words["manage.form_errors.other"].replace("{count}", "2") in text, text
            assert "plan" not in text.lower().split(":")[0], "a recipient form, not a plan"
            name_error = page.locator("[data-field=name] .field-error").inner_text()
            assert words["validation.missing"] in name_error, name_error
            for english in ("Field required", "String should"):
                assert english not in text
            # one problem left: the singular
            page.fill("#new-recipient input[name=name]", "Dagny Ek")
            page.click("#new-recipient button[type=submit]")
            page.wait_for_function("() => document.querySelectorAll("
                                   "'#new-recipient-status li').length === 1")
            assert words["manage.form_errors.one"].replace("{count}", "1") in summary.inner_text()
            page.screenshot(path=str(world.root / f"new_recipient_{locale}.png"), full_page=True)
        finally:
            ctx.close()


def test_api_refusals_come_in_the_pages_language(world: Service, browser: Any) -> None:
    """A Swedish page (the person's own setting) in an English browser: the service's
    refusal is in Swedish too, not in the browser's language."""
    sql(world, "UPDATE users SET locale = 'sv' WHERE username = 'admin'")
    ctx = phone(browser, "en-GB")
    try:
        page = ctx.new_page()
        login(page, world.url, "admin")
        assert page.evaluate("document.documentElement.lang") == "sv"
        shown = page.evaluate("""async () => {
          const { api, explain } = await import('/static/common.js');
          try { await api('/api/checks/1/outcome', { method: 'POST', body: { outcome: 'calm' } }); }
          catch (error) { return [error.status, error.message, explain(error)]; }
        }""")
        assert shown == [403, catalog("sv")["error.role"], catalog("sv")["error.role"]]
    finally:
        ctx.close()
        sql(world, "UPDATE users SET locale = NULL WHERE username = 'admin'")


# --- each role's own page, and only what it may do ---------------------------------------

def test_each_role_lands_on_its_own_page_and_sees_only_what_it_may_do(
        world: Service, browser: Any) -> None:
    homes = {"natt": "/rounds", "patrull": "/patrol", "chef": "/manage",
             "admin": "/admin/cameras"}
    for username, home in homes.items():
        ctx = phone(browser)
        try:
            page = ctx.new_page()
            login(page, world.url, username)
            assert page.url == world.url + home, (username, page.url)
            if username in ("natt", "admin"):
                page.goto(world.url + "/rounds")
                page.locator("li.check").first.wait_for(timeout=15_000)
                visible = page.locator("li.check button.start:visible").count()
                if username == "natt":
                    assert visible > 0
                else:  # the admin may follow the board, not look in or record outcomes
                    assert visible == 0
                    assert page.locator(".view-only").is_visible()
                    page.screenshot(path=str(world.root / "admin_board.png"), full_page=True)
        finally:
            ctx.close()


def test_a_signed_in_person_gets_no_login_form(world: Service, browser: Any) -> None:
    ctx = phone(browser)
    try:
        page = ctx.new_page()
        login(page, world.url, "natt")
        assert page.url.endswith("/rounds")
        page.go_back()  # to /login, from which the board was reached
        page.wait_for_load_state("networkidle")
        assert page.url.endswith("/rounds"), page.url
        assert page.locator("input[type=password]").count() == 0
        page.goto(world.url + "/login?next=/rounds")
        assert page.url.endswith("/rounds")

        # a page of another role: a page that says so, with the way home, not a login form
        chef_ctx = phone(browser)
        chef = chef_ctx.new_page()
        login(chef, world.url, "chef")
        reply = chef.goto(world.url + "/rounds")
        assert reply is not None and reply.status == 403
        assert chef.locator("input[type=password]").count() == 0
        assert chef.locator("h1").inner_text() == catalog("sv")["forbidden.title"]
        assert chef.locator("a.home").get_attribute("href") == "/manage"
        chef.screenshot(path=str(world.root / "forbidden.png"))
        chef.click("a.home")
        assert chef.url.endswith("/manage")
        chef_ctx.close()
    finally:
        ctx.close()
    # without a browser: the same answers
    with httpx.Client(base_url=world.url) as http:
        assert http.get("/login").status_code == 200  # nobody signed in: the form
    chef_http = Person(world.url, "chef")
    page = chef_http.get("/login")
    assert page.status_code == 303 and page.headers["location"] == "/manage"
    assert chef_http.get("/login?next=//evil.example").headers["location"] == "/manage"
    assert chef_http.get("/admin/cameras").status_code == 403


# --- the plan's local time ---------------------------------------------------------------

def test_board_shows_the_plans_local_time_in_a_browser_elsewhere(world: Service,
                                                                 browser: Any) -> None:
    checks = Person(world.url, "natt").rounds()
    assert checks and {c["timezone"] for c in checks} == {"Europe/Stockholm"}
    ctx = phone(browser, "sv-SE", timezone_id="America/New_York")
    try:
        page = ctx.new_page()
        login(page, world.url, "natt")
        page.locator("li.check").first.wait_for(timeout=15_000)
        shown = dict(page.evaluate("""() => [...document.querySelectorAll('li.check')]
            .map((li) => [li.dataset.check, li.querySelector('.due').textContent])"""))
        for c in checks:
            if str(c["id"]) in shown:
                local = datetime.fromisoformat(c["due_at"]).astimezone(STOCKHOLM)
                assert shown[str(c["id"])] == local.strftime("%H:%M"), (c, shown)
        assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == \
            "America/New_York"
    finally:
        ctx.close()


# --- nothing wider than a phone ----------------------------------------------------------

def test_nothing_overflows_a_phone_with_long_names(world: Service, browser: Any) -> None:
    sql(world, "UPDATE recipients SET name = ?, address = ? WHERE id = 3",
        LONG_NAME, LONG_ADDRESS)
    later = min((c for c in Person(world.url, "natt").rounds()
                 if c["id"] in _checks_of(world, 3) and c["state"] == "planned"),
                key=lambda c: c["due_at"])

    async def alert() -> None:  # the patrol's card for this recipient, raised in-process
        from supervision.alerts import raise_alert
        from supervision.checks import AlertEffect
        from supervision.db import Database
        from supervision.models import Check
        database = Database.open(world.env["SUPERVISION_DATABASE_URL"])
        try:
            async with database.write() as db:
                check = (await db.execute(select(Check).where(
                    Check.id == later["id"]))).scalar_one()
                await raise_alert(db, check, AlertEffect(1, "needs-help"), "test",
                                  webhook_on=False)
        finally:
            await database.engine.dispose()

    in_thread(alert)
    pages = {"natt": ["/rounds"], "patrull": ["/patrol"],
             "chef": ["/manage", "/manage/recipients/3", "/audit/recipients/3"],
             "admin": ["/admin/cameras", "/rounds", "/patrol", "/admin/webhook"]}
    for username, paths in pages.items():
        ctx = phone(browser)
        try:
            page = ctx.new_page()
            login(page, world.url, username)
            for path in paths:
                page.goto(world.url + path)
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(500)  # the scripts' first render
                if path != "/admin/webhook":  # the one page without recipients
                    assert LONG_NAME[:40] in page.inner_text("body"), (username, path)
                width = page.evaluate("document.scrollingElement.scrollWidth")
                shot = world.root / f"phone_{username}_{path.strip('/').replace('/', '_')}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert width <= PHONE["width"], (username, path, width, shot)
            if username == "natt":  # the look-in: countdown and outcome buttons on screen
                start_lookin(page, open_check(world, 3)["id"])
                page.wait_for_function(
                    "() => document.getElementById('lookin-countdown').textContent !== ''")
                for selector in ("#lookin-countdown", "button[data-outcome=calm]",
                                 "button[data-outcome=not-visible]",
                                 "button[data-outcome=needs-help]",
                                 "button[data-outcome=technical-failure]"):
                    box = page.locator(selector).bounding_box()
                    assert box is not None, selector
                    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], \
                        (selector, box)
                    assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], \
                        (selector, box)
                assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
                page.screenshot(path=str(world.root / "phone_lookin.png"))
                page.click("#lookin-close")
        finally:
            ctx.close()


# --- saving a plan no camera can look through --------------------------------------------

def test_saving_warns_when_no_camera_can_look_in(world: Service, browser: Any) -> None:
    chef = Person(world.url, "chef")
    plan = chef.get("/api/recipients/2").json()["plan"]
    made = chef.post("/api/recipients", {"name": "Dagny Ek", "address": "Ekvägen 1"})
    assert made.status_code == 201, made.text
    body = dict(plan, effective_from=None)
    headers = {"X-CSRF-Token": chef.csrf}
    saved = chef.http.put(f"/api/recipients/{made.json()['id']}/plan", json=body,
                          headers=headers)
    assert saved.status_code == 200, saved.text
    assert saved.json()["warnings"] == ["no-camera"]
    online = chef.http.put("/api/recipients/2/plan", json=body, headers=headers).json()
    assert online["warnings"] == [], online

    ctx = phone(browser)
    try:
        page = ctx.new_page()
        login(page, world.url, "chef")
        page.goto(world.url + "/manage/recipients/2")
        now = page.locator("#camera-now [data-camera-state]")
        now.wait_for()
        assert now.get_attribute("data-camera-state") == "online"
        # the camera goes away while the editor is open: the page says so by itself
        world.agents["cam-0002"].terminate()
        world.agents["cam-0002"].wait(10)
        page.wait_for_selector("#camera-now [data-camera-state=offline]", timeout=30_000)
        save = page.locator("#save")
        assert abs(now.bounding_box()["y"] - save.bounding_box()["y"]) < 120, \
            "the camera's state is beside the save button"

        after = page.locator("input[name=window_after_minutes]")
        after.fill(str(int(after.input_value()) + 1))
        save.click()
        warning = page.locator("#save-warnings li[data-warning=camera-offline]")
        warning.wait_for(timeout=10_000)
        assert warning.inner_text() == catalog("sv")["manage.warning.camera-offline"]
        page.screenshot(path=str(world.root / "save_warning.png"), full_page=False)
    finally:
        ctx.close()
        world.start_agent("cam-0002")
