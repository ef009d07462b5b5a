"""Time to first frame: from pressing Start to the first decoded frame in Chromium, on
loopback.

Three measurements in one run, 20 look-ins each by default (``--mode`` picks one):
- bare: an aiortc peer in this process sending aiortc's own test pattern to a Chromium
  page that makes the same receive-only offer (no service, no agent, no ticket, nothing
  made ahead): what WebRTC alone costs on this machine, the yardstick for the others;
- direct: the whole system: the real service, three real agents, Chromium with local
  addresses shown (the other browser tests' flags), peer to peer. The rounds page makes
  its offer before Start is pressed (no TURN: one offer for any check, made again after
  each look-in), so the press sends it at once;
- turn: the same through a real coturn with per-look-in credentials, Chromium with its
  DEFAULT WebRTC settings (mDNS names for local addresses) and both peers relay only;
  every run's selected candidate pair is checked to be relay on both sides. The page
  prepares an offer for a check only when the pointer reaches its row, which a click
  does just before pressing: near enough none of it is ready at the press.

bare and direct run turn about (bare, direct, bare, ...), so both see the same load.
Each run's steps are time-stamped from the press: offer ready (gathered), answer in,
peer connected (DTLS), first frame; their medians are printed per mode.

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
  const steps = {};
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addEventListener('connectionstatechange', () => {
    if (pc.connectionState === 'connected') steps.connected = performance.now() - t0;
  });
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
  steps.offer = performance.now() - t0;
  const sdp = await window.benchAnswer(pc.localDescription.sdp);
  steps.answer = performance.now() - t0;
  await pc.setRemoteDescription({ type: 'answer', sdp });
  steps.first = await first;
  pc.close();
  return steps;
}
"""

#: a look-in's steps on the rounds page, from the press (lookin.js's timing)
LOOKIN_STEPS = """
() => {
  const t = window.nattLastLookin;
  const at = (v) => (v === undefined ? null : v - t.start);
  return { offer: at(t.offer), answer: at(t.answer), connected: at(t.connected),
           first: at(t.firstFrame), prepared_ms: t.preparedMs };
}
"""

Steps = dict[str, float | None]


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


class Bare:
    """The yardstick: one Chromium page and one aiortc peer, a look-in per run()."""

    def __init__(self, launch: Callable[[list[str]], Browser]) -> None:
        self.peer = BarePeer()
        self.browser = launch(FLAGS)
        self.page = self.browser.new_page()
        self.page.expose_function("benchAnswer", self.peer.answer)
        self.page.set_content("<video id=v muted playsinline></video>")

    def run(self, i: int) -> Steps:
        steps: Steps = self.page.evaluate(BARE_LOOKIN)
        print(f"bare run {i + 1}: {describe(steps)}", flush=True)
        time.sleep(0.2)
        return steps

    def close(self) -> None:
        self.browser.close()
        self.peer.close()


class System:
    """Look-ins through the rounds page, one per run(); ``relayed`` collects whether each
    run's selected pair was relay on both sides."""

    def __init__(self, launch: Callable[[list[str]], Browser], svc: Service, flags: list[str],
                 label: str, relayed: list[bool] | None = None) -> None:
        Person(svc.url, "natt").wait_open_checks(3)
        self.label, self.relayed = label, relayed
        self.browser = launch(flags)
        self.page = self.browser.new_page()
        self.page.add_init_script(RECORD_PEERS)
        login(self.page, svc.url, "natt")
        self.page.locator("li.check.state-open button.start").first.wait_for()

    def run(self, i: int) -> Steps:
        page = self.page
        # rotate over the open checks so no camera is re-opened back to back
        buttons = page.locator("li.check.state-open button.start")
        buttons.nth(i % buttons.count()).click()
        page.wait_for_function(
            "() => document.getElementById('lookin').dataset.ttff", timeout=10_000)
        ttff = float(page.evaluate(
            "() => { const p = document.getElementById('lookin');"
            " const v = p.dataset.ttff; delete p.dataset.ttff; return v; }"))
        steps: Steps = page.evaluate(LOOKIN_STEPS)
        steps["first"] = ttff  # what the page reported to the service
        if self.relayed is not None:
            pair: dict[str, Any] | None = page.evaluate(SELECTED_PAIR)
            self.relayed.append(bool(pair) and (pair or {}).get("local") == "relay"
                                and (pair or {}).get("remote") == "relay")
        print(f"{self.label} run {i + 1}: {describe(steps)}", flush=True)
        page.click("#lookin-close")
        time.sleep(0.7)  # the agent reports the camera released
        return steps

    def close(self) -> None:
        self.browser.close()


def describe(steps: Steps) -> str:
    marks = " ".join(f"{k}={v:.0f}" for k, v in steps.items()
                     if v is not None and k != "first")
    return f"{steps['first']:.0f} ms ({marks})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mode", choices=["all", "bare", "direct", "turn"], default="all")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    modes = ["bare", "direct", "turn"] if args.mode == "all" else [args.mode]
    results: dict[str, list[Steps]] = {}
    relayed: list[bool] = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        def launch(flags: list[str]) -> Browser:
            return p.chromium.launch(executable_path=args.chromium, headless=True, args=flags)

        turn_about: dict[str, Bare | System] = {}
        svc: Service | None = None
        try:
            if "direct" in modes:
                svc = start_world(Path(tmp) / "direct")
                turn_about["direct"] = System(launch, svc, FLAGS, "direct")
            if "bare" in modes:
                turn_about["bare"] = Bare(launch)
            for i in range(args.runs):
                for mode in ("bare", "direct"):
                    if mode in turn_about:
                        results.setdefault(mode, []).append(turn_about[mode].run(i))
        finally:
            for bench in turn_about.values():
                bench.close()
            if svc is not None:
                svc.stop()
        if "turn" in modes:
            secret = "bench-" + Path(tmp).name + "-turn-secret"
            coturn = start_coturn(Path(tmp) / "coturn", secret)
            try:
                svc = start_world(Path(tmp) / "turn", turn_urls=json.dumps([coturn.url]),
                                  turn_secret=secret, ice_transport_policy="relay")
                system = System(launch, svc, DEFAULT_WEBRTC_FLAGS, "turn", relayed)
                try:
                    results["turn"] = [system.run(i) for i in range(args.runs)]
                finally:
                    system.close()
                    svc.stop()
            finally:
                coturn.stop()
    figures = []
    for mode in ("bare", "direct", "turn"):
        if mode not in results:
            continue
        samples = [float(s["first"] or 0) for s in results[mode]]
        marks = {k: [v for s in results[mode] if (v := s.get(k)) is not None]
                 for k in ("offer", "answer", "connected")}
        medians = {k: statistics.median(v) for k, v in marks.items() if v}
        ready = sum((s.get("offer") or 0) <= 1 for s in results[mode])
        print(f"{mode}: mean={statistics.mean(samples):.0f} ms min={min(samples):.0f} "
              f"max={max(samples):.0f}; medians from the press: "
              + " ".join(f"{k}={v:.0f}" for k, v in medians.items())
              + (f"; offer ready at the press in {ready}/{len(samples)}"
                 if mode != "bare" else ""))
        figures.append(f"{mode}_p50_ms={percentile(samples, 0.5):.0f} "
                       f"{mode}_p95_ms={percentile(samples, 0.95):.0f}")
    if "bare" in results and "direct" in results:
        ratio = (percentile([float(s["first"] or 0) for s in results["direct"]], 0.5)
                 / percentile([float(s["first"] or 0) for s in results["bare"]], 0.5))
        figures.append(f"direct_over_bare={ratio:.2f}")
    if "turn" in results:
        figures.append(f"turn_relayed={sum(relayed)}/{len(relayed)}")
    print(" ".join(figures) + f" runs={args.runs}")


if __name__ == "__main__":
    main()
