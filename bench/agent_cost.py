"""What the camera agent costs on its device: CPU (% of one core) and RSS, idle and while
streaming 640x480 at 10 fps, for VP8 and for H.264, and from an RTSP camera (H.264 640x480
at 10 fps from tests/rtsp/server.py fed by ffmpeg on loopback) passed through without
decoding, and decoded, enhanced and encoded again (VP8).

A real `camera-agent run` process per codec (synthetic source, low-light enhancement on,
as shipped), linked to the test suite's fake service; the viewer is an aiortc peer in
this process, so its decoding is not counted. CPU comes from /proc/<pid>/stat
(utime + stime), RSS from /proc/<pid>/status. Goals: idle under 1 %, streaming under 40 %,
passthrough under 3 %. Time to first frame: from the look-in message to the viewer's first
decoded frame.

Last line: idle_cpu_pct=N idle_rss_mb=N stream_cpu_pct_vp8=N stream_cpu_pct_h264=N
stream_cpu_pct_passthrough=N
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from tests.agent.fake_service import (
    AgentProcess,
    FakeService,
    new_agent,
    plan_at,
    viewer_offer,
)
from tests.rtsp.server import RtspServer

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(pid: int, seconds: float) -> tuple[float, float]:
    """(CPU % of one core, peak RSS MB) over `seconds` of wall time."""
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    peak = rss_mb(pid)
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(0.5)
        peak = max(peak, rss_mb(pid))
    return 100 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0), peak


async def with_agent(root: Path, codec: str, source: str = "synthetic",
                     **settings: object) -> tuple[FakeService, AgentProcess]:
    agent = new_agent(root)
    fake = FakeService(agent.camera_id, agent.identity.public_key_b64)
    await fake.start()
    fields = fake.signed_plan(plan_at(0), 1)
    fake.plan = (fields["plan_json"], fields["signature"], 1)
    agent.configure(fake.url, fake.public_key_b64, source=source, codec=codec,
                    width=640, height=480, fps=10, heartbeat_seconds=15,
                    backoff_cap_seconds=30, **settings)
    agent.start()
    await fake.wait_linked(60)
    return fake, agent


async def stream_cost(fake: FakeService, agent: AgentProcess, warmup: float,
                      seconds: float) -> tuple[float, float, float, str, float]:
    """(CPU %, peak RSS MB, frames/s received, codec negotiated, time to first frame ms)
    during one look-in."""
    ticket, token = fake.ticket(seconds=warmup + seconds + 3)
    pc, offer = await viewer_offer()
    frames: list[float] = []
    first = asyncio.Event()
    tracks: asyncio.Queue[object] = asyncio.Queue()
    pc.on("track", tracks.put_nowait)
    try:
        asked = time.monotonic()
        await fake.lookin(token, ticket, offer)
        reply = await fake.reply_to(ticket.session, timeout=30)
        if reply.type != "answer":
            raise SystemExit(f"look-in refused: {reply.msg}")
        sdp = reply.msg["sdp"]
        codec = next((line.split()[1].split("/")[0] for line in sdp.splitlines()
                      if line.startswith("a=rtpmap:")), "?")
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        track = await asyncio.wait_for(tracks.get(), 30)

        async def receive() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    await track.recv()  # type: ignore[attr-defined]
                    frames.append(time.monotonic())
                    first.set()

        receiver = asyncio.ensure_future(receive())
        await asyncio.wait_for(first.wait(), 30)
        ttff = (frames[0] - asked) * 1000
        await asyncio.sleep(warmup)
        start = time.monotonic()
        cpu, peak = await measure(agent.pid, seconds)
        end = time.monotonic()
        receiver.cancel()
        fps = sum(1 for t in frames if start <= t <= end) / (end - start)
        return cpu, peak, fps, codec, ttff
    finally:
        await pc.close()


async def main(idle_seconds: float, stream_seconds: float) -> None:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="agent-cost-") as tmp:
        for codec in ("vp8", "h264"):
            fake, agent = await with_agent(Path(tmp) / codec, codec)
            try:
                if codec == "vp8":
                    await asyncio.sleep(3)  # start-up (imports, first heartbeat) is not idle
                    cpu, peak = await measure(agent.pid, idle_seconds)
                    results["idle_cpu_pct"], results["idle_rss_mb"] = cpu, peak
                    print(f"idle: cpu {cpu:.2f} % rss {peak:.0f} MB over {idle_seconds:g} s",
                          flush=True)
                cpu, peak, fps, negotiated, ttff = await stream_cost(fake, agent, 3,
                                                                     stream_seconds)
                results[f"stream_cpu_pct_{codec}"] = cpu
                print(f"stream {codec} ({negotiated}): cpu {cpu:.1f} % rss {peak:.0f} MB, "
                      f"{fps:.1f} fps received over {stream_seconds:g} s, "
                      f"first frame {ttff:.0f} ms", flush=True)
            finally:
                agent.stop()
                await fake.close()
        camera = RtspServer().start()
        try:
            camera.publish(fps=10, gop=10)
            for case, settings in (("passthrough", {"enhance": False}),
                                   ("rtsp_encode", {"enhance": True})):
                fake, agent = await with_agent(Path(tmp) / case, "vp8", camera.url(),
                                               **settings)
                try:
                    cpu, peak, fps, negotiated, ttff = await stream_cost(fake, agent, 3,
                                                                         stream_seconds)
                    results[f"stream_cpu_pct_{case}"] = cpu
                    print(f"stream rtsp {case} ({negotiated}): cpu {cpu:.1f} % rss "
                          f"{peak:.0f} MB, {fps:.1f} fps received over {stream_seconds:g} s,"
                          f" first frame {ttff:.0f} ms", flush=True)
                finally:
                    agent.stop()
                    await fake.close()
        finally:
            camera.stop()
    print(" ".join(f"{k}={v:.1f}" if "rss" in k or "stream" in k else f"{k}={v:.2f}"
                   for k, v in (("idle_cpu_pct", results["idle_cpu_pct"]),
                                ("idle_rss_mb", results["idle_rss_mb"]),
                                ("stream_cpu_pct_vp8", results["stream_cpu_pct_vp8"]),
                                ("stream_cpu_pct_h264", results["stream_cpu_pct_h264"]),
                                ("stream_cpu_pct_passthrough",
                                 results["stream_cpu_pct_passthrough"]))))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument("--stream-seconds", type=float, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.idle_seconds, args.stream_seconds))
