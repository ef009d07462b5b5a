"""Accounts, sessions and roles against the real service process."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import BIN, Service, make_service
from tests.people import Person


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = make_service(tmp_path_factory.mktemp("people") / "svc",
                           login_attempts_per_minute="5")
    service.start()
    try:
        yield service
    finally:
        service.stop()


def login_form(client: httpx.Client) -> str:
    page = client.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def test_session_cookie_is_httponly_and_samesite(svc: Service) -> None:
    client = httpx.Client(base_url=svc.url)
    token = login_form(client)
    reply = client.post("/login", data={"username": "natt", "password": "natt", "csrf": token})
    assert reply.status_code == 303 and reply.headers["location"] == "/rounds"
    cookie = next(h for h in reply.headers.get_list("set-cookie") if h.startswith("nt_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_login_form_needs_its_csrf_token(svc: Service) -> None:
    client = httpx.Client(base_url=svc.url)
    login_form(client)
    reply = client.post("/login", data={"username": "natt", "password": "natt", "csrf": "x"})
    assert reply.status_code == 403 and "nt_session" not in reply.headers.get("set-cookie", "")


def test_wrong_password_then_rate_limited(svc: Service) -> None:
    client = httpx.Client(base_url=svc.url, headers={"Accept-Language": "en"})
    token = login_form(client)
    codes = [client.post("/login", data={"username": "kvall", "password": "wrong",
                                         "csrf": token}).status_code for _ in range(5)]
    assert codes == [401] * 5
    blocked = client.post("/login", data={"username": "kvall", "password": "kvall",
                                          "csrf": token})
    assert blocked.status_code == 429 and "Too many attempts" in blocked.text


def test_logout_ends_the_session_on_the_server(svc: Service) -> None:
    person = Person(svc.url, "chef")
    cookie = person.http.cookies["nt_session"]
    assert person.get("/manage").status_code == 200
    person.http.post("/logout", data={"csrf": person.csrf})
    replay = httpx.get(f"{svc.url}/api/rounds", cookies={"nt_session": cookie})
    assert replay.status_code == 401


def test_user_cli_adds_and_changes_roles_with_audit(svc: Service) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "supervision"), "user", *args], env=svc.env,
                              capture_output=True, text=True, timeout=60)

    assert run("add", "lisa", "--role", "staff", "--password", "nattugglan-7").returncode == 0
    assert run("add", "lisa", "--role", "staff", "--password", "nattugglan-7").returncode != 0
    assert "at least 12" in run("add", "kort", "--role", "staff", "--password", "x").stderr
    assert "too common" in run("add", "ny", "--role", "staff", "--password", "password1234").stderr
    assert "role must be" in run("add", "ny", "--role", "boss", "--password", "x" * 9).stderr
    lisa = Person(svc.url, "lisa", "nattugglan-7")
    assert lisa.get("/api/rounds").status_code == 200
    assert run("set", "lisa", "--role", "patrol", "--shift-lead").returncode == 0
    assert lisa.get("/api/rounds").status_code == 401, "sessions end when the role changes"
    lisa = Person(svc.url, "lisa", "nattugglan-7")
    assert lisa.get("/api/rounds").status_code == 403 and lisa.get("/api/alerts").status_code == 200
    export = subprocess.run([str(BIN / "supervision"), "audit", "export"], env=svc.env,
                            capture_output=True, text=True, timeout=60).stdout
    assert "user.added" in export and "user.changed" in export and "login.failed" in export


def test_pages_redirect_anonymous_and_refuse_wrong_roles(svc: Service) -> None:
    anonymous = httpx.get(f"{svc.url}/rounds")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/rounds"
    patrol = Person(svc.url, "patrull")
    assert patrol.get("/rounds").status_code == 403
    assert patrol.get("/patrol").status_code == 200


def test_unknown_path_is_not_a_crash(svc: Service, tmp_path: Path) -> None:
    assert httpx.get(f"{svc.url}/nothing-here").status_code == 404
