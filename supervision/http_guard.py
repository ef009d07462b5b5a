"""HTTP at the edge, before any route: bounded request bodies, standard JSON only, the
security headers of every answer, and unexpected failures in the shared error shape.
One class each: ``BodyLimit``, ``StrictJson``, ``SecurityHeaders``, ``Failures``.

Plain ASGI middleware (not Starlette's BaseHTTPMiddleware, which would run each request in
a task of its own), wired in ``app``. What must happen before a request's head has even
arrived (the header timeout, the head's size, idle connections) cannot be ASGI: it is in
``http_server``. The limits are settings (``Settings.max_body_bytes`` and the rest) and are
described under "HTTP limits" in docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import math
import re
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect, cookie_parser
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from supervision.i18n import Translator, pick_locale

log = logging.getLogger("supervision.http")

#: how long a client is asked to wait after 503 error.unavailable
RETRY_AFTER_SECONDS = 30


def translator_for(scope: Scope, default_locale: str) -> Translator:
    """The asker's language, as the routes pick it (cookie, then Accept-Language)."""
    headers = Headers(scope=scope)
    cookies = cookie_parser(headers.get("cookie", ""))
    return Translator(pick_locale(cookies.get("nt_lang"), headers.get("accept-language"),
                                  default_locale))


def error_reply(scope: Scope, status: int, code: str, *, default_locale: str,
                headers: dict[str, str] | None = None, **details: Any) -> JSONResponse:
    """The shared error shape, ``{"detail": {"code", "message", ...}}``, for answers given
    before (or instead of) a route."""
    t = translator_for(scope, default_locale)
    return JSONResponse({"detail": {"code": code, "message": t(code, **details), **details}},
                        status_code=status, headers=headers)


# --- bounded request bodies ----------------------------------------------------------------

class _Refused(Exception):
    """Raised into the application's ``receive`` when its request body is refused."""


class BodyLimit:
    """A request body of at most ``limit`` bytes that never pauses longer than
    ``idle_seconds``. A declared Content-Length over the limit is refused before any byte
    of the body is read; a chunked body is counted as it arrives and refused as soon as it
    passes the limit. Refusals are 413 ``error.too_large`` and 408 ``error.too_slow`` with
    ``Connection: close``, so the rest is never read; whatever the route made of the
    interrupted body is dropped. A body the route left unread also closes the connection
    after the answer, so nobody can stream an endless body past a route that ignores it.
    """

    def __init__(self, app: ASGIApp, *, limit: int, idle_seconds: float,
                 default_locale: str) -> None:
        self.app = app
        self.limit = limit
        self.idle_seconds = idle_seconds
        self.default_locale = default_locale

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        length = _length(declared) if declared is not None else 0
        if length > self.limit:
            await self._refuse(scope, receive, send, "large")
            return
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        finished = not chunked and length == 0
        received = 0
        refused: str | None = None
        started = answered = False

        async def bounded_receive() -> Message:
            nonlocal finished, received, refused
            if finished:  # the body is in; waiting for a disconnect may take any time
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.idle_seconds)
            except TimeoutError:
                refused = "slow"
                raise _Refused from None
            if message["type"] != "http.request":
                finished = True
                return message
            received += len(message.get("body", b""))
            if received > self.limit:
                refused = "large"
                raise _Refused
            finished = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, answered
            if refused is not None:  # the route's own answer to a cut-off body is dropped
                if message["type"] == "http.response.start" and not answered:
                    answered = True
                    await self._refuse(scope, receive, send, refused)
                return
            if message["type"] == "http.response.start":
                started = True
                if not finished:
                    MutableHeaders(scope=message)["connection"] = "close"
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except Exception:
            if refused is None:
                raise
        if refused is not None and not answered and not started:
            await self._refuse(scope, receive, send, refused)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, why: str) -> None:
        close = {"connection": "close"}
        if why == "large":
            reply = error_reply(scope, 413, "error.too_large", limit=self.limit,
                                default_locale=self.default_locale, headers=close)
        else:
            reply = error_reply(scope, 408, "error.too_slow",
                                default_locale=self.default_locale, headers=close)
        await reply(scope, receive, send)


def _length(declared: str) -> int:
    """A Content-Length as a number; one that is not a plain number counts as too large
    (the HTTP parser refuses those before they get here)."""
    value = declared.strip()
    if not re.fullmatch(r"[0-9]{1,15}", value):
        return 1 << 62
    return int(value)


# --- JSON bodies are standard JSON --------------------------------------------------------

#: deeper than any document of the service (a plan is 4 levels), shallow enough that no
#: walk over it can exhaust the stack
MAX_JSON_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


class _NotStrict(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _no_constant(name: str) -> Any:
    raise _NotStrict("error.json_not_finite")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as infinity
        raise _NotStrict("error.json_not_finite")
    return value


def strict_json_problem(body: bytes) -> tuple[str, list[str | int]] | None:
    """Why ``body``, read as JSON, is not standard JSON (a translation key and where), or
    None: also for a body that is no JSON at all, which the route refuses in its own way.

    Python's reader is lenient where the standard is not, and each leniency used to end
    in a 500 further on: NaN and Infinity (and 1e999, read as infinity) cannot be written
    back in an answer; a lone surrogate escape ("\\ud800") decodes to text that cannot
    be encoded as UTF-8 for the database or an answer; nesting a thousand deep exhausts the
    stack; an integer of thousands of digits is refused by ``int`` with a bare ValueError.
    """
    try:
        document = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except _NotStrict as exc:
        return exc.code, []
    except RecursionError:
        return "error.json_too_deep", []
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    except ValueError:  # int() refused a number of too many digits
        return "error.json_number_too_long", []
    stack: list[tuple[Any, list[str | int]]] = [(document, [])]
    while stack:
        value, where = stack.pop()
        if len(where) > MAX_JSON_DEPTH:
            return "error.json_too_deep", where[:MAX_JSON_DEPTH]
        if isinstance(value, str) and _SURROGATE.search(value):
            return "error.json_not_unicode", where
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return "error.json_not_unicode", where
                stack.append((item, [*where, key]))
        elif isinstance(value, list):
            stack.extend((item, [*where, i]) for i, item in enumerate(value))
    return None


class StrictJson:
    """A request body that is not a form is read whole (``BodyLimit``, outside, bounds its
    size and pace) and refused with 422, in the validation shape, if it is JSON but not
    standard JSON (``strict_json_problem``); else the route gets it unchanged. Routes read
    JSON with Python's lenient reader (FastAPI's, and the plan editor's own), so the one
    check here covers them all. Forms, paths, queries and headers cannot carry any of it:
    they are decoded with replacement characters, and hold no numbers until a route
    parses them."""

    def __init__(self, app: ASGIApp, *, default_locale: str) -> None:
        self.app = app
        self.default_locale = default_locale

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        bodiless = (headers.get("content-length", "0") == "0"
                    and "chunked" not in headers.get("transfer-encoding", "").lower())
        form = headers.get("content-type", "").lower().startswith(
            ("multipart/", "application/x-www-form"))
        if bodiless or form:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        message = await receive()
        while message["type"] == "http.request":
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
            message = await receive()
        problem = strict_json_problem(bytes(body))
        if problem is not None:
            code, where = problem
            t = translator_for(scope, self.default_locale)
            await JSONResponse({"detail": [{
                "type": "json_invalid", "loc": ["body", *where],
                "msg": t(code, depth=MAX_JSON_DEPTH), "code": code, "input": {}}]},
                status_code=422)(scope, receive, send)
            return
        pending: list[Message] = [
            {"type": "http.request", "body": bytes(body), "more_body": False}
            if message["type"] == "http.request" else message]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)


# --- headers on every answer ---------------------------------------------------------------

#: no inline script or style anywhere (the templates use none: JSON data travels in
#: <script type="application/json">, which is not run); sockets and fetches go to this
#: origin only ('self' covers ws:/wss: of the same host and port)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'")


class SecurityHeaders:
    """Headers on every HTTP answer: the Content-Security-Policy, no framing, no MIME
    sniffing, referrers only to this origin (the language switch uses its own), no camera
    or microphone for any page, and ``Cache-Control: no-store`` on everything but
    /static/, since pages and API answers carry sessions, names and door codes. Over HTTPS
    also Strict-Transport-Security."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.fixed = {
            "content-security-policy": CONTENT_SECURITY_POLICY,
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            "referrer-policy": "same-origin",
            "permissions-policy": "camera=(), microphone=(), geolocation=()",
        }
        if https:
            self.fixed["strict-transport-security"] = "max-age=31536000"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.fixed.items():
                    headers[name] = value
                if not static:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


# --- unexpected failures -------------------------------------------------------------------

#: failures outside the request: the database or the disk refused (full, read-only,
#: unreachable, locked; a driver error that names no other cause) or no connection was
#: to be had. They pass, so "try again later" is the truth...
UNAVAILABLE: tuple[type[BaseException], ...] = (DBAPIError, PoolTimeout, OSError,
                                                TimeoutError)
#: ...unless the request itself was refused (input the database cannot hold, a row that
#: conflicts) or the query is wrong: waiting changes nothing there
NOT_PASSING: tuple[type[BaseException], ...] = (DataError, IntegrityError, ProgrammingError)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class Failures:
    """An exception no route handled never becomes a bare 500 or a traceback. When the
    cause is outside the request (``UNAVAILABLE``) the answer is 503 ``error.unavailable``
    with Retry-After; anything else is 500 ``error.internal``. API calls get the shared
    JSON shape, pages (a browser asking for HTML outside /api/) a plain page with the same
    sentence, in the asker's language. The traceback goes to the log. Nothing is kept
    between requests, so the service answers normally as soon as the cause is gone."""

    def __init__(self, app: ASGIApp, *, default_locale: str) -> None:
        self.app = app
        self.default_locale = default_locale

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except ClientDisconnect:
            return  # nobody is left to answer
        except Exception as exc:
            log.exception("unexpected failure: %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # half an answer went out: the server closes the connection
            await self.answer(scope, _leaf(exc))(scope, receive, send)

    def answer(self, scope: Scope, exc: BaseException) -> Response:
        if isinstance(exc, UNAVAILABLE) and not isinstance(exc, NOT_PASSING):
            status, code = 503, "error.unavailable"
            headers = {"retry-after": str(RETRY_AFTER_SECONDS)}
        else:
            status, code, headers = 500, "error.internal", {}
        if not _wants_page(scope):
            return error_reply(scope, status, code, default_locale=self.default_locale,
                               headers=headers)
        t = translator_for(scope, self.default_locale)
        return HTMLResponse(_plain_page(t, code), status_code=status, headers=headers)


def _wants_page(scope: Scope) -> bool:
    path = str(scope.get("path", ""))
    return not path.startswith("/api/") and "text/html" in Headers(scope=scope).get(
        "accept", "")


def _plain_page(t: Translator, code: str) -> str:
    """A page that needs nothing that may be failing: no template, no database."""
    def e(key: str) -> str:
        return html.escape(t(key))
    return (f'<!doctype html><html lang="{t.locale}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{e("error.page_title")} · {e("app.name")}</title>'
            '<link rel="stylesheet" href="/static/app.css"></head><body><main>'
            f'<section class="card narrow"><h1>{e("error.page_title")}</h1>'
            f'<p class="error" role="alert">{e(code)}</p>'
            f'<p><a href="/">{e("error.page_home")}</a></p></section></main></body></html>')
