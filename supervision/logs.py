"""The service's logs: plain lines or one JSON object a line, and an access log that keeps
no credential.

The access log is written here rather than by uvicorn, whose line carries the raw path and
query: a password link (``/account/password/<token>``), a look-in's session id or anything
a client puts in a query would land in the log. Here a request is logged by its route's
template (``/account/password/{token}``) with only the path parameters that are not
credentials; a path no route matched keeps only segments that cannot be a token; a query
keeps its names, never its values. Headers (cookies, ``Authorization``) and bodies (door
codes) are never read.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access = logging.getLogger("supervision.access")

#: path parameters whose value is a credential or a capability: never logged
SECRET_PARAMS = frozenset({"token", "session", "code", "nonce", "key", "secret"})
#: a path segment that could be a token: long and of token characters; logged as "…"
_TOKENISH = re.compile(r"^[A-Za-z0-9_\-.~%=]{16,}$")
#: fields of a record that are its own, not extras given with ``extra=`` (uvicorn adds
#: a copy of each message with terminal colours)
_OWN = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime",
                                                           "color_message"}


def _not_uvicorn_access(record: logging.LogRecord) -> bool:
    """uvicorn names each WebSocket with its raw path and query: the access log says it."""
    return not str(record.msg).startswith('%s - "WebSocket %s"')


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, any extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage()}
        line.update({k: v for k, v in vars(record).items() if k not in _OWN})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(log_format: Literal["text", "json"]) -> None:
    """The root logger's one handler (stderr), in the chosen format; uvicorn's loggers
    write through it too, so a JSON log has no plain lines in it."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(
        "%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    uvicorn_error = logging.getLogger("uvicorn.error")
    if _not_uvicorn_access not in uvicorn_error.filters:
        uvicorn_error.addFilter(_not_uvicorn_access)


def shown_path(scope: Scope) -> str:
    """The request's path as the access log shows it: no credential in it."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        params = scope.get("path_params") or {}
        for name, value in params.items():
            if name not in SECRET_PARAMS:
                template = template.replace("{" + name + "}", str(value), 1)
                template = re.sub(r"\{" + re.escape(name) + r":[^}]*\}", str(value), template)
        shown = template
    else:
        path = str(scope.get("path", ""))
        shown = "/".join("…" if _TOKENISH.match(part) else part for part in path.split("/"))
    query = scope.get("query_string", b"")
    if query:
        names = [part.split(b"=", 1)[0].decode("latin-1")[:40]
                 for part in query.split(b"&") if part]
        shown += "?" + "&".join(f"{n}=…" for n in names[:10])
    return shown


class AccessLog:
    """One line per HTTP request and per WebSocket when it closes: method, path (as
    ``shown_path`` makes it), status, duration, the client's address as the server saw it
    (behind a trusted proxy, the forwarded one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        began = time.monotonic()
        status: list[int] = []

        async def sending(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                status.append(int(message["status"]))
            elif kind == "websocket.accept":
                status.append(101)
            elif kind == "websocket.close" and not status:
                status.append(403)  # refused before it was accepted
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            access.info(
                "%s %s %s", scope.get("method", "WS"), shown_path(scope),
                status[0] if status else 500,
                extra={"method": scope.get("method", "WS"), "path": shown_path(scope),
                       "status": status[0] if status else 500,
                       "ms": round((time.monotonic() - began) * 1000, 1),
                       "client": client[0] if client else None})
