"""Pages everyone can read, checked in Chromium: axe-core (vendored from the npm registry,
tests/vendor/axe-core) over every page of every role, in the dark and the light theme and
in Swedish and English, with no serious or critical violation of WCAG 2.1 A/AA; a visible
focus ring on every control; the header on one line on a 390 px phone for every role, its
menu usable by keyboard; and the theme switch (the system's by default, the patrol page
dark by default, a choice kept per browser and applied at once).

The pages are the application's own GET routes that are not the API (tests/access/routes.py)
and whom each is for is the access policy written down in tests/access/test_access_matrix.py,
so a new page is checked without a line here. One service and one browser for the module,
one signed-in context per role, the roles side by side (async Playwright); a role's pages
are visited on one tab. axe is handed to the page by Playwright (the page's
Content-Security-Policy allows no inline script, and the test must not loosen it).

Two savings keep it inside its budget, neither skipping what could differ: a theme changes
only colours, so on the second theme only the colour rules run again, on the same page; and
a page whose content (<main>, numbers aside) was checked already in that language, on
another role's tab, has only its header (the role's own) checked, in both themes, and not
even that if the role's header was checked on another page. Tab is walked through the page
with the most controls (a recipient's, with its plan editor): every stop in document order
and out past the last, no trap.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.access.routes import application_routes
from tests.access.test_access_matrix import ANON, LOGINS, POLICY, ROLES
from tests.browser.conftest import FLAGS
from tests.conftest import CHROMIUM, need
from tests.harness import Service, eventually, in_thread, make_service
from tests.people import Person

AXE = (Path(__file__).parents[1] / "vendor" / "axe-core" / "axe.min.js").read_text()
#: WCAG 2.0 and 2.1, levels A and AA
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
#: what a theme changes: the rules that read colours
COLOUR_RULES = ["color-contrast", "link-in-text-block"]
FAILING = ("serious", "critical")
LANGS = ("sv", "en")
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1280, "height": 800}
#: GET routes that are not pages a person reads
NOT_PAGES = frozenset({"/", "/healthz", "/readyz", "/metrics", "/sw.js",
                       "/manifest.webmanifest", "/lang/{code}"})
#: pages in one language whatever the reader's: the access report is for the recipient
#: who asks, in Swedish
ONE_LANGUAGE = {"/audit/recipients/{recipient_id}/access-report": "sv"}

#: fetches in flight, so a page is checked once its script has drawn what it fetched
SETTLE = """(() => {
  let pending = 0;
  const fetch = window.fetch.bind(window);
  window.fetch = (...args) => { pending += 1;
    return fetch(...args).finally(() => {
      pending -= 1; window.__settledAt = performance.now(); }); };
  Object.defineProperty(window, '__pending', { get: () => pending });
})();"""
SETTLED = """() => document.readyState === 'complete' && window.__pending === 0
  && performance.now() - (window.__settledAt || 0) > 50"""
#: the page's content and its header without numbers (clocks, countdowns) or the mark of the
#: page one is on, to know what another page had checked already
CONTENT = """() => ['main', 'header.bar'].map((part) => (document.querySelector(part)?.innerHTML
  || '').replace(/\\d+/g, '#').replace(/ aria-current="\\w+"/g, ''))"""
OPEN_ALL = "() => document.querySelectorAll('details').forEach((d) => { d.open = true; })"

#: every visible control focused in turn: those whose focus cannot be seen
NO_RING = """() => {
  const bad = [];
  const controls = document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]');
  for (const el of controls) {
    if (el.matches(':disabled') || el.tabIndex < 0 || !el.getClientRects().length) continue;
    if (getComputedStyle(el).visibility === 'hidden') continue;
    el.focus();
    if (document.activeElement !== el) continue;
    const s = getComputedStyle(el);
    const ring = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
    if (!ring && !/\\d+px/.test(s.boxShadow)) bad.push(el.outerHTML.slice(0, 120));
  }
  document.activeElement?.blur();
  // a positive tabindex takes a control out of the page's order
  for (const el of document.querySelectorAll('[tabindex]')) {
    if (el.tabIndex > 0) bad.push('tabindex > 0: ' + el.outerHTML.slice(0, 120));
  }
  return bad;
}"""
#: where focus is among the page's keyboard stops in document order (-1: elsewhere, -2: the
#: document itself, i.e. past the last stop)
STOP = """() => {
  const stops = [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]')]
    .filter((el) => !el.matches(':disabled') && el.tabIndex >= 0 && el.getClientRects().length
      && getComputedStyle(el).visibility !== 'hidden');
  const at = document.activeElement;
  const index = !at || at === document.body ? -2 : stops.indexOf(at);
  return [index, stops.length, at ? at.outerHTML.slice(0, 100) : ''];
}"""
#: the page walked by Tab, every stop in order, past the last (no trap); date inputs take
#: several presses (day, month, year)
WALKED = "/manage/recipients/{rid}"

#: the header's visible parts and whether they sit on one line without overflowing
HEADER_LINE = """() => {
  const bar = document.querySelector('header.bar');
  const parts = [...bar.children].filter((el) => el.getClientRects().length);
  const boxes = parts.map((el) => el.getBoundingClientRect());
  const tops = boxes.map((b) => b.top);
  return { parts: parts.map((el) => el.className || el.tagName),
           spread: Math.max(...tops) - Math.min(...tops),
           shortest: Math.min(...boxes.map((b) => b.height)),
           overlaps: boxes.some((b, i) => i > 0 && b.left < boxes[i - 1].right - 1),
           overflow: bar.scrollWidth - bar.clientWidth,
           page: document.documentElement.scrollWidth - window.innerWidth };
}"""
FOCUSED = """() => { const el = document.activeElement; if (!el) return '';
  return (el.id || el.className || el.tagName) + (el.closest('#menu') ? ' in menu' : ''); }"""
BACKGROUND = "() => getComputedStyle(document.body).backgroundColor"


@dataclass
class World:
    svc: Service
    values: dict[str, str]  # path parameter -> a value that names something


@dataclass
class Survey:
    problems: list[str] = field(default_factory=list)  # axe's and the focus rings'
    header: list[str] = field(default_factory=list)  # the phone's header and its menu
    theme: dict[str, Any] = field(default_factory=dict)  # what the theme switch did
    views: dict[str, int] = field(default_factory=dict)  # role -> pages opened
    full: int = 0  # pages checked in full
    headers: int = 0  # pages whose header only was new
    walked: int = 0  # keyboard stops Tab went through, in order
    seconds: float = 0.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    svc = make_service(tmp_path_factory.mktemp("a11y") / "svc")
    svc.start()
    try:
        # an alert for the patrol's page to show: no camera is linked in this world, so
        # Technical failure is what an open check can honestly get
        staff = Person(svc.url, "natt")
        check = eventually(lambda: next((c for c in staff.rounds() if c["state"] == "open"),
                                        None), 30, "an open check in the demo night")
        raised = staff.post(f"/api/checks/{check['id']}/outcome",
                            {"outcome": "technical-failure"})
        assert raised.status_code == 200, raised.text
        link = Person(svc.url, "admin").post(
            "/api/users", {"username": "ny", "display_name": "Ny Person", "role": "staff"})
        assert link.status_code == 201, link.text
        recipient = str(svc.world["cameras"][0]["recipient_id"])
        # a contact and a consent on record, so their lists (and buttons) are drawn too
        manager = Person(svc.url, "chef")
        for path, body in ((f"/api/recipients/{recipient}", {"contacts": [
                               {"name": "Eva Lindqvist", "relation": "dotter",
                                "phone": "070-123 45 67"}]}),
                           (f"/api/recipients/{recipient}/consent", {
                               "party": "person", "name": "Astrid Lindqvist",
                               "method": "written", "document_ref": "Dnr 2026-17",
                               "given_on": (date.today() - timedelta(days=30)).isoformat()})):
            sent = (manager.http.patch(path, json=body, headers={"X-CSRF-Token": manager.csrf})
                    if "consent" not in path else manager.post(path, body))
            assert sent.status_code in (200, 201), sent.text
        yield World(svc, {"rid": recipient, "recipient_id": recipient,
                          "token": link.json()["token"]})
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def survey(world: World) -> Survey:
    """Everything the tests below assert, gathered in one run of one browser."""
    need(os.path.exists(CHROMIUM), f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    survey: Survey = in_thread(lambda: run_survey(world), timeout=170)
    return survey


def pages_of(who: str, lang: str, values: dict[str, str]) -> list[str]:
    """The pages a role may open (by the access policy), with real ids; and for the first
    role one it may not, for the page that says so (its words differ by the role's name
    only). A page in one language only is in that language's list."""
    paths = sorted({e.path for e in application_routes()
                    if e.method == "GET" and not e.path.startswith("/api/")
                    and e.path not in NOT_PAGES})
    mine = [p for p in paths if who in POLICY[("GET", p)]]
    refused = [p for p in paths if who not in POLICY[("GET", p)]]
    if who == ROLES[0] and refused:
        mine.append(refused[0])
    return [re.sub(r"{(\w+)}", lambda m: values[m.group(1)], p)
            for p in mine if ONE_LANGUAGE.get(p, lang) == lang]


async def run_survey(world: World) -> Survey:
    from playwright.async_api import async_playwright
    survey = Survey()
    seen: set[tuple[str, str]] = set()  # (language, hash of a <main> or a header) checked
    started = time.monotonic()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            await asyncio.gather(
                *(role_survey(browser, world, who, survey, seen) for who in (ANON, *ROLES)),
                theme_survey(browser, world, survey))
        finally:
            await browser.close()
    survey.seconds = time.monotonic() - started
    return survey


async def new_tab(browser: Any, base: str, who: str, errors: list[str],
                  **options: Any) -> Any:
    ctx = await browser.new_context(locale="sv-SE", timezone_id="Europe/Stockholm", **options)
    await ctx.add_init_script(SETTLE)
    page = await ctx.new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda e: errors.append(f"{who}: script error {e}"))
    if who != ANON:
        await page.goto(base + "/login")
        await page.fill("input[name=username]", LOGINS[who])
        await page.fill("input[name=password]", LOGINS[who])
        async with page.expect_navigation():
            await page.click("button[type=submit]")
    return page


async def open_page(page: Any, base: str, path: str, lang: str) -> bool:
    """Open the page in the language; False if it sent the browser elsewhere."""
    await page.context.add_cookies([{"name": "nt_lang", "value": lang, "url": base}])
    await page.goto(base + path)
    await page.wait_for_function(SETTLED)
    assert await page.evaluate("document.documentElement.lang") == lang, path
    return bool(page.url == base + path)


async def axe(page: Any, rules: list[str] | None = None,
              within: str | None = None) -> list[dict[str, Any]]:
    """axe's serious and critical violations on the page (or a part of it) as it stands."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(AXE)
    only = {"type": "rule", "values": rules} if rules else {"type": "tag", "values": TAGS}
    found: list[dict[str, Any]] = await page.evaluate(
        """async ([only, within]) => (await axe.run(within || document,
              { runOnly: only, resultTypes: ['violations'] }))
          .violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
            targets: v.nodes.map((n) => n.target.join(' ') + ' ' + (n.failureSummary || '')
              .replace(/\\s+/g, ' ').slice(0, 240)).slice(0, 6) }))""", [only, within])
    return [v for v in found if v["impact"] in FAILING]


def described(where: str, violations: list[dict[str, Any]]) -> list[str]:
    return [f"{where}: {v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["targets"])
            for v in violations]


async def role_survey(browser: Any, world: World, who: str, survey: Survey,
                      seen: set[tuple[str, str]]) -> None:
    base = world.svc.url
    page = await new_tab(browser, base, who, survey.problems, color_scheme="dark",
                         viewport=DESK)
    await page.context.add_cookies([{"name": "nt_theme", "value": "system", "url": base}])
    views = 0
    try:
        for lang in LANGS:
            for path in pages_of(who, lang, world.values):
                await page.emulate_media(color_scheme="dark")
                if not await open_page(page, base, path, lang):
                    continue  # e.g. the sign-in page, signed in: checked where it leads
                views += 1
                await page.evaluate(OPEN_ALL)
                where = f"{who} {lang} {path}"
                main, header = ((lang, hashlib.sha256(part.encode()).hexdigest())
                                for part in await page.evaluate(CONTENT))
                if main in seen and header in seen:
                    continue  # both parts checked on other pages, in this language
                within = "header.bar" if main in seen else None
                seen.update((main, header))
                survey.full += within is None
                survey.headers += within is not None
                survey.problems += described(where + " dark", await axe(page, None, within))
                if lang == "sv" and within is None:  # how focus looks changes with neither
                    survey.problems += [f"{where}: no visible focus ring on {el}"
                                        for el in await page.evaluate(NO_RING)]
                await page.emulate_media(color_scheme="light")
                assert await page.evaluate("matchMedia('(prefers-color-scheme: light)').matches")
                survey.problems += described(where + " light",
                                             await axe(page, COLOUR_RULES, within))
        if who == "manager":
            await tab_walk(page, base, WALKED.format(**world.values), survey)
        await page.set_viewport_size(PHONE)
        for lang in LANGS:
            await phone_header(page, base, f"/account/password/{world.values['token']}",
                               who, lang, survey)
    finally:
        survey.views[who] = views
        await page.context.close()


async def tab_walk(page: Any, base: str, path: str, survey: Survey) -> None:
    """Tab from the top reaches every stop in document order and leaves the last."""
    await open_page(page, base, path, "sv")
    await page.evaluate(OPEN_ALL)
    last, stuck, reached = -1, 0, -1
    total = (await page.evaluate(STOP))[1]
    for _ in range(3 * total + 10):
        await page.keyboard.press("Tab")
        index, total, html = await page.evaluate(STOP)
        if index == -2:
            break
        if index == -1:
            continue  # e.g. a scrolling table Chromium lets the keyboard scroll
        stuck = stuck + 1 if index == last else 0
        if index < last or index > last + 1 or stuck > 3:
            survey.problems.append(f"{path}: Tab went from stop {last} to {index}: {html}")
            return
        last = reached = index
    if reached != total - 1:
        survey.problems.append(f"{path}: Tab reached stop {reached} of {total} and no further")
    survey.walked = total


async def phone_header(page: Any, base: str, link: str, who: str, lang: str,
                       survey: Survey) -> None:
    """One line on a phone; its menu opens and closes by keyboard, and reads right."""
    # signed out, the page of a password link: the sign-in page puts focus in its form
    await open_page(page, base, "/" if who != ANON else link, lang)
    line = await page.evaluate(HEADER_LINE)
    where = f"{who} {lang} phone"
    if (line["spread"] > line["shortest"] / 2 or line["overlaps"] or line["overflow"] > 0
            or line["page"] > 0):
        survey.header.append(f"{where}: header not on one line: {line}")
    steps = []
    for _ in range(3):  # skip link, the name, the menu button
        await page.keyboard.press("Tab")
        steps.append(await page.evaluate(FOCUSED))
    await page.keyboard.press("Enter")
    opened = await page.get_attribute(".menu-toggle", "aria-expanded")
    await page.keyboard.press("Tab")
    steps.append(await page.evaluate(FOCUSED))
    visible = await page.is_visible("#menu #theme-choice")
    survey.problems += described(where + " menu open", await axe(page, None, "header.bar"))
    await page.keyboard.press("Escape")
    steps.append(await page.evaluate(FOCUSED))
    closed = await page.get_attribute(".menu-toggle", "aria-expanded")
    hidden = not await page.is_visible("#menu")
    if (steps[0] != "skip" or steps[1] != "brand" or steps[2] != "menu-toggle"
            or not steps[3].endswith(" in menu") or steps[4] != "menu-toggle"
            or (opened, visible, closed, hidden) != ("true", True, "false", True)):
        survey.header.append(f"{where}: menu by keyboard: focus went {steps}, "
                             f"expanded {opened} -> {closed}, theme switch shown {visible}, "
                             f"menu hidden again {hidden}")


async def theme_survey(browser: Any, world: World, survey: Survey) -> None:
    """A browser with no choice made, whose system prefers light."""
    base = world.svc.url
    seen = survey.theme
    page = await new_tab(browser, base, ANON, survey.problems, color_scheme="light")
    try:
        await open_page(page, base, "/login", "sv")
        seen["login, system light"] = (await page.evaluate(BACKGROUND),
                                       await page.input_value("#theme-choice"))
        await page.evaluate("window.__same = true")  # gone if the page were reloaded
        await page.select_option("#theme-choice", "dark")
        seen["login, dark chosen"] = (await page.evaluate(BACKGROUND),
                                      await page.evaluate("window.__same === true"))
        cookies = await page.context.cookies()
        seen["cookie"] = next((c["value"] for c in cookies if c["name"] == "nt_theme"), None)
        await page.reload()
        seen["login, dark kept"] = (await page.evaluate(BACKGROUND),
                                    await page.input_value("#theme-choice"))
    finally:
        await page.context.close()
    patrol = await new_tab(browser, base, "patrol", survey.problems, color_scheme="light")
    try:
        await open_page(patrol, base, "/patrol", "sv")
        seen["patrol, system light"] = (await patrol.evaluate(BACKGROUND),
                                        await patrol.input_value("#theme-choice"))
        await patrol.select_option("#theme-choice", "light")
        seen["patrol, light chosen"] = await patrol.evaluate(BACKGROUND)
        await open_page(patrol, base, "/account", "sv")
        seen["account, light kept"] = await patrol.evaluate(BACKGROUND)
    finally:
        await patrol.context.close()


# --- the tests -----------------------------------------------------------------------------


def test_every_page_of_every_role_passes_axe_in_both_themes_and_languages(
        survey: Survey) -> None:
    print(f"axe: {sum(survey.views.values())} page views ({survey.full} checked in full, "
          f"{survey.headers} their header only, the rest seen) x 2 themes, {survey.views}, "
          f"{survey.walked} stops walked by Tab, in {survey.seconds:.1f} s")
    # every role opened its pages (a policy or a page that lost them would show here)
    assert survey.views[ANON] >= 2 * 2 and survey.views["staff"] >= 2 * 3, survey.views
    assert survey.views["admin"] >= 2 * 12 and survey.views["manager"] >= 2 * 7, survey.views
    assert survey.full >= 2 * 14, survey.full
    assert survey.walked >= 40, survey.walked
    assert not survey.problems, "\n".join(survey.problems)


def test_the_header_is_one_line_on_a_phone_and_its_menu_works_by_keyboard(
        survey: Survey) -> None:
    assert not survey.header, "\n".join(survey.header)


DARK, LIGHT, PATROL_DARK = "rgb(15, 20, 25)", "rgb(245, 246, 247)", "rgb(0, 0, 0)"


def test_the_theme_follows_the_system_until_chosen_and_the_choice_is_kept(
        survey: Survey) -> None:
    seen = survey.theme
    assert seen["login, system light"] == (LIGHT, "system"), seen
    assert seen["login, dark chosen"] == (DARK, True), seen  # at once, no reload
    assert seen["cookie"] == "dark", seen
    assert seen["login, dark kept"] == (DARK, "dark"), seen
    # the patrol's phone is dark in a dark car whatever the system says, until chosen
    assert seen["patrol, system light"] == (PATROL_DARK, "dark"), seen
    assert seen["patrol, light chosen"] == "rgb(255, 255, 255)", seen
    assert seen["account, light kept"] == LIGHT, seen


def test_a_theme_the_server_does_not_know_is_the_pages_default() -> None:
    """The cookie is the browser's to write: anything but a known choice is no choice."""
    from starlette.requests import Request

    from supervision.context import THEME_MEDIA, THEMES, theme

    def asking(cookie: str) -> Request:
        return Request({"type": "http", "headers": [(b"cookie", cookie.encode())]})

    assert theme(asking("nt_theme=light")) == "light"
    assert theme(asking("nt_theme=light"), "dark") == "light"
    for odd in ("nt_theme=blue", 'nt_theme="><script>', "nt_theme=", "other=1"):
        assert theme(asking(odd)) == "system", odd
        assert theme(asking(odd), "dark") == "dark", odd
    assert set(THEME_MEDIA) == set(THEMES)
    assert all("print" in media or media == "all" for media in THEME_MEDIA.values())
