"""Real Chromium (Debian's), driven by Playwright; never a downloaded browser."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import CHROMIUM, need

FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture
def browser() -> Iterator[object]:
    """Per test: sync Playwright runs an event loop of its own while open, which must not
    outlive the test (async tests after it need the thread's loop free)."""
    need(os.path.exists(CHROMIUM), f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """One browser for a module whose tests are all synchronous."""
    need(os.path.exists(CHROMIUM), f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield launched
        launched.close()


def login(page: object, base: str, username: str, password: str | None = None) -> None:
    page.goto(base + "/login")  # type: ignore[attr-defined]
    page.fill("input[name=username]", username)  # type: ignore[attr-defined]
    page.fill("input[name=password]", password or username)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
