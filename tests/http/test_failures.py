"""When the database refuses to write, every request still gets an answer in the shared
shape (503 `error.unavailable` with Retry-After for API calls, a plain page for pages),
never a bare 500 or a traceback; reads go on; and writes work again as soon as the cause
is gone, without a restart.

Two real causes against real `supervision serve` processes:
- SQLite on a full disk: the service process gets a file size limit of one byte
  (RLIMIT_FSIZE, set from outside with prlimit), so every write to the database file or
  its WAL is refused by the kernel, as a full disk refuses it; lifted again afterwards.
- PostgreSQL gone read-only: `default_transaction_read_only` on the service's database
  and its connections cut, so the pool reconnects into read-only sessions; then back.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervision.http_guard import Failures
from tests.conftest import _pg_admin, fresh_pg_database
from tests.harness import Service, eventually, make_service
from tests.people import Person

UNAVAILABLE_EN = "The service cannot save or read right now"


def writes(svc: Service, people: dict[str, Person], n: int) -> dict[str, httpx.Response]:
    """One request of each kind that must write: API calls of three roles and a login."""
    manager, admin = people["manager"], people["admin"]
    recipient = svc.world["cameras"][0]["recipient_id"]
    detail = manager.get(f"/api/recipients/{recipient}").json()
    plan = dict(detail["plan"], max_lookin_seconds=30 + n)  # a real change: a new version
    with httpx.Client(base_url=svc.url, headers={"Accept-Language": "en"}) as anonymous:
        page = anonymous.get("/login")
        token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        login = anonymous.post("/login", data={"username": "natt", "password": "natt",
                                               "csrf": token},
                               headers={"Accept": "text/html"}, follow_redirects=False)
    return {
        "create recipient": manager.post("/api/recipients", {"name": f"Ny {n}",
                                                              "address": "Gatan 1"}),
        "save plan": manager.http.put(f"/api/recipients/{recipient}/plan", json=plan,
                                      headers={"X-CSRF-Token": manager.csrf}),
        "register camera": admin.post("/api/cameras", {"recipient_id": recipient}),
        "login": login,
    }


def reads(people: dict[str, Person]) -> dict[str, httpx.Response]:
    return {"rounds": people["staff"].get("/api/rounds"),
            "recipients": people["manager"].get("/api/recipients"),
            "planning page": people["manager"].get("/manage")}


def assert_unavailable(what: str, reply: httpx.Response) -> None:
    assert reply.status_code == 503, f"{what}: {reply.status_code} {reply.text[:300]}"
    assert reply.headers.get("retry-after", "").isdigit(), what
    if reply.headers["content-type"].startswith("application/json"):
        detail = reply.json()["detail"]
        assert detail["code"] == "error.unavailable", what
        assert detail["message"].startswith(UNAVAILABLE_EN), what
    else:
        assert reply.headers["content-type"].startswith("text/html"), what
        assert UNAVAILABLE_EN in reply.text and "Traceback" not in reply.text, what


def people_of(svc: Service) -> dict[str, Person]:
    people = {role: Person(svc.url, name) for role, name in
              (("staff", "natt"), ("manager", "chef"), ("admin", "admin"))}
    for person in people.values():
        person.http.headers["Accept-Language"] = "en"
    return people


def refuse_then_recover(svc: Service, refuse: Any, restore: Any) -> None:
    people = people_of(svc)
    before = writes(svc, people, 1)
    assert [r.status_code for r in before.values()] == [201, 200, 200, 303], \
        {k: r.text[:200] for k, r in before.items()}
    refuse()
    try:
        for what, reply in writes(svc, people, 2).items():
            assert_unavailable(what, reply)
        for what, reply in reads(people).items():
            assert reply.status_code == 200, f"{what} still reads: {reply.text[:300]}"
    finally:
        restore()

    def recovered() -> bool:
        return [r.status_code for r in writes(svc, people, 3).values()] == [201, 200, 200,
                                                                            303]
    eventually(recovered, timeout=30, what="writes working again")
    assert svc.proc is not None and svc.proc.poll() is None, "the service kept running"


@pytest.fixture
def sqlite_svc(tmp_path: Path) -> Iterator[Service]:
    svc = make_service(tmp_path / "svc")
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def test_sqlite_on_a_full_disk_answers_and_recovers(sqlite_svc: Service) -> None:
    assert sqlite_svc.proc is not None
    pid = sqlite_svc.proc.pid
    normal = resource.prlimit(pid, resource.RLIMIT_FSIZE)

    def full() -> None:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, normal[1]))

    def space_again() -> None:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, normal)

    refuse_then_recover(sqlite_svc, full, space_again)


@pytest.fixture
def postgres_svc(tmp_path: Path) -> Iterator[tuple[Service, str]]:
    with fresh_pg_database() as (url, name):
        svc = make_service(tmp_path / "svc", url)
        svc.start()
        try:
            yield svc, name
        finally:
            svc.stop()


def test_postgres_gone_read_only_answers_and_recovers(
        postgres_svc: tuple[Service, str]) -> None:
    svc, name = postgres_svc

    def read_only(on: bool) -> None:
        _pg_admin(f"ALTER DATABASE {name} SET default_transaction_read_only = "
                  f"{'on' if on else 'off'}")
        _pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")

    refuse_then_recover(svc, lambda: read_only(True), lambda: read_only(False))


async def test_a_bug_is_a_500_in_the_shared_shape_never_a_traceback() -> None:
    """What is not the database or the disk is a bug: 500 `error.internal`, still in the
    shared shape (API) or a plain page (pages), with nothing of the traceback."""
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise KeyError("secret internals")

    app = Failures(broken, default_locale="sv")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        api = await client.get("/api/rounds", headers={"Accept-Language": "en"})
        page = await client.get("/rounds", headers={"Accept": "text/html"})
    assert api.status_code == 500 and "retry-after" not in api.headers
    assert api.json()["detail"]["code"] == "error.internal"
    assert api.json()["detail"]["message"].startswith("Something went wrong on the server")
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert "Något gick fel" in page.text, "the default language when none is asked for"
    assert "secret internals" not in api.text + page.text
