"""The FastAPI application: wiring only; behaviour lives in the domain modules."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.types import ASGIApp, Receive, Scope, Send

import schedules
from supervision import audit_anchor, heap, identity, lookins, metrics, readiness, vapid
from supervision.alert_feed import RemoteAlerts
from supervision.api import admin, agents, manage, patrol, staff
from supervision.api import audit as audit_api
from supervision.api import roster as roster_api
from supervision.api.agents import AGENT_LINK_PATH
from supervision.auth import ROLES
from supervision.config import Settings, get_settings
from supervision.context import Who, require
from supervision.db import Database, settle_schema
from supervision.errors import BadInput, ServiceError
from supervision.http_guard import BodyLimit, Failures, SecurityHeaders, StrictJson
from supervision.i18n import Translator, pick_locale
from supervision.logs import AccessLog
from supervision.runtime import Runtime
from supervision.scheduler import NightScheduler
from supervision.web import admin_pages, audit_pages, manage_pages, pages

log = logging.getLogger("supervision")


def create_app(settings: Settings | None = None, *, own_process: bool = False) -> FastAPI:
    """The service. ``own_process``: it is the process's one service (``serve``), so it
    may tune the process's collector (supervision/heap.py); in-process clients share
    theirs with the tests."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database.open(settings.database_url, pool_size=settings.database_pool_size,
                                 max_overflow=settings.database_max_overflow)
        try:
            # an empty database is migrated (under a lock: nodes may start together); an
            # older one only with auto_migrate, else `supervision migrate` is the step
            await settle_schema(database.engine, auto_migrate=settings.auto_migrate)
            key = await identity.settle(database, settings)  # the service's one key, or refuse
            await vapid.settle(database, settings, key)  # and its one VAPID key (Web Push)
        except BaseException:
            await database.engine.dispose()
            raise
        rt = Runtime.create(settings, database)
        await audit_anchor.anchor(rt.database, settings, "start")  # the head as this run found it
        remote_alerts = RemoteAlerts(rt)  # before listening: no announcement missed
        await rt.start()  # counted among the nodes, listening to the others
        remote_alerts.start()

        async def report(camera_id: str, msg: dict[str, object]) -> None:
            await lookins.on_agent_report(rt, camera_id, dict(msg))

        rt.links.on_report = report
        app.state.runtime = rt
        night = NightScheduler(rt)
        app.state.night = night
        await night.start()
        # where it listens (what `serve` binds) and the address people use, which a proxy
        # may put elsewhere: the log names both, never a port the process is not on
        log.info("supervision ready: listening on %s:%s, public URL %s",
                 settings.host, settings.port, settings.public_url)
        if own_process:
            heap.install()  # start-up's objects out of every later collection
        try:
            yield
        finally:
            if own_process:
                heap.uninstall()
            await night.stop()  # releases leadership at once
            await remote_alerts.stop()
            await rt.stop()  # the other nodes learn at once that this one is gone
            await audit_anchor.anchor(rt.database, settings, "stop")
            await rt.engine.dispose()

    # no /docs or /redoc (their viewers load scripts from a CDN); the schema is served
    # below, to signed-in people only. No trailing-slash redirects: Starlette writes them
    # with the request's Host header, so a made-up Host would lead off the service.
    app = FastAPI(title="Nattillsyn supervision", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    # added innermost first: strict JSON, the body's bounds, failures, headers on every answer
    app.add_middleware(StrictJson, default_locale=settings.default_locale)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes,
                       idle_seconds=settings.body_timeout_seconds,
                       default_locale=settings.default_locale)
    app.add_middleware(Failures, default_locale=settings.default_locale)
    app.add_middleware(SecurityHeaders, https=settings.cookies_secure)
    app.add_middleware(AccessLog)  # outermost: every answer, with its final status

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        t = Translator(pick_locale(request.cookies.get("nt_lang"),
                                   request.headers.get("accept-language"),
                                   settings.default_locale))
        shown = dict(exc.details)
        for name, key in exc.words.items():
            if key in t.keys():
                shown[name] = t(key)
        return JSONResponse(status_code=exc.status, content={"detail": {
            "code": exc.code, "message": t(exc.code, **shown), **exc.details}})

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": exc.items})

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> JSONResponse:
        """Input the database cannot store (e.g. NUL in text on PostgreSQL): nothing was
        saved, the transaction rolled back; say so instead of a 500."""
        return await service_error(request, ServiceError(422, "error.bad_input"))

    signed_in = require(*ROLES)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_schema(current: Who = Depends(signed_in)) -> JSONResponse:
        """The API's schema, for a signed-in person: it maps every route."""
        return JSONResponse(app.openapi())

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """The process lives and answers (a liveness probe: restart me if not)."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Ready for traffic: database, schema, shared duties (supervision/readiness.py)."""
        rt: Runtime = request.app.state.runtime
        failing = await readiness.not_ready(rt.database, request.app.state.night.leading)
        return JSONResponse({"status": "not ready", "failing": failing} if failing
                            else {"status": "ready"}, status_code=503 if failing else 200)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        """Prometheus, with the configured bearer token; no token configured: no metrics."""
        token = settings.metrics_token.get_secret_value()
        if not token:
            return Response(status_code=404)
        if not metrics.allowed(token, request.headers.get("authorization")):
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return Response(await metrics.render(request.app.state.runtime),
                        media_type=metrics.CONTENT_TYPE)

    app.include_router(pages.router)
    app.include_router(manage_pages.router)
    app.include_router(staff.router)
    app.include_router(roster_api.router)
    app.include_router(patrol.router)
    app.include_router(agents.router)
    app.include_router(admin.router)
    app.include_router(manage.router)
    app.include_router(audit_api.router)
    app.include_router(audit_pages.router)
    app.include_router(admin_pages.router)
    app.openapi = _with_plan_schema(app)  # type: ignore[method-assign]
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "web" / "static"),
              name="static")
    return app


def _with_plan_schema(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The OpenAPI schema with the plan's JSON form as the domain describes it, so the
    documentation and the validation can never disagree."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI: this runs once
        schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
            "PlanDocument", schedules.plan_json_schema())
        return schema
    return openapi


def served(app: FastAPI) -> ASGIApp:
    """What the server runs: ``app``, except that a camera's link (``/ws/agent``) goes
    straight to its handler, with only the access log around it. Every camera holds its
    link open all night, and each layer of the stack (the four guards, which pass
    WebSockets through untouched, FastAPI's exception layers and router) keeps a frame and
    closures alive per connection: ~16 KB of a link's ~48 (bench/nodes.py) and a hop on
    every heartbeat. The route stays in ``app`` for in-process clients."""
    link = AccessLog(_agent_link)

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope.get("path") == AGENT_LINK_PATH:
            scope["app"] = app  # the handler finds the runtime in app.state
            await link(scope, receive, send)
        else:
            await app(scope, receive, send)
    return asgi


async def _agent_link(scope: Scope, receive: Receive, send: Send) -> None:
    await agents.agent_link(WebSocket(scope, receive, send))
