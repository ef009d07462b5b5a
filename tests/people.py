"""A signed-in person talking to the real service over HTTP (as a browser would)."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx


class Person:
    def __init__(self, base_url: str, username: str, password: str | None = None) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=20, follow_redirects=False)
        page = self.http.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token, "login page has a CSRF field"
        reply = self.http.post("/login", data={"username": username,
                                                "password": password or username,
                                                "csrf": token.group(1)})
        assert reply.status_code == 303, reply.text
        home = self.http.get(reply.headers["location"])
        found = re.search(r'name="csrf-token" content="([^"]*)"', home.text)
        self.csrf = found.group(1) if found else ""

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def post(self, path: str, body: Any = None, *, csrf: bool = True) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        return self.http.post(path, json=body, headers=headers)

    def rounds(self) -> list[dict[str, Any]]:
        reply = self.get("/api/rounds")
        assert reply.status_code == 200, reply.text
        checks: list[dict[str, Any]] = reply.json()["checks"]
        return checks

    def wait_open_checks(self, n: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
        """Open checks whose camera is online, once the sweep has opened them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = [c for c in self.rounds() if c["state"] == "open" and c["camera_online"]]
            if len(ready) >= n:
                return ready
            time.sleep(0.3)
        raise TimeoutError(f"fewer than {n} open checks with cameras online")
