"""What the camera agent costs on its device: CPU (% of one core) and RSS, idle and while
streaming 640x480 at 10 fps, for VP8 and for H.264, and from an RTSP camera (H.264 640x480
at 25 fps (what the install notes ask of a passed-through camera) or --rtsp-fps, a keyframe
a second, from tests/rtsp/server.py on loopback)
passed through without decoding, with and without the agent's keyframe request
(`keyframe_command`: curl PUT on the camera's requestKeyFrame URL), and decoded, enhanced
and encoded again (VP8).

A real `camera-agent run` process per codec (synthetic source, low-light enhancement on,
as shipped), linked to the test suite's fake service; the viewer is an aiortc peer in
this process, so its decoding is not counted. CPU comes from /proc/<pid>/stat
(utime + stime), RSS from /proc/<pid>/status. Goals: idle under 1 %, streaming under 40 %,
passthrough under 3 %. Time to first frame: from the look-in message to the viewer's first
decoded frame, the median of --ttff-runs look-ins per case (each ended before the next);
goal: passthrough no worse than the synthetic source (H.264, the same codec to the viewer).

Last line: idle_cpu_pct=N idle_rss_mb=N stream_cpu_pct_vp8=N stream_cpu_pct_h264=N
stream_cpu_pct_passthrough=N ttff_ms_passthrough=N ttff_ms_passthrough_keyframe=N
ttff_ms_synthetic=N
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from camera_agent.protocol import END
from tests.agent.fake_service import (
    AgentProcess,
    FakeService,
    Viewer,
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
                      seconds: float) -> tuple[float, float, float, str]:
    """(CPU %, peak RSS MB, frames/s received, codec negotiated) during one look-in."""
    ticket, token = fake.ticket(seconds=warmup + seconds + 3)
    pc, offer = await viewer_offer()
    frames: list[float] = []
    first = asyncio.Event()
    tracks: asyncio.Queue[object] = asyncio.Queue()
    pc.on("track", tracks.put_nowait)
    mark = len(fake.received)
    try:
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
        await asyncio.sleep(warmup)
        start = time.monotonic()
        cpu, peak = await measure(agent.pid, seconds)
        end = time.monotonic()
        receiver.cancel()
        fps = sum(1 for t in frames if start <= t <= end) / (end - start)
        await fake.send(END, session=ticket.session)
        await fake.wait_for(lambda r: r.type == "lookin_ended"
                            and r.msg["session"] == ticket.session, 15, after=mark)
        return cpu, peak, fps, codec
    finally:
        await pc.close()


async def first_frame_ms(fake: FakeService, runs: int) -> list[float]:
    """Time to first frame of `runs` look-ins, one after the other (each ended first).
    Each starts after a pause spread over a second, so that the look-ins do not all meet
    the camera at the same point of its GOP (a look-in's end follows a keyframe)."""
    took = []
    for i in range(runs):
        await asyncio.sleep(i * 0.37 % 1.0)
        ticket, token = fake.ticket(seconds=30)
        pc, offer = await viewer_offer()
        viewer = Viewer(pc)
        try:
            mark = len(fake.received)
            asked = time.monotonic()
            await fake.lookin(token, ticket, offer)
            reply = await fake.reply_to(ticket.session, timeout=30, after=mark)
            if reply.type != "answer":
                raise SystemExit(f"look-in refused: {reply.msg}")
            await pc.setRemoteDescription(RTCSessionDescription(reply.msg["sdp"], "answer"))
            await viewer.first_frame(30)
            took.append((viewer.frames[0] - asked) * 1000)
            await fake.send(END, session=ticket.session)
            await fake.wait_for(lambda r, s=ticket.session: r.type == "lookin_ended"
                                and r.msg["session"] == s, 15, after=mark)
        finally:
            await viewer.close()
    return took


def ttff_words(took: list[float]) -> str:
    return (f"first frame median {statistics.median(took):.0f} ms "
            f"(min {min(took):.0f}, max {max(took):.0f}, n={len(took)})")


async def main(idle_seconds: float, stream_seconds: float, ttff_runs: int,
               rtsp_fps: int) -> None:
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
                cpu, peak, fps, negotiated = await stream_cost(fake, agent, 3,
                                                                     stream_seconds)
                results[f"stream_cpu_pct_{codec}"] = cpu
                took = await first_frame_ms(fake, ttff_runs)
                results[f"ttff_ms_{codec}"] = statistics.median(took)
                print(f"stream {codec} ({negotiated}): cpu {cpu:.1f} % rss {peak:.0f} MB, "
                      f"{fps:.1f} fps received over {stream_seconds:g} s; "
                      f"{ttff_words(took)}", flush=True)
            finally:
                agent.stop()
                await fake.close()
        camera = RtspServer().start()
        try:
            camera.publish(fps=rtsp_fps, gop=rtsp_fps)  # a keyframe a second
            ask = f"curl --fail --silent --max-time 3 -X PUT {camera.keyframe_url()}"
            for case, settings in (("passthrough", {"enhance": False}),
                                   ("passthrough_keyframe", {"enhance": False,
                                                             "keyframe_command": ask}),
                                   ("rtsp_encode", {"enhance": True})):
                fake, agent = await with_agent(Path(tmp) / case, "vp8", camera.url(),
                                               **settings)
                try:
                    cpu, peak, fps, negotiated = await stream_cost(fake, agent, 3,
                                                                         stream_seconds)
                    results[f"stream_cpu_pct_{case}"] = cpu
                    took = await first_frame_ms(fake, ttff_runs)
                    results[f"ttff_ms_{case}"] = statistics.median(took)
                    print(f"stream rtsp {case} ({negotiated}): cpu {cpu:.1f} % rss "
                          f"{peak:.0f} MB, {fps:.1f} fps received over {stream_seconds:g} s;"
                          f" {ttff_words(took)}", flush=True)
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
                                 results["stream_cpu_pct_passthrough"]))),
          " ".join(f"{k}={results[v]:.0f}" for k, v in (
              ("ttff_ms_passthrough", "ttff_ms_passthrough"),
              ("ttff_ms_passthrough_keyframe", "ttff_ms_passthrough_keyframe"),
              ("ttff_ms_synthetic", "ttff_ms_h264"))))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument("--stream-seconds", type=float, default=20)
    parser.add_argument("--ttff-runs", type=int, default=7)
    parser.add_argument("--rtsp-fps", type=int, default=25,
                        help="the RTSP camera's frame rate (its GOP is one second)")
    args = parser.parse_args()
    asyncio.run(main(args.idle_seconds, args.stream_seconds, args.ttff_runs, args.rtsp_fps))
