"""Server-rendered pages; their JavaScript gets its strings from the page."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from supervision import audit
from supervision.auth import COOKIE, authenticate, csrf_ok, end_session, start_session
from supervision.context import THEME_MEDIA, THEMES, Who, runtime, theme, translator, who
from supervision.i18n import LOCALES, Translator
from supervision.runtime import Runtime
from supervision.web.redirects import local_path, origin_of, same_origin_path

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)
#: where each role starts: the page of its own work (an admin's is the cameras)
HOME = {"staff": "/rounds", "patrol": "/patrol", "manager": "/manage", "admin": "/admin/cameras"}
PAGE_ROLES = {"/rounds": ("staff", "admin"), "/patrol": ("patrol", "admin"),
              "/manage": ("manager", "admin")}
#: pages dark until the browser chooses otherwise: the patrol reads its phone in a dark car
DARK_BY_DEFAULT = frozenset({"patrol.html"})


def render(request: Request, name: str, t: Translator, current: Who | None,
           status: int = 200, **context: Any) -> HTMLResponse:
    strings = t.subset("")
    shown = theme(request, "dark" if name in DARK_BY_DEFAULT else "system")
    return templates.TemplateResponse(request, name, {
        "t": t, "user": current.user if current else None,
        "csrf": current.session.csrf if current else "", "strings": strings,
        "theme": shown, "themes": THEMES, "theme_media": THEME_MEDIA, **context,
    }, status_code=status)


def guard(request: Request, current: Who | None, roles: tuple[str, ...]) -> Response | None:
    """None if the page may be shown; else a redirect to log in, or a 403 page that says
    so and leads to the person's own start page (not a login form: they are signed in)."""
    if current is None:
        return RedirectResponse(f"/login?next={request.url.path}", 303)
    if current.user.role not in roles:
        t = translator(request, current.user)
        return render(request, "forbidden.html", t, current, status=403,
                      home=HOME[current.user.role])
    return None


def _page_guard(request: Request, current: Who | None) -> Response | None:
    return guard(request, current, PAGE_ROLES.get(request.url.path, ()))


@router.get("/")
async def home(current: Who | None = Depends(who)) -> Response:
    if current is None:
        return RedirectResponse("/login", 303)
    return RedirectResponse(HOME[current.user.role], 303)


@router.get("/login")
async def login_page(request: Request, next: str = "",
                     current: Who | None = Depends(who)) -> Response:
    if current is not None:  # signed in already (e.g. the back button): no login form
        target = local_path(next)
        if target is None or target.startswith("/login"):
            target = HOME[current.user.role]
        return RedirectResponse(target, 303)
    token = secrets.token_urlsafe(16)
    response = render(request, "login.html", translator(request), None, login_csrf=token,
                      next=next)
    response.set_cookie("nt_login_csrf", token, httponly=True, samesite="strict",
                        secure=runtime(request).settings.cookies_secure)
    return response


@router.post("/login")
async def login(request: Request, username: str = Form(max_length=64),
                password: str = Form(max_length=256), csrf: str = Form(""),
                next: str = Form(""), rt: Runtime = Depends(runtime)) -> Response:
    t = translator(request)
    client = request.client.host if request.client else "?"
    if not csrf_ok(request.cookies.get("nt_login_csrf", ""), csrf):
        return render(request, "login.html", t, None, status=403, error="error.csrf",
                      login_csrf=request.cookies.get("nt_login_csrf", ""))
    wait = await rt.logins.attempt(username, client)  # the address: the peer or a trusted proxy's
    if wait is None:
        return render(request, "login.html", t, None, status=429, error="error.rate_limited",
                      login_csrf=csrf)
    if wait:
        await asyncio.sleep(wait)
    async with rt.write() as db:
        user = await authenticate(db, username, password)
        await audit.append(db, username[:64], "login.ok" if user else "login.failed",
                           f"user:{username[:56]}", {"address": client})
        token = await start_session(db, user, rt.settings.session_hours) if user else None
    if user is None or token is None:
        return render(request, "login.html", t, None, status=401, error="error.login",
                      login_csrf=csrf)
    await rt.logins.succeeded(username, client)
    response = RedirectResponse(local_path(next) or HOME[user.role], 303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="lax",
                        secure=rt.settings.cookies_secure,
                        max_age=int(rt.settings.session_hours * 3600))
    response.delete_cookie("nt_login_csrf")
    return response


@router.post("/logout")
async def logout(request: Request, csrf: str = Form(""), rt: Runtime = Depends(runtime),
                 current: Who | None = Depends(who)) -> Response:
    if current is not None and csrf_ok(current.session.csrf, csrf):
        async with rt.write() as db:
            await end_session(db, request.cookies.get(COOKIE, ""))
        # after the commit: the session's live sockets close now, on every node, not at
        # their next check
        await rt.end_sockets(session_id=current.session.id, reason="signed out")
    response = RedirectResponse("/login", 303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/lang/{code}")
async def language(code: str, request: Request, rt: Runtime = Depends(runtime)) -> Response:
    """Back to the page the switch was pressed on, if that page is this service's."""
    ours = {origin_of(rt.settings.public_url), origin_of(str(request.base_url))}
    back = same_origin_path(request.headers.get("referer"), ours)
    response = RedirectResponse((back if code in LOCALES else None) or "/", 303)
    if code in LOCALES:
        response.set_cookie("nt_lang", code, max_age=365 * 86400, samesite="lax",
                            secure=rt.settings.cookies_secure)
    return response


@router.get("/rounds")
async def rounds_page(request: Request, current: Who | None = Depends(who)) -> Response:
    return _page_guard(request, current) or render(
        request, "rounds.html", translator(request, current.user if current else None), current)


@router.get("/patrol")
async def patrol_page(request: Request, current: Who | None = Depends(who)) -> Response:
    return _page_guard(request, current) or render(
        request, "patrol.html", translator(request, current.user if current else None), current)
