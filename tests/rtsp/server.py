"""A small real RTSP camera on loopback for the agent's RTSP tests and benchmarks.

It encodes its own night-dim test picture with PyAV (libx264, Constrained Baseline, no
B-frames, zerolatency: what an IP camera's sub-stream sends), packetises each frame to
RTP (RFC 6184, aiortc's packetiser) and sends it to every client that played the
stream, over TCP (interleaved) or UDP, as an IP camera does. SPS and PPS travel out of
band, in the SDP's sprop-parameter-sets, as many cameras send them.

Like many cameras it takes a request for a keyframe: `PUT` on
``/ISAPI/Streaming/channels/<n>/requestKeyFrame`` (Hikvision's ISAPI) at `keyframe_url()`
makes the next frame an IDR, and so does `request_keyframe()`; with
`keyframe_on_play` every new PLAY session starts with a fresh keyframe, as some cameras
do by themselves. Otherwise a keyframe comes every `gop` frames.

Everything the tests need to see on the camera's side is recorded: per client session
the transport it asked for, whether its credentials were accepted, PLAY, TEARDOWN and when
its connection closed; the instant of each keyframe request and each keyframe. The tests
can make the camera stall (stop sending, keep the connection), drop every client (reset
their connections) and refuse new connections for a while.

The server and its encoder run in threads of their own, so any test (sync or async) can
use it. The encoder costs about 2 % of a core (640x480, 10 fps, ~500 kbit/s).
"""

from __future__ import annotations

import asyncio
import base64
import fractions
import itertools
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc.codecs.h264 import H264Encoder

PATH = "/cam"
PAYLOAD_TYPE = 96
_ids = itertools.count(1)
_KEYFRAME_PATH = re.compile(r"^/ISAPI/Streaming/channels/\d+/requestKeyFrame$")


@dataclass
class Client:
    """One viewer connection as the camera saw it."""

    peer: str
    opened_at: float
    authorised: bool = False
    refused_auth: int = 0  # 401 answers sent
    transport: str = ""  # the Transport header of its SETUP
    session: str = ""
    played_at: float | None = None
    teardown_at: float | None = None
    closed_at: float | None = None
    packets_sent: int = 0
    writer: asyncio.StreamWriter | None = field(default=None, repr=False)
    udp_ports: tuple[int, int] | None = None
    interleaved: tuple[int, int] = (0, 1)

    @property
    def left(self) -> bool:
        return self.closed_at is not None

    @property
    def playing(self) -> bool:
        return self.played_at is not None and self.closed_at is None


class RtspServer:
    """See the module docstring. `users` {name: password} turns Basic auth on for players
    and for the keyframe request."""

    def __init__(self, users: dict[str, str] | None = None, *,
                 keyframe_on_play: bool = False) -> None:
        self.users = users or {}
        self.keyframe_on_play = keyframe_on_play
        self.port = 0
        self.http_port = 0
        self.sdp = ""
        self.fps = 0
        self.gop = 0
        self.clients: list[Client] = []
        self.requests: list[str] = []  # every request line and header block, for leak checks
        self.keyframe_requests: list[float] = []  # monotonic instant of each one accepted
        self.keyframes: list[tuple[float, bool]] = []  # (sent at, forced) of each keyframe
        self.stalled = False
        self.refuse_until = 0.0
        self.published = threading.Event()
        self._force_key = threading.Event()
        self._stop = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.Server] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="rtsp-server")
        self._encoder: threading.Thread | None = None
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", 0))

    # -- life -------------------------------------------------------------------------
    def start(self) -> RtspServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    async def _listen(self) -> None:
        rtsp = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        http = await asyncio.start_server(self._handle_http, "127.0.0.1", 0)
        self._servers = [rtsp, http]
        self.port = rtsp.sockets[0].getsockname()[1]
        self.http_port = http.sockets[0].getsockname()[1]

    def publish(self, fps: int = 10, gop: int = 5, size: str = "640x480",
                timeout: float = 15.0) -> None:
        """Start the camera's encoder (a keyframe every `gop` frames unless asked for one);
        return once its first frame is out and the SDP is known."""
        width, _, height = size.partition("x")
        self.fps, self.gop = int(fps), int(gop)
        self._encoder = threading.Thread(target=self._encode, args=(int(width), int(height)),
                                         daemon=True, name="rtsp-camera-encoder")
        self._encoder.start()
        if not self.published.wait(timeout):
            raise RuntimeError("the test camera's encoder did not start")

    def stop(self) -> None:
        self._stop.set()
        if self._encoder is not None:
            self._encoder.join(5)

        async def shut() -> None:
            for server in self._servers:
                server.close()
            for c in self.clients:
                if c.writer is not None:
                    c.writer.transport.abort()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._udp.close()

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user is not None else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{PATH}"

    def keyframe_url(self, channel: int = 102) -> str:
        """Where a `PUT` asks for a keyframe (as on a Hikvision camera)."""
        return f"http://127.0.0.1:{self.http_port}/ISAPI/Streaming/channels/{channel}" \
               "/requestKeyFrame"

    def request_keyframe(self) -> None:
        """Make the next frame a keyframe (IDR with the same SPS and PPS)."""
        self._force_key.set()

    # -- faults -----------------------------------------------------------------------
    def drop_clients(self, refuse_seconds: float = 0.0) -> None:
        """Reset every player's connection (a camera rebooting its stream) and refuse new
        connections for `refuse_seconds`."""
        self.refuse_until = time.monotonic() + refuse_seconds

        def drop() -> None:
            for c in self.clients:
                if c.writer is not None and c.closed_at is None:
                    c.writer.transport.abort()

        self._loop.call_soon_threadsafe(drop)

    # -- what happened ----------------------------------------------------------------
    def players(self) -> list[Client]:
        return [c for c in self.clients if c.played_at is not None]

    def wait(self, check: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.02)
        raise TimeoutError(f"{what} within {timeout} s; clients: {self.clients}")

    # -- the camera's encoder (its own thread) ----------------------------------------
    def _encode(self, width: int, height: int) -> None:
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.time_base = fractions.Fraction(1, self.fps)
        codec.framerate = fractions.Fraction(self.fps, 1)
        codec.gop_size = self.gop
        codec.max_b_frames = 0
        codec.bit_rate = 800_000
        codec.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                         "forced-idr": "1", "x264-params": "scenecut=0"}
        codec.flags |= av.codec.context.Flags.global_header  # SPS/PPS out of band
        picture = _Picture(width, height)
        ssrc = 0x4E415454
        seq = 0
        step = 90_000 // self.fps
        period = 1.0 / self.fps
        due = time.monotonic()
        n = 0
        while not self._stop.is_set():
            now = time.monotonic()
            if now < due and self._stop.wait(due - now):
                break
            due = max(due + period, time.monotonic() - period)
            frame = av.VideoFrame.from_ndarray(picture.at(n), format="yuv420p")
            frame.pts = n
            forced = self._force_key.is_set()
            if forced:
                self._force_key.clear()
                frame.pict_type = av.video.frame.PictureType.I
            for packet in codec.encode(frame):
                data = bytes(packet)
                if not self.sdp:
                    self.sdp = self._describe(codec.extradata or b"")
                payloads = H264Encoder._packetize(H264Encoder._split_bitstream(data))
                rtp = []
                for i, payload in enumerate(payloads):
                    marker = 0x80 if i == len(payloads) - 1 else 0
                    rtp.append(bytes([0x80, marker | PAYLOAD_TYPE]) + seq.to_bytes(2, "big")
                               + ((n * step) & 0xFFFFFFFF).to_bytes(4, "big")
                               + ssrc.to_bytes(4, "big") + payload)
                    seq = (seq + 1) & 0xFFFF
                key = bool(packet.is_keyframe)
                try:
                    self._loop.call_soon_threadsafe(self._send, rtp, key, forced and key)
                except RuntimeError:  # the loop is closed: stopping
                    return
            if self.sdp:
                self.published.set()
            n += 1

    def _describe(self, extradata: bytes) -> str:
        nals = [nal for nal in H264Encoder._split_bitstream(extradata) if nal]
        sps = next((nal for nal in nals if nal[0] & 0x1F == 7), b"\x67\x42\xc0\x1e")
        sprop = ",".join(base64.b64encode(nal).decode() for nal in nals)
        return "\r\n".join([
            "v=0", "o=- 0 0 IN IP4 127.0.0.1", "s=Nattillsyn test camera",
            "c=IN IP4 0.0.0.0", "t=0 0", "a=control:*",
            f"m=video 0 RTP/AVP {PAYLOAD_TYPE}", f"a=rtpmap:{PAYLOAD_TYPE} H264/90000",
            f"a=fmtp:{PAYLOAD_TYPE} packetization-mode=1; profile-level-id={sps[1:4].hex()};"
            f" sprop-parameter-sets={sprop}",
            f"a=framerate:{self.fps}", "a=control:trackID=0", ""])

    def _send(self, rtp: list[bytes], key: bool, forced: bool) -> None:
        """One whole frame to every playing client (so each starts at a frame's start)."""
        if self.stalled:
            return
        if key:
            self.keyframes.append((time.monotonic(), forced))
        for c in self.clients:
            if not c.playing or c.writer is None or c.writer.transport.is_closing():
                continue  # (a player that has just gone: nothing more to write to it)
            for packet in rtp:
                if c.udp_ports is not None:
                    self._udp.sendto(packet, ("127.0.0.1", c.udp_ports[0]))
                else:
                    c.writer.write(b"$" + bytes([c.interleaved[0]])
                                   + len(packet).to_bytes(2, "big") + packet)
            c.packets_sent += len(rtp)

    # -- the keyframe request (HTTP) --------------------------------------------------
    async def _handle_http(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("utf-8", "replace")
            line, *header_lines = head.strip().split("\r\n")
            method, target, _ = line.split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (h.partition(":") for h in header_lines)}
            if int(headers.get("content-length", "0") or 0):
                await reader.readexactly(int(headers["content-length"]))
            if not _KEYFRAME_PATH.match(target.partition("?")[0]):
                status, body = "404 Not Found", "<ResponseStatus>no such resource"
            elif method != "PUT":
                status, body = "405 Method Not Allowed", "<ResponseStatus>PUT only"
            elif not self._auth_ok(headers):
                status, body = "401 Unauthorized", "<ResponseStatus>unauthorised"
            else:
                self.keyframe_requests.append(time.monotonic())
                self.request_keyframe()
                status, body = "200 OK", "<ResponseStatus><statusCode>1</statusCode>OK"
            body += "</ResponseStatus>\n"
            extra = 'WWW-Authenticate: Basic realm="camera"\r\n' if status[0] == "4" else ""
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/xml\r\n{extra}"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
                         .encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError,
                ValueError):
            pass
        finally:
            writer.close()

    # -- the protocol -----------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self.refuse_until:
            writer.transport.abort()
            return
        host, port = writer.get_extra_info("peername")[:2]
        client = Client(peer=f"{host}:{port}", opened_at=time.monotonic(), writer=writer)
        try:
            while True:
                first = await reader.readexactly(1)
                if first == b"$":  # interleaved data from a player: its RTCP receiver reports
                    head = await reader.readexactly(3)
                    await reader.readexactly(int.from_bytes(head[1:3], "big"))
                    continue
                raw = first + await reader.readuntil(b"\r\n\r\n")
                text = raw.decode("utf-8", "replace")
                self.requests.append(text)
                line, *header_lines = text.strip().split("\r\n")
                method = line.split(" ", 1)[0]
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (h.partition(":") for h in header_lines)}
                if int(headers.get("content-length", "0")):
                    await reader.readexactly(int(headers["content-length"]))
                if client not in self.clients:
                    self.clients.append(client)
                await self._player_request(client, method, headers, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            if client in self.clients:
                client.closed_at = time.monotonic()
            writer.transport.abort()

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, headers: dict[str, str], status: str = "200 OK",
               extra: dict[str, str] | None = None, body: bytes = b"") -> None:
        lines = [f"RTSP/1.0 {status}", f"CSeq: {headers.get('cseq', '0')}",
                 "Server: nattillsyn-test-camera"]
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _auth_ok(self, headers: dict[str, str]) -> bool:
        if not self.users:
            return True
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return self.users.get(user) == password

    async def _player_request(self, c: Client, method: str, headers: dict[str, str],
                              writer: asyncio.StreamWriter) -> None:
        if method == "OPTIONS":
            self._reply(writer, headers, extra={
                "Public": "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"})
        elif not self._auth_ok(headers):
            c.refused_auth += 1
            self._reply(writer, headers, "401 Unauthorized",
                        {"WWW-Authenticate": 'Basic realm="camera"'})
        elif method == "DESCRIBE":
            c.authorised = True
            base = f"rtsp://127.0.0.1:{self.port}{PATH}/"
            self._reply(writer, headers, extra={"Content-Base": base,
                                                "Content-Type": "application/sdp"},
                        body=self.sdp.encode())
        elif method == "SETUP":
            c.transport = headers.get("transport", "")
            c.session = str(next(_ids))
            params = dict(p.partition("=")[::2] for p in c.transport.split(";"))
            if "client_port" in params:
                lo, _, hi = params["client_port"].partition("-")
                c.udp_ports = (int(lo), int(hi or int(lo) + 1))
                server_port = self._udp.getsockname()[1]
                transport = (f"RTP/AVP;unicast;client_port={lo}-{hi};"
                             f"server_port={server_port}-{server_port + 1}")
            else:
                lo, _, hi = params.get("interleaved", "0-1").partition("-")
                c.interleaved = (int(lo), int(hi or int(lo) + 1))
                transport = f"RTP/AVP/TCP;unicast;interleaved={lo}-{hi}"
            self._reply(writer, headers, extra={"Transport": transport,
                                                "Session": f"{c.session};timeout=60"})
        elif method == "PLAY":
            self._reply(writer, headers, extra={"Session": c.session, "Range": "npt=0.000-"})
            c.played_at = time.monotonic()
            if self.keyframe_on_play:
                self.request_keyframe()
        elif method == "TEARDOWN":
            c.teardown_at = time.monotonic()
            self._reply(writer, headers, extra={"Session": c.session})
        else:  # GET_PARAMETER keep-alive and anything else
            self._reply(writer, headers, extra={"Session": c.session})
        await writer.drain()


class _Picture:
    """The camera's view: a dim gradient with a slow bright bar, cheap to make per frame."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        x = np.linspace(20, 90, width, dtype=np.float32)
        y = np.linspace(0, 25, height, dtype=np.float32)[:, None]
        self.luma = (x + y).astype(np.uint8)
        self.chroma = np.full((height // 2, width), 128, np.uint8)

    def at(self, n: int) -> np.ndarray:
        luma = self.luma.copy()
        left = (n * 8) % self.width
        luma[:, left:left + 24] = 170
        top = (n * 5) % self.height
        luma[top:top + 16] //= 2
        return np.concatenate([luma, self.chroma])
