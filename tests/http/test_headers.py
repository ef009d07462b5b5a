"""Security headers on every answer, cookies that are Secure whenever the service is
reached over HTTPS, no cached access information, and the API's schema for signed-in
people only (no documentation viewer that loads scripts from another origin). Against
real `supervision serve` processes; the pages under their CSP in real Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser.conftest import browser, login  # noqa: F401  (browser: a fixture)
from tests.harness import Service, make_service
from tests.people import Person

TEMPLATES = Path(__file__).parents[2] / "supervision" / "web" / "templates"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = make_service(Path(tmp_path_factory.mktemp("headers")))
    service.start()
    try:
        yield service
    finally:
        service.stop()


def assert_guarded(reply: httpx.Response, *, cached: bool = False) -> None:
    csp = reply.headers.get("content-security-policy", "")
    directives = {d.strip().partition(" ")[0]: d.strip().partition(" ")[2]
                  for d in csp.split(";") if d.strip()}
    assert directives.get("script-src") == "'self'", csp
    assert directives.get("frame-ancestors") == "'none'", csp
    assert directives.get("object-src") == "'none'", csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert reply.headers.get("x-content-type-options") == "nosniff"
    assert reply.headers.get("referrer-policy") in ("same-origin", "no-referrer")
    if not cached:
        assert reply.headers.get("cache-control") == "no-store", reply.url


def test_every_kind_of_answer_carries_the_headers(svc: Service) -> None:
    anonymous = httpx.Client(base_url=svc.url)
    patrol = Person(svc.url, "patrull")
    staff = Person(svc.url, "natt")
    answers = [
        anonymous.get("/login"),  # a page
        anonymous.get("/healthz"),
        anonymous.get("/api/rounds"),  # 401
        anonymous.get("/no-such-page"),  # 404
        anonymous.post("/api/agent/enrol", json={}),  # 422
        anonymous.post("/api/agent/enrol", content=b"x" * (2 << 20)),  # 413, before a route
        patrol.get("/patrol"),  # a page with a session
        patrol.get("/api/alerts"),  # access information lives here
        staff.get("/rounds"),
        staff.get("/api/rounds"),
        staff.get("/patrol"),  # 403
    ]
    assert [a.status_code for a in answers] == [200, 200, 401, 404, 422, 413, 200, 200, 200,
                                                200, 403]
    for reply in answers:
        assert_guarded(reply)
    static = anonymous.get("/static/app.css")
    assert static.status_code == 200
    assert_guarded(static, cached=True)
    assert "no-store" not in static.headers.get("cache-control", ""), "static files may cache"


def test_templates_have_no_inline_script_handler_or_style() -> None:
    """What the CSP forbids is not in the pages to begin with: no inline <script> code
    (a JSON data block is not run), no on*= handler, no style= attribute."""
    for path in sorted(TEMPLATES.glob("*.html")):
        text = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, f"{path.name}: {tag}"
        assert not re.search(r"\son[a-z]+\s*=", text), f"{path.name}: inline handler"
        assert not re.search(r"\sstyle\s*=", text), f"{path.name}: style attribute"
        assert not re.search(r"<style\b", text), f"{path.name}: <style> element"


def test_cookies_are_plain_over_http(svc: Service) -> None:
    page = httpx.get(svc.url + "/login")
    assert "secure" not in page.headers["set-cookie"].lower(), "local http still works"


def test_docs_are_off_and_the_schema_needs_a_signed_in_person(svc: Service) -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert httpx.get(svc.url + path).status_code == 404, path
    anonymous = httpx.get(svc.url + "/openapi.json", headers={"Accept-Language": "en"})
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"]["code"] == "error.signed_out"
    for username in ("natt", "patrull", "chef", "admin"):
        schema = Person(svc.url, username).get("/openapi.json")
        assert schema.status_code == 200 and "/api/rounds" in schema.json()["paths"]
        assert_guarded(schema)


# --- over HTTPS ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def https_svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Reached over HTTPS (a proxy ends TLS); tests talk to it directly over http."""
    root = Path(tmp_path_factory.mktemp("https"))
    service = make_service(root, public_url="https://nattillsyn.example")
    service.start()
    try:
        yield service
    finally:
        service.stop()


def set_cookies(reply: httpx.Response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in reply.headers.get_list("set-cookie")}


def test_every_cookie_is_secure_when_the_public_url_is_https(https_svc: Service) -> None:
    http = httpx.Client(base_url=https_svc.url, follow_redirects=False)
    page = http.get("/login")
    assert page.headers.get("strict-transport-security", "").startswith("max-age=")
    form = set_cookies(page)["nt_login_csrf"]
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    signed_in = http.post("/login", data={"username": "natt", "password": "natt",
                                          "csrf": token.group(1)},
                          headers={"Cookie": f"nt_login_csrf={token.group(1)}"})
    assert signed_in.status_code == 303, signed_in.text
    session = set_cookies(signed_in)["nt_session"]
    language = set_cookies(http.get("/lang/en"))["nt_lang"]
    for cookie in (form, session, language):
        assert "; secure" in cookie.lower(), cookie
        assert "httponly" in cookie.lower() or cookie.startswith("nt_lang"), cookie


# --- in a browser --------------------------------------------------------------------------

WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def test_every_page_works_under_its_policy(svc: Service, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Each page as the admin (who may see them all): its scripts run (the page fills
    itself in, the patrol socket connects) and the browser reports no CSP violation."""
    recipient = svc.world["cameras"][0]["recipient_id"]
    context = browser.new_context(locale="en-GB")
    try:
        page = context.new_page()
        page.add_init_script(WATCH_CSP)
        console: list[str] = []
        page.on("console", lambda msg: console.append(msg.text))
        login(page, svc.url, "admin")
        ready = {
            "/rounds": "#groups > *",  # filled in by rounds.js from /api/rounds
            "/patrol": "#link-state.ok",  # the socket is connected
            "/manage": "table.recipients tbody tr",
            f"/manage/recipients/{recipient}": "#nights > li",  # the editor's preview
            "/admin/cameras": "#cameras > li",
            "/admin/webhook": "main",
            f"/audit/recipients/{recipient}": "main",
            "/login": "form",
        }
        for path, selector in ready.items():
            page.goto(svc.url + path)
            page.wait_for_load_state("networkidle")
            page.wait_for_selector(selector, timeout=10_000)
            violations = page.evaluate("window.__csp")
            assert violations == [], f"{path}: {violations}"
        assert not [m for m in console if "Content Security Policy" in m], console
        # and the watch sees what the policy blocks: inline script does not run
        page.evaluate("""() => { const s = document.createElement('script');
            s.textContent = 'window.__ran = true'; document.body.append(s); }""")
        page.wait_for_function("window.__csp.length > 0")
        assert page.evaluate("window.__ran === undefined")
        assert page.evaluate("window.__csp")[0].startswith("script-src")
    finally:
        context.close()
