"""An in-process service (the real application, its lifespan and scheduler, on SQLite or
PostgreSQL) spoken to over ASGI, seeded with the demo world; and people signed in to it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from supervision.app import create_app
from supervision.config import Settings
from supervision.db import Database, migrate
from supervision.demo import seed
from supervision.runtime import Runtime
from tests.conftest import fresh_pg_database

BASE = "http://127.0.0.1:8000"


@dataclass
class InProcess:
    app: FastAPI
    world: dict[str, Any]

    @property
    def rt(self) -> Runtime:
        rt: Runtime = self.app.state.runtime
        return rt

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE,
                                 follow_redirects=False)

    async def login(self, username: str, password: str | None = None) -> Browser:
        who = Browser(self.client())
        await who.login(username, password or username)
        return who


class Browser:
    """A signed-in person: a cookie jar and the page's CSRF token."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.csrf = ""

    async def login(self, username: str, password: str, expect: int = 303) -> httpx.Response:
        page = await self.http.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        reply = await self.http.post("/login", data={"username": username, "password": password,
                                                     "csrf": token.group(1)})
        assert reply.status_code == expect, reply.text
        if expect == 303:
            home = await self.http.get(reply.headers["location"])
            found = re.search(r'name="csrf-token" content="([^"]*)"', home.text)
            self.csrf = found.group(1) if found else ""
        return reply

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path)

    async def send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.http.request(method, path, json=body,
                                       headers={"X-CSRF-Token": self.csrf})


@asynccontextmanager
async def running(url: str, root: Path) -> AsyncIterator[InProcess]:
    database = Database.open(url)
    try:
        await migrate(database.engine)
        async with database.write() as db:
            world = await seed(db)
    finally:
        await database.engine.dispose()
    app = create_app(Settings(database_url=url, data_dir=root, public_url=BASE))
    async with app.router.lifespan_context(app):
        yield InProcess(app, world)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A fresh database of each kind for the module, and a data directory."""
    root = tmp_path_factory.mktemp("inproc")
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{root}/db.sqlite3", root
        return
    with fresh_pg_database() as (url, _):
        yield url, root
