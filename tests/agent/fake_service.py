"""A test-side stand-in for the supervision service's agent link, and a real agent process.

The fake service speaks only camera_agent.protocol (challenge -> auth -> welcome -> signed
plan) with its own Ed25519 key, which the agent pins in a hand-written agent.toml. Tests
use it to send what the real service never would: forged, expired, replayed or
wrong-camera tickets, plans with bad signatures, garbled and oversize messages, and to
cut the link at will. The agent on the other side is a real `camera-agent run` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import schedules
from camera_agent.identity import Identity
from camera_agent.protocol import (
    AGENT_TYPES,
    AUTH,
    CHALLENGE,
    CLOSE_AUTH_FAILED,
    CLOSE_REVOKED,
    LOOKIN,
    MAX_MESSAGE_BYTES,
    PLAN,
    PLAN_ACK,
    WELCOME,
    Ticket,
    decode_message,
    encode_message,
    encode_ticket,
    link_challenge_message,
    load_public_key,
    new_nonce,
    plan_message,
    verify,
)

BIN = Path(sys.executable).parent
TZ = "Europe/Stockholm"


async def eventually(check: Callable[[], bool], timeout: float, what: str,
                     period: float = 0.05) -> None:
    """Poll something outside the loop's reach (a file, a process) until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(period)


# --- plans ------------------------------------------------------------------------


def plan_at(offset_minutes: float, now: datetime | None = None) -> schedules.Plan:
    """A valid plan with one check at now + offset (local minutes), 15/15 min windows.

    offset 0: a look-in is allowed now; offset 180: it is not (three hours away).
    """
    local = (now or datetime.now(UTC)).astimezone(ZoneInfo(TZ))
    boundary = (local - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    at = (local + timedelta(minutes=offset_minutes)).time().replace(second=0, microsecond=0)
    return schedules.Plan(
        check_times=(schedules.CheckTime(at=at),),
        timezone=TZ,
        consent=schedules.Consent(given_on=date.today() - timedelta(days=30)),
        night_boundary=boundary.time(),
    )


# --- the fake service -------------------------------------------------------------


@dataclass
class Received:
    at: float  # wall clock when the fake service got it
    msg: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.msg["type"])


@dataclass
class FakeService:
    camera_id: str
    agent_public_key: str
    ssl_context: ssl.SSLContext | None = None
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    received: list[Received] = field(default_factory=list)
    links: int = 0  # authenticated links so far
    refused_links: int = 0
    plan: tuple[str, str, int] | None = None  # sent after welcome: (plan_json, signature, v)
    port: int = 0
    conn: ServerConnection | None = None
    _server: Server | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def public_key_b64(self) -> str:
        return Identity(self.key).public_key_b64

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await serve(self._serve, "127.0.0.1", self.port, ssl=self.ssl_context,
                                   max_size=MAX_MESSAGE_BYTES * 4)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """A cut network: stop listening and drop the live link without a close handshake."""
        server, self._server = self._server, None
        if server is not None:
            server.close(close_connections=False)  # listening sockets close at once
        if self.conn is not None:
            self.conn.transport.abort()
            self.conn = None
        if server is not None:
            await asyncio.wait_for(server.wait_closed(), 10)

    async def close(self) -> None:
        await self.cut()

    async def revoke(self) -> None:
        """What the real service does on revocation: close the live link with 4403."""
        assert self.conn is not None, "no live link"
        await self.conn.close(CLOSE_REVOKED, "camera revoked")

    # -- the link --------------------------------------------------------------------
    async def _serve(self, ws: ServerConnection) -> None:
        nonce = new_nonce()
        await ws.send(encode_message(CHALLENGE, nonce=nonce))
        try:
            auth = decode_message(await asyncio.wait_for(ws.recv(), 10), AGENT_TYPES)
        except (ConnectionClosed, TimeoutError):
            return
        ok = (auth["type"] == AUTH and auth.get("camera") == self.camera_id and verify(
            load_public_key(self.agent_public_key), str(auth.get("signature")),
            link_challenge_message(self.camera_id, nonce)))
        if not ok:
            self.refused_links += 1
            await ws.close(CLOSE_AUTH_FAILED, "unknown camera")
            return
        await ws.send(encode_message(WELCOME))
        if self.plan is not None:
            plan_json, signature, version = self.plan
            await ws.send(encode_message(PLAN, plan_json=plan_json, signature=signature,
                                         version=version))
        self.conn = ws
        self.links += 1
        self._note({"type": "_linked"})
        try:
            async for raw in ws:
                self._note(json.loads(raw))
        except ConnectionClosed:
            pass
        finally:
            if self.conn is ws:
                self.conn = None
            self._note({"type": "_unlinked"})

    def _note(self, msg: dict[str, Any]) -> None:
        self.received.append(Received(time.time(), msg))
        self._changed.set()

    async def wait_for(self, pred: Callable[[Received], bool], timeout: float = 15.0,
                       after: int = 0) -> Received:
        """The first message (from index `after`) that matches."""
        deadline = time.monotonic() + timeout
        while True:
            for item in self.received[after:]:
                if pred(item):
                    return item
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching message; got "
                                   f"{[r.msg for r in self.received[after:]][-10:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_linked(self, timeout: float = 30.0) -> None:
        await eventually(lambda: self.conn is not None, timeout, "agent did not link")

    def of_type(self, kind: str, session: str | None = None) -> list[Received]:
        return [r for r in self.received if r.type == kind
                and (session is None or r.msg.get("session") == session)]

    async def send(self, msg_type: str, **fields: Any) -> None:
        assert self.conn is not None, "no live link"
        await self.conn.send(encode_message(msg_type, **fields))

    async def send_raw(self, data: str | bytes) -> None:
        assert self.conn is not None, "no live link"
        await self.conn.send(data)

    # -- what the service signs ------------------------------------------------------
    def ticket(self, *, seconds: float = 30.0, camera: str | None = None,
               not_before: float | None = None, nonce: str | None = None,
               session: str | None = None, follow_ups: int = 0,
               key: Ed25519PrivateKey | None = None) -> tuple[Ticket, str]:
        start = time.time() if not_before is None else not_before
        ticket = Ticket(check="1", camera=camera or self.camera_id, viewer="natt",
                        session=session or new_nonce()[:16], not_before=round(start, 3),
                        not_after=round(start + seconds, 3), nonce=nonce or new_nonce(),
                        follow_ups=follow_ups)
        signer = key or self.key
        return ticket, encode_ticket(ticket, signer.sign)

    def signed_plan(self, plan: schedules.Plan, version: int, *,
                    key: Ed25519PrivateKey | None = None) -> dict[str, Any]:
        raw = schedules.canonical_json(plan)
        signature = Identity(key or self.key).sign(plan_message(self.camera_id, raw))
        return {"plan_json": raw.decode(), "signature": signature, "version": version}

    async def push_plan(self, plan: schedules.Plan, version: int, *,
                        key: Ed25519PrivateKey | None = None, timeout: float = 10) -> None:
        """Send a plan and wait until the agent acknowledged it and its heartbeat says it
        holds it (if it should)."""
        fields = self.signed_plan(plan, version, key=key)
        mark = len(self.received)
        await self.send(PLAN, **fields)
        if key is None:
            await self.wait_for(lambda r: r.type == PLAN_ACK and r.msg["version"] == version,
                                timeout, after=mark)
            await self.wait_for(lambda r: r.type == "heartbeat"
                                and r.msg["health"].get("plan_version") == version,
                                timeout, after=mark)

    async def lookin(self, token: str, ticket: Ticket, offer: str,
                     session: str | None = None) -> None:
        await self.send(LOOKIN, session=session or ticket.session, ticket=token, offer=offer)

    async def reply_to(self, session: str, timeout: float = 15.0, after: int = 0) -> Received:
        return await self.wait_for(lambda r: r.type in ("answer", "refused")
                                   and r.msg.get("session") == session, timeout, after)


# --- a viewer ---------------------------------------------------------------------


class Viewer:
    """The ticket's peer: an aiortc receiver that decodes and records when each frame
    arrived (by ``clock``) and its size."""

    def __init__(self, pc: RTCPeerConnection,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pc = pc
        self.clock = clock
        self.frames: list[float] = []
        self.sizes: set[tuple[int, int]] = set()
        self.sdp = ""  # the agent's answer, once set
        self._task: asyncio.Task[None] | None = None
        pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._task = asyncio.ensure_future(self._collect(track))

    async def _collect(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.frames.append(self.clock())
                self.sizes.add((frame.width, frame.height))  # type: ignore[union-attr]

    async def first_frame(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not self.frames:
            assert time.monotonic() < deadline, "no frame reached the viewer"
            await asyncio.sleep(0.05)

    async def frames_after(self, instant: float, count: int, timeout: float = 10) -> None:
        """``count`` frames arrived after ``instant`` (by this viewer's clock)."""
        deadline = time.monotonic() + timeout
        while sum(1 for t in self.frames if t > instant) < count:
            assert time.monotonic() < deadline, f"fewer than {count} frames reached the viewer"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.pc.close()


async def viewer_offer() -> tuple[RTCPeerConnection, str]:
    """A receive-only aiortc peer with no ICE servers (nothing leaves loopback)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


# --- the agent process ------------------------------------------------------------


@dataclass
class AgentProcess:
    root: Path
    camera_id: str
    identity: Identity
    proc: subprocess.Popen[bytes] | None = None

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def log_path(self) -> Path:
        return self.root / "agent.log"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "agent.toml"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def configure(self, server_url: str, server_key: str, **settings: Any) -> None:
        """A hand-written agent.toml, as an installer would leave it after enrolment."""
        values: dict[str, Any] = {"server_url": server_url, "camera_id": self.camera_id,
                                  "server_public_key": server_key, "state_dir": ".",
                                  "heartbeat_seconds": 1, "backoff_cap_seconds": 1}
        values.update(settings)
        lines = []
        for name, value in values.items():
            if isinstance(value, bool):
                lines.append(f"{name} = {'true' if value else 'false'}")
            else:
                lines.append(f"{name} = {json.dumps(value)}")
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(BIN / "camera-agent"), "run", "--config", str(self.config_path)],
            stdout=out, stderr=subprocess.STDOUT, cwd=self.work_dir,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        out.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def new_agent(root: Path, camera_id: str = "cam-test") -> AgentProcess:
    """A state directory with a fresh 0600 key, an empty working directory."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "state").mkdir(mode=0o700)
    (root / "work").mkdir()
    identity = Identity.create(root / "state" / "agent.key")
    return AgentProcess(root=root, camera_id=camera_id, identity=identity)


# --- watching the process's open files -----------------------------------------------


@dataclass
class OpenFile:
    target: str
    flags: int


def open_files(pid: int) -> dict[int, OpenFile]:
    """fd -> (target, open flags) of a live process, from /proc."""
    found: dict[int, OpenFile] = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for name in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            with open(f"/proc/{pid}/fdinfo/{name}") as info:
                flags = next(int(line.split()[1], 8) for line in info
                             if line.startswith("flags:"))
        except (OSError, StopIteration, ValueError):
            continue
        found[int(name)] = OpenFile(target, flags)
    return found


def writable(flags: int) -> bool:
    return flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)


class FdWatch:
    """Polls a process's open files every few ms on a thread: when was `path` open, and
    which regular files were open (and how) at any time while watching."""

    def __init__(self, pid: int, path: Path, period: float = 0.01) -> None:
        self.pid = pid
        self.path = str(path)
        self.period = period
        self.intervals: list[list[float]] = []  # [first seen open, first seen closed]
        self.seen: dict[str, int] = {}  # regular-file target -> OR of flags seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fd-watch")

    def __enter__(self) -> FdWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def is_open(self) -> bool:
        return bool(self.intervals) and len(self.intervals[-1]) == 1

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            files = open_files(self.pid)
            holding = False
            for item in files.values():
                if item.target.startswith("/") and not item.target.startswith(
                        ("/dev/", "/proc/")):
                    self.seen[item.target] = self.seen.get(item.target, 0) | item.flags
                if item.target == self.path:
                    holding = True
            if holding and not self.is_open:
                self.intervals.append([now])
            elif not holding and self.is_open:
                self.intervals[-1].append(now)
            self._stop.wait(self.period)


def write_clip(path: Path, frames: int = 20, size: tuple[int, int] = (640, 480)) -> Path:
    """A short MJPG clip used as the camera: a file the agent must hold open to read."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 40 + 8 * i, np.uint8))
    writer.release()
    return path


def snapshot(*dirs: Path) -> dict[str, tuple[int, int]]:
    """Every file under the directories: path -> (size, mtime_ns)."""
    out: dict[str, tuple[int, int]] = {}
    for top in dirs:
        for dirpath, _dirnames, filenames in os.walk(top):
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                out[path] = (st.st_size, st.st_mtime_ns)
    return out
