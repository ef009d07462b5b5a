"""Admins manage people in the browser's API: add with a one-time password link, change a
role or disable (their sessions end and their sockets are told to close), reset a password;
everyone changes their own; the password rules; every change audited. SQLite and PostgreSQL,
in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from supervision.models import AuditEvent, WebSession
from tests.manage.inproc import InProcess, running

pytestmark = pytest.mark.asyncio(loop_scope="module")
GOOD = "vinter morgon vid sjön"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(database: tuple[str, Path]) -> AsyncIterator[InProcess]:
    async with running(*database) as service:
        yield service


async def audit_kinds(svc: InProcess, subject: str) -> list[dict[str, Any]]:
    async with svc.rt.read() as db:
        rows = (await db.execute(select(AuditEvent).where(AuditEvent.subject == subject)
                                 .order_by(AuditEvent.id))).scalars().all()
    return [{"kind": e.kind, "actor": e.actor, **e.data} for e in rows]


async def test_add_user_link_then_login(svc: InProcess) -> None:
    admin = await svc.login("admin")
    made = await admin.send("POST", "/api/users", {"username": "nyanst", "display_name":
                                                   "Nina Nyanställd", "role": "staff",
                                                   "shift_lead": True})
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert made.json()["user"]["link_pending"] is True
    again = await admin.send("POST", "/api/users", {"username": "NYANST", "display_name": "x",
                                                    "role": "staff"})
    assert again.status_code == 409
    bad_role = await admin.send("POST", "/api/users", {"username": "y", "display_name": "y",
                                                       "role": "root"})
    assert bad_role.status_code == 422
    # the page greets them; a weak password is refused by code, nothing is spent
    async with svc.client() as anon:
        page = await anon.get(f"/account/password/{token}")
        assert page.status_code == 200 and "Nina Nyanställd" in page.text
        weak = await anon.post(f"/api/password-links/{token}", json={"password": "NyanställdNina7"})
        assert weak.status_code == 422
        assert {d["code"] for d in weak.json()["detail"]} == {"personal"}
        short = await anon.post(f"/api/password-links/{token}", json={"password": "kort"})
        assert short.json()["detail"][0]["code"] == "too-short"
        ok = await anon.post(f"/api/password-links/{token}", json={"password": GOOD})
        assert ok.status_code == 200, ok.text
        spent = await anon.post(f"/api/password-links/{token}", json={"password": GOOD + "x"})
        assert spent.status_code == 404
        assert (await anon.get(f"/account/password/{token}")).status_code == 404
    nina = await svc.login("nyanst", GOOD)
    assert (await nina.get("/rounds")).status_code == 200
    kinds = [e["kind"] for e in await audit_kinds(svc, "user:nyanst")]
    assert kinds[:2] == ["user.added", "user.password_set"]


async def test_role_change_and_disable_end_sessions_and_sockets(svc: InProcess) -> None:
    ended: list[tuple[int, str]] = []
    real = svc.rt.patrol.end_user

    def spy(user_id: int, reason: str = "user changed") -> int:
        ended.append((user_id, reason))
        return real(user_id, reason)

    svc.rt.patrol.end_user = spy  # type: ignore[method-assign]
    try:
        admin = await svc.login("admin")
        users = {u["username"]: u for u in (await admin.get("/api/users")).json()}
        patrol = await svc.login("patrull")
        assert (await patrol.get("/api/alerts")).status_code == 200
        uid = users["patrull"]["id"]
        changed = await admin.send("PATCH", f"/api/users/{uid}", {"role": "staff"})
        assert changed.status_code == 200 and changed.json()["role"] == "staff"
        assert (await patrol.get("/api/alerts")).status_code == 401, "session ended at once"
        assert ended == [(uid, "role changed")]
        async with svc.rt.read() as db:
            assert not (await db.execute(select(WebSession).where(
                WebSession.user_id == uid))).scalars().all()
        # the shift-lead flag alone keeps sessions
        staff = await svc.login("patrull")
        assert (await admin.send("PATCH", f"/api/users/{uid}",
                                 {"shift_lead": False})).status_code == 200
        assert (await staff.get("/api/rounds")).status_code == 200
        assert len(ended) == 1
        off = await admin.send("PATCH", f"/api/users/{uid}", {"active": False})
        assert off.json()["active"] is False
        assert (await staff.get("/api/rounds")).status_code == 401
        assert ended[-1] == (uid, "user disabled")
        await staff.login("patrull", "patrull", expect=401)
        on = await admin.send("PATCH", f"/api/users/{uid}", {"active": True, "role": "patrol"})
        assert on.status_code == 200
        log = await audit_kinds(svc, "user:patrull")
        changes = [e for e in log if e["kind"] == "user.changed"]
        assert [c["after"]["role"] for c in changes] == ["staff", "staff", "staff", "patrol"]
        assert changes[0]["actor"] == "admin" and changes[0]["sessions_ended"] == 1
        # nobody but an admin; and the last admin stays one
        chef = await svc.login("chef")
        assert (await chef.get("/api/users")).status_code == 403
        assert (await chef.send("PATCH", f"/api/users/{uid}", {"active": False})).status_code == 403
        me = users["admin"]["id"]
        last = await admin.send("PATCH", f"/api/users/{me}", {"role": "manager"})
        assert last.status_code == 409
        assert last.json()["detail"]["code"] == "admin.users.error.last_admin"
        assert (await admin.send("PATCH", "/api/users/99999", {"active": False})).status_code == 404
    finally:
        svc.rt.patrol.end_user = real  # type: ignore[method-assign]


async def test_reset_and_own_password(svc: InProcess) -> None:
    admin = await svc.login("admin")
    users = {u["username"]: u for u in (await admin.get("/api/users")).json()}
    natt = await svc.login("natt")
    # own password: the current one is needed, the rules apply, other sessions end
    other = await svc.login("natt")
    wrong = await natt.send("POST", "/api/me/password", {"current": "nope", "new": GOOD})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["code"] == "wrong"
    common = await natt.send("POST", "/api/me/password", {"current": "natt",
                                                          "new": "password1234"})
    assert common.status_code == 422
    assert (await natt.http.post("/api/me/password", json={"current": "natt", "new": GOOD})
            ).status_code == 403, "CSRF"
    done = await natt.send("POST", "/api/me/password", {"current": "natt", "new": GOOD})
    assert done.status_code == 204
    assert (await natt.get("/api/rounds")).status_code == 200, "this session stays"
    assert (await other.get("/api/rounds")).status_code == 401, "the others end"
    assert (await natt.get("/account")).status_code == 200
    # reset: the old password stops at once, sessions end, a link sets the new one
    reset = await admin.send("POST", f"/api/users/{users['natt']['id']}/password-link")
    assert reset.status_code == 200
    assert (await natt.get("/api/rounds")).status_code == 401
    await natt.login("natt", GOOD, expect=401)
    async with svc.client() as anon:
        set_ = await anon.post(f"/api/password-links/{reset.json()['token']}",
                               json={"password": "ny vinter morgon vid sjön"})
        assert set_.status_code == 200
    await svc.login("natt", "ny vinter morgon vid sjön")
    kinds = [e["kind"] for e in await audit_kinds(svc, "user:natt")
             if not e["kind"].startswith("login.")]
    assert kinds[-3:] == ["user.password_changed", "user.password_reset", "user.password_set"]
    page = await admin.get("/admin/users")
    assert page.status_code == 200 and "admin_users.js" in page.text
