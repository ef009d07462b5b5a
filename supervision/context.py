"""Request context: the runtime, the signed-in user, CSRF, the translator."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from supervision.auth import COOKIE, csrf_ok, load_session
from supervision.errors import ServiceError
from supervision.i18n import Translator, pick_locale
from supervision.models import User, WebSession
from supervision.runtime import Runtime

#: row ids are INTEGER primary keys (32 bits on PostgreSQL); a larger number names nothing,
#: and would fail in the database driver rather than be "not found"
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


@dataclass
class Who:
    user: User
    session: WebSession


async def who(request: Request) -> Who | None:
    rt = runtime(request)
    async with rt.read() as db:
        found = await load_session(db, request.cookies.get(COOKIE))
    return Who(*found) if found else None


#: the theme switch's choices; the browser keeps its choice in this cookie (static/header.js)
THEME_COOKIE = "nt_theme"
THEMES = ("system", "dark", "light")
#: when static/theme-light.css applies, per choice; print is always light (paper is white)
THEME_MEDIA = {"system": "print, (prefers-color-scheme: light)", "dark": "print",
               "light": "all"}


def theme(request: Request, default: str = "system") -> str:
    """The browser's chosen theme, read here so the page is drawn in it from the first
    paint (the CSP allows no inline script to pick it earlier); else the page's default."""
    chosen = request.cookies.get(THEME_COOKIE)
    return chosen if chosen in THEMES else default


def translator(request: Request, user: User | None = None) -> Translator:
    rt = runtime(request)
    wanted = request.cookies.get("nt_lang") or (user.locale if user else None)
    return Translator(pick_locale(wanted, request.headers.get("accept-language"),
                                  rt.settings.default_locale))


def require(*roles: str) -> Callable[..., Coroutine[Any, Any, Who]]:
    """The user, if signed in with one of these roles; state changes also need the CSRF token."""

    async def dependency(request: Request, current: Who | None = Depends(who)) -> Who:
        if current is None:
            raise ServiceError(401, "error.signed_out")
        if current.user.role not in roles:
            raise ServiceError(403, "error.role")
        if request.method not in ("GET", "HEAD", "OPTIONS") and not csrf_ok(
                current.session.csrf, request.headers.get("x-csrf-token")):
            raise ServiceError(403, "error.csrf")
        return current

    dependency.roles = roles  # type: ignore[attr-defined]
    return dependency
