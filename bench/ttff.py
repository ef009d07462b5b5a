"""Time to first frame: from pressing Start (the request that asks for a ticket) to the
first decoded frame in Chromium, through the whole system on loopback.

Runs the real service, three real agents and Debian's Chromium; 20 look-ins by default.
Last line: ttff_p50_ms=N ttff_p95_ms=N runs=N
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import sync_playwright

from tests.browser.conftest import FLAGS, login
from tests.harness import start_world
from tests.people import Person


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        svc = start_world(Path(tmp) / "svc")
        try:
            Person(svc.url, "natt").wait_open_checks(3)
            samples: list[float] = []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, headless=True,
                                            args=FLAGS)
                page = browser.new_page()
                login(page, svc.url, "natt")
                page.locator("li.check.state-open button.start").first.wait_for()
                for i in range(args.runs):
                    # rotate over the open checks so no camera is re-opened back to back
                    buttons = page.locator("li.check.state-open button.start")
                    buttons.nth(i % buttons.count()).click()
                    page.wait_for_function(
                        "() => document.getElementById('lookin').dataset.ttff", timeout=10_000)
                    ms = float(page.evaluate(
                        "() => { const p = document.getElementById('lookin');"
                        " const v = p.dataset.ttff; delete p.dataset.ttff; return v; }"))
                    samples.append(ms)
                    print(f"run {i + 1}: {ms:.0f} ms", flush=True)
                    page.click("#lookin-close")
                    time.sleep(0.7)  # the agent reports the camera released
                browser.close()
        finally:
            svc.stop()
    print(f"mean={statistics.mean(samples):.0f} ms min={min(samples):.0f} max={max(samples):.0f}")
    print(f"ttff_p50_ms={percentile(samples, 0.5):.0f} ttff_p95_ms={percentile(samples, 0.95):.0f} "
          f"runs={len(samples)}")


if __name__ == "__main__":
    main()
