"""Time to first frame: from pressing Start (the request for the ICE servers, then the one
that asks for a ticket) to the first decoded frame in Chromium, on loopback.

Three measurements in one run, 20 look-ins each by default (``--mode`` picks one):
- bare: an aiortc peer in this process sending aiortc's own test pattern to a Chromium
  page that makes the same receive-only offer (no service, no agent, no ticket): what
  WebRTC alone costs on this machine, the yardstick for the others;
- direct: the whole system, as before: the real service, three real agents, Chromium with
  local addresses shown (the other browser tests' flags), peer to peer;
- turn: the same through a real coturn with per-look-in credentials, Chromium with its
  DEFAULT WebRTC settings (mDNS names for local addresses) and both peers relay only;
  every run's selected candidate pair is checked to be relay on both sides.

Last line: bare_p50_ms=N bare_p95_ms=N direct_p50_ms=N ... turn_relayed=N/N runs=N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack
from playwright.sync_api import Browser, sync_playwright

from bench.figures import percentile
from tests.browser.conftest import FLAGS, login
from tests.harness import Service, start_world
from tests.people import Person
from tests.turn.browser import DEFAULT_WEBRTC_FLAGS, RECORD_PEERS, SELECTED_PAIR
from tests.turn.coturn import start_coturn

#: the bare page: the same receive-only offer and gathering wait as lookin.js
BARE_LOOKIN = """
async () => {
  const t0 = performance.now();
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver('video', { direction: 'recvonly' });
  const video = document.getElementById('v');
  const first = new Promise((resolve) => {
    pc.ontrack = (event) => {
      video.srcObject = new MediaStream([event.track]);
      video.play().catch(() => {});
      video.requestVideoFrameCallback(() => resolve(performance.now() - t0));
    };
  });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') resolve();
    });
    setTimeout(resolve, 2000);
  });
  const sdp = await window.benchAnswer(pc.localDescription.sdp);
  await pc.setRemoteDescription({ type: 'answer', sdp });
  const ms = await first;
  pc.close();
  return ms;
}
"""


class BarePeer:
    """aiortc answering on a loop of its own thread, as the agent's loop would."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.peers: list[RTCPeerConnection] = []

    def answer(self, offer: str) -> str:
        return asyncio.run_coroutine_threadsafe(self._answer(offer), self.loop).result(10)

    async def _answer(self, offer: str) -> str:
        for old in self.peers:
            await old.close()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.peers = [pc]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        pc.addTrack(VideoStreamTrack())
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    def close(self) -> None:
        async def close_all() -> None:
            for pc in self.peers:
                await pc.close()
        asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def bare(launch: Callable[[list[str]], Browser], runs: int) -> list[float]:
    peer = BarePeer()
    browser = launch(FLAGS)
    try:
        page = browser.new_page()
        page.expose_function("benchAnswer", peer.answer)
        page.set_content("<video id=v muted playsinline></video>")
        samples = []
        for i in range(runs):
            samples.append(float(page.evaluate(BARE_LOOKIN)))
            print(f"bare run {i + 1}: {samples[-1]:.0f} ms", flush=True)
            time.sleep(0.2)
    finally:
        browser.close()
        peer.close()
    return samples


def system(launch: Callable[[list[str]], Browser], svc: Service, flags: list[str], runs: int,
           label: str, relayed: list[bool] | None = None) -> list[float]:
    """Look-ins through the rounds page; ``relayed`` collects whether each run's selected
    pair was relay on both sides."""
    Person(svc.url, "natt").wait_open_checks(3)
    browser = launch(flags)
    samples: list[float] = []
    try:
        page = browser.new_page()
        page.add_init_script(RECORD_PEERS)
        login(page, svc.url, "natt")
        page.locator("li.check.state-open button.start").first.wait_for()
        for i in range(runs):
            # rotate over the open checks so no camera is re-opened back to back
            buttons = page.locator("li.check.state-open button.start")
            buttons.nth(i % buttons.count()).click()
            page.wait_for_function(
                "() => document.getElementById('lookin').dataset.ttff", timeout=10_000)
            ms = float(page.evaluate(
                "() => { const p = document.getElementById('lookin');"
                " const v = p.dataset.ttff; delete p.dataset.ttff; return v; }"))
            samples.append(ms)
            if relayed is not None:
                pair: dict[str, Any] | None = page.evaluate(SELECTED_PAIR)
                relayed.append(bool(pair) and (pair or {}).get("local") == "relay"
                               and (pair or {}).get("remote") == "relay")
            print(f"{label} run {i + 1}: {ms:.0f} ms", flush=True)
            page.click("#lookin-close")
            time.sleep(0.7)  # the agent reports the camera released
    finally:
        browser.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mode", choices=["all", "bare", "direct", "turn"], default="all")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    modes = ["bare", "direct", "turn"] if args.mode == "all" else [args.mode]
    results: dict[str, list[float]] = {}
    relayed: list[bool] = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        def launch(flags: list[str]) -> Browser:
            return p.chromium.launch(executable_path=args.chromium, headless=True, args=flags)

        if "bare" in modes:
            results["bare"] = bare(launch, args.runs)
        if "direct" in modes:
            svc = start_world(Path(tmp) / "direct")
            try:
                results["direct"] = system(launch, svc, FLAGS, args.runs, "direct")
            finally:
                svc.stop()
        if "turn" in modes:
            secret = "bench-" + Path(tmp).name + "-turn-secret"
            coturn = start_coturn(Path(tmp) / "coturn", secret)
            try:
                svc = start_world(Path(tmp) / "turn", turn_urls=json.dumps([coturn.url]),
                                  turn_secret=secret, ice_transport_policy="relay")
                try:
                    results["turn"] = system(launch, svc, DEFAULT_WEBRTC_FLAGS, args.runs,
                                             "turn", relayed)
                finally:
                    svc.stop()
            finally:
                coturn.stop()
    figures = []
    for mode, samples in results.items():
        print(f"{mode}: mean={statistics.mean(samples):.0f} ms min={min(samples):.0f} "
              f"max={max(samples):.0f}")
        figures.append(f"{mode}_p50_ms={percentile(samples, 0.5):.0f} "
                       f"{mode}_p95_ms={percentile(samples, 0.95):.0f}")
    if "bare" in results and "direct" in results:
        ratio = percentile(results["direct"], 0.5) / percentile(results["bare"], 0.5)
        figures.append(f"direct_over_bare={ratio:.2f}")
    if "turn" in results:
        figures.append(f"turn_relayed={sum(relayed)}/{len(relayed)}")
    print(" ".join(figures) + f" runs={args.runs}")


if __name__ == "__main__":
    main()
