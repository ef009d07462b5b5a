"""The people and recipient pages in Chromium, as the roles that use them: an admin adds a
person and gets a one-time link, the new person sets a password through it and signs in; a
manager sees a recipient without consent on record as such on the list and in the plan
editor (which has no consent inputs, only the records' state and a link to them), edits the
recipient and records consent, which the editor then shows; a manager puts night staff on
tonight's shift and takes them off; everyone changes their own password on the account page
(reached from the header). One service and one browser for the module."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervision.i18n import Translator
from tests.browser.conftest import login
from tests.harness import Service, make_service
from tests.people import Person

NEW_PASSWORD = "blåbärssylt på lördag"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = make_service(tmp_path_factory.mktemp("people_pages") / "svc")
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def page_of(chromium: Any, errors: list[str]) -> Any:
    ctx = chromium.new_context(locale="sv-SE", timezone_id="Europe/Stockholm")
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())
    return page


def test_admin_adds_a_person_who_sets_a_password_by_the_link(service: Service,
                                                             chromium: Any) -> None:
    errors: list[str] = []
    admin = page_of(chromium, errors)
    try:
        login(admin, service.url, "admin")
        admin.click("header nav a[href='/admin/users']")
        admin.wait_for_url("**/admin/users")
        admin.locator("#users tr[data-user=chef]").wait_for()
        admin.fill("#add-user input[name=username]", "maja")
        admin.fill("#add-user input[name=display_name]", "Maja Nattsköterska")
        admin.select_option("#add-user select[name=role]", "staff")
        admin.click("#add-user button[type=submit]")
        link_text = admin.locator("#link")
        link_text.wait_for()
        found = re.search(r"(https?://\S+/account/password/[\w-]+)", link_text.inner_text())
        assert found, link_text.inner_text()
        row = admin.locator("#users tr[data-user=maja]")
        row.wait_for()
        assert row.locator(".state").inner_text() == "väntar på lösenord"
    finally:
        admin.context.close()

    newcomer = page_of(chromium, errors)
    try:
        newcomer.goto(found.group(1))
        assert "Maja Nattsköterska" in newcomer.inner_text("main")
        newcomer.fill("#set-password input[name=password]", "sommaren2024!")  # too common
        newcomer.click("#set-password button[type=submit]")
        newcomer.locator("#status.error").wait_for()
        assert newcomer.inner_text("#status").strip(), "the refusal says why, in Swedish"
        newcomer.fill("#set-password input[name=password]", NEW_PASSWORD)
        newcomer.click("#set-password button[type=submit]")
        newcomer.locator("#status a[href='/login']").wait_for()
        login(newcomer, service.url, "maja", NEW_PASSWORD)
        assert newcomer.url.endswith("/rounds"), newcomer.url
        assert "Maja Nattsköterska" in newcomer.inner_text("header .who")
        newcomer.goto(found.group(1))  # spent: the page says so, no form
        assert newcomer.locator("#set-password").count() == 0
    finally:
        newcomer.context.close()
    assert not errors, errors


def test_manager_edits_a_recipient_and_records_consent(service: Service, chromium: Any) -> None:
    chef = Person(service.url, "chef")
    made = chef.post("/api/recipients", {"name": "Gun Gran", "address": "Tallvägen 3",
                                         "access_info": "Kod 3"})
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    saved = chef.http.put(f"/api/recipients/{rid}/plan", json={"check_times": [{"at": "22:00"}]},
                          headers={"X-CSRF-Token": chef.csrf})
    assert saved.status_code == 200, saved.text
    sv = Translator("sv")
    errors: list[str] = []
    page = page_of(chromium, errors)
    try:
        login(page, service.url, "chef")
        page.goto(service.url + "/manage")
        pill = page.locator(f"tr[data-recipient='{rid}'] [data-consent=not-recorded]")
        assert pill.inner_text() == sv("manage.consent.not_recorded"), "the list says why"
        page.goto(service.url + f"/manage/recipients/{rid}")
        # the editor has no consent of its own: it shows the records' and links to them
        state = page.locator("#plan-consent-state")
        page.wait_for_function("(text) => document.getElementById('plan-consent-state')"
                               ".textContent === text", arg=sv("manage.consent.not_on_record"))
        assert page.locator("#plan-consent input").count() == 0
        assert page.locator("#plan-consent a[href='#consent-records']").is_visible()
        page.click("#details summary")
        page.fill("#recipient-form input[name=unit]", "Söder")
        page.fill("#recipient-form textarea[name=care_notes]", "Sover med lampa tänd")
        page.click("#add-contact")
        contact = page.locator("#contacts li").last
        contact.locator("input[name='contact.name']").fill("Eva Ek")
        contact.locator("input[name='contact.relation']").fill("dotter")
        contact.locator("input[name='contact.phone']").fill("070-123 45 67")
        page.click("#recipient-form button[type=submit]")
        page.wait_for_function(
            "() => document.getElementById('details-status').textContent.trim() !== ''")
        assert "error" not in (page.get_attribute("#details-status", "class") or ""), \
            page.inner_text("#details-status")

        page.click("#plan-consent a[href='#consent-records']")
        page.click("#consent-records details summary")
        page.select_option("#consent-form select[name=party]", "person")
        page.fill("#consent-form input[name=name]", "Gun Gran")
        page.select_option("#consent-form select[name=method]", "written")
        page.fill("#consent-form input[name=document_ref]", "DNR 2026/7")
        page.fill("#consent-form input[name=given_on]", "2026-01-02")
        page.click("#consent-form button[type=submit]")
        page.locator("#consent-list li[data-record]").wait_for()
        assert "DNR 2026/7" in page.inner_text("#consent-list")
        complete = sv("manage.consent.complete", **{"from": "2026-01-02", "until": "…"})
        page.wait_for_function("(text) => document.getElementById('plan-consent-state')"
                               ".textContent === text", arg=complete)
        page.reload()
        page.wait_for_function("(text) => document.getElementById('plan-consent-state')"
                               ".textContent === text", arg=complete)
        assert "error" not in (state.get_attribute("class") or ""), "and so after a reload"
    finally:
        page.context.close()
    assert not errors, errors
    detail = chef.get(f"/api/recipients/{rid}").json()
    assert detail["unit"] == "Söder" and detail["care_notes"] == "Sover med lampa tänd"
    assert detail["contacts"] == [{"name": "Eva Ek", "relation": "dotter",
                                   "phone": "070-123 45 67"}]
    assert detail["consent"]["on_record"] and detail["consent"]["state"] == "valid"


def test_manager_puts_night_staff_on_tonights_shift(service: Service, chromium: Any) -> None:
    """From the recipients list to the night roster: Nora is added to the Demo unit's
    shift, listed, and taken off again; each change is audited under the manager."""
    errors: list[str] = []
    page = page_of(chromium, errors)
    try:
        login(page, service.url, "chef")
        page.click("a[href='/manage/roster']")
        shift = page.locator("#shifts li.shift[data-unit='Demo']")
        shift.wait_for()
        assert shift.locator("button.take").count() == 0, "a manager is not night staff"
        shift.locator("form.add select").select_option("natt")
        shift.locator("form.add button[type=submit]").click()
        remove = shift.locator("button.remove[data-username='natt']")
        remove.wait_for()
        assert "Nora Natt" in shift.inner_text()
        remove.click()
        remove.wait_for(state="detached")
        assert "Ingen har passet ännu." in shift.inner_text()
    finally:
        page.context.close()
    assert not errors, errors
    with sqlite3.connect(service.root / "test.db") as db:
        changes = db.execute("SELECT kind, actor, subject FROM audit_events WHERE kind LIKE"
                             " 'roster.%' ORDER BY id").fetchall()
    assert changes == [("roster.joined", "chef", "user:natt"), ("roster.left", "chef", "user:natt")]


def test_everyone_changes_their_own_password(service: Service, chromium: Any) -> None:
    errors: list[str] = []
    page = page_of(chromium, errors)
    try:
        login(page, service.url, "patrull")
        page.click("header a.who")
        page.wait_for_url("**/account")
        page.fill("#own-password input[name=current]", "fel")
        page.fill("#own-password input[name=new]", NEW_PASSWORD)
        page.click("#own-password button[type=submit]")
        page.locator("#status.error").wait_for()
        page.fill("#own-password input[name=current]", "patrull")
        page.fill("#own-password input[name=new]", NEW_PASSWORD)
        page.click("#own-password button[type=submit]")
        page.wait_for_function(
            "() => { const s = document.getElementById('status');"
            " return s.textContent.trim() !== '' && !s.classList.contains('error'); }")
        assert page.goto(service.url + "/patrol").ok, "this session stays signed in"
    finally:
        page.context.close()
    assert not errors, errors
    Person(service.url, "patrull", NEW_PASSWORD)  # the new password signs in
    with pytest.raises(AssertionError):
        Person(service.url, "patrull")  # and the old one no longer does


def test_the_data_dir_holds_no_password(service: Service) -> None:
    """Nothing written as the service ran names the new passwords in the clear."""
    for path in Path(service.root).rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert NEW_PASSWORD.encode() not in path.read_bytes(), path


def test_the_period_report_draws_its_chart(service: Service, chromium: Any) -> None:
    """uPlot, served from our own origin, draws under the page's CSP (no inline script or
    style), with no error; the tables and their CSV links are there beside it."""
    errors: list[str] = []
    page = page_of(chromium, errors)
    refused: list[str] = []
    page.on("response", lambda r: refused.append(r.url) if r.status >= 400
            and not r.url.endswith("/favicon.ico") else None)
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text else None)
    try:
        login(page, service.url, "chef")
        page.click("header nav a[href='/reports/night']")
        page.wait_for_url("**/reports/night")
        page.locator("#night-counts").wait_for()
        page.click("a[href='/reports/period']")
        page.wait_for_url("**/reports/period")
        page.locator("#chart canvas").wait_for()
        assert page.locator("#chart .u-legend").inner_text().count("i tid") == 1
        assert page.locator("#table-by_unit a.csv").get_attribute("href", timeout=1000)
    finally:
        page.context.close()
    assert not errors and not refused, (errors, refused)


def test_the_plan_editor_shows_the_records_consent_even_when_it_loads_last(
        service: Service, chromium: Any) -> None:
    """The page's two module scripts load in either order: here the plan editor's is held
    until the records' consent view has been fetched and shown (as a loaded machine may
    have it), and the editor still says what the records say."""
    chef = Person(service.url, "chef")
    made = chef.post("/api/recipients", {"name": "Sture Sen", "address": "Granvägen 8",
                                         "access_info": "Kod 8"})
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    sv = Translator("sv")
    errors: list[str] = []
    page = page_of(chromium, errors)
    held: list[Any] = []
    try:
        login(page, service.url, "chef")
        page.route("**/static/plan_editor.js", lambda route: held.append(route))
        page.goto(service.url + f"/manage/recipients/{rid}", wait_until="commit")
        page.wait_for_function("(text) => document.getElementById('consent-summary')"
                               "?.textContent === text", arg=sv("manage.consent.not_on_record"))
        assert len(held) == 1  # the editor's script has not run yet
        held[0].continue_()
        page.wait_for_function("(text) => document.getElementById('plan-consent-state')"
                               ".textContent === text", arg=sv("manage.consent.not_on_record"))
        assert errors == []
    finally:
        page.close()
