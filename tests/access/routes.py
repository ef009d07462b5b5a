"""The application's route table, as the access and fuzz tests read it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute

from supervision.app import create_app

#: served by the framework, not the application: the schema and its viewers, static files
NOT_APPLICATION = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
                             "/static"})


@dataclass(frozen=True)
class Entry:
    method: str  # "GET", "POST", ... or "WS" for a WebSocket route
    path: str  # as mounted, with every router prefix
    route: BaseRoute  # the route object the application declared


def _flat(routes: list[BaseRoute]) -> Iterator[tuple[str, set[str] | None, BaseRoute]]:
    try:  # FastAPI >= 0.16x keeps included routers nested
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI copies every route into the app, prefixed
        for route in routes:
            yield str(getattr(route, "path", "")), getattr(route, "methods", None), route
        return
    for ctx in iter_route_contexts(routes):
        yield str(ctx.path), ctx.methods, ctx.original_route


def application_routes() -> list[Entry]:
    """Every route the application serves, one entry per method; HEAD (implied by GET)
    is left out, and so is what the framework serves."""
    entries: list[Entry] = []
    for path, methods, route in _flat(create_app().routes):
        if path in NOT_APPLICATION:
            continue
        if isinstance(route, APIWebSocketRoute):
            entries.append(Entry("WS", path, route))
        elif isinstance(route, APIRoute):
            entries += [Entry(m, path, route) for m in sorted(methods or ()) if m != "HEAD"]
        else:
            raise AssertionError(f"a route of a kind these tests do not know: {path} "
                                 f"({type(route).__name__}); teach tests/access/routes.py")
    return entries


def guard_roles(route: BaseRoute) -> frozenset[str] | None:
    """The roles of the `require(...)` guard among the route's dependencies; None if the
    route has none (public, or guarded inside the handler as the pages are)."""
    dependant = getattr(route, "dependant", None)
    stack = list(dependant.dependencies) if dependant is not None else []
    found: list[frozenset[str]] = []
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "roles", None)
        if roles is not None:
            found.append(frozenset(roles))
        stack.extend(dep.dependencies)
    assert len(found) <= 1, f"{getattr(route, 'path', route)}: more than one role guard"
    return found[0] if found else None
