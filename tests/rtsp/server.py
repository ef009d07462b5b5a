"""A small real RTSP server on loopback, fed by a real ffmpeg, for the agent's RTSP tests.

Debian's ffmpeg cannot serve RTSP to players by itself, so it publishes to this server
(ANNOUNCE + RECORD, RTP interleaved over TCP, libx264 baseline, a keyframe every 0.5 s)
and the server relays those RTP packets to every client that played the stream, over TCP
(interleaved) or UDP, as an IP camera does. Everything the tests need to see on the
camera's side is recorded per client session: the transport it asked for, whether its
credentials were accepted, PLAY, TEARDOWN and when its connection closed. The tests can
make the camera stall (stop sending, keep the connection), drop every client (reset their
connections) and refuse new connections for a while.

The server runs on its own event loop in a thread, so any test (sync or async) can use it.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

PATH = "/cam"
_ids = itertools.count(1)


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
    """See the module docstring. `users` {name: password} turns Basic auth on for players."""

    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.users = users or {}
        self.port = 0
        self.sdp = ""
        self.clients: list[Client] = []
        self.requests: list[str] = []  # every request line and header block, for leak checks
        self.stalled = False
        self.refuse_until = 0.0
        self.published = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="rtsp-server")
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", 0))
        self._publisher: subprocess.Popen[bytes] | None = None

    # -- life -------------------------------------------------------------------------
    def start(self) -> RtspServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def publish(self, fps: int = 10, gop: int = 5, size: str = "640x480",
                timeout: float = 15.0) -> None:
        """Start ffmpeg publishing a generated H.264 video; return once it is recording."""
        ffmpeg = shutil.which("ffmpeg")
        assert ffmpeg, "ffmpeg is needed"
        self._publisher = subprocess.Popen(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
             "-i", f"testsrc2=size={size}:rate={fps},eq=brightness=-0.25",
             "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
             "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", str(gop),
             "-bf", "0", "-f", "rtsp", "-rtsp_transport", "tcp",
             f"rtsp://127.0.0.1:{self.port}{PATH}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not self.published.wait(timeout):
            self._publisher.kill()
            err = self._publisher.communicate()[1].decode(errors="replace")
            raise RuntimeError(f"ffmpeg did not publish: {err[-2000:]}")

    def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.terminate()
            try:
                self._publisher.wait(5)
            except subprocess.TimeoutExpired:
                self._publisher.kill()
                self._publisher.wait(5)

        async def shut() -> None:
            if self._server is not None:
                self._server.close()
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

    # -- the protocol -----------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self.refuse_until:
            writer.transport.abort()
            return
        host, port = writer.get_extra_info("peername")[:2]
        peer = f"{host}:{port}"
        client = Client(peer=peer, opened_at=time.monotonic(), writer=writer)
        publisher = False
        try:
            while True:
                first = await reader.readexactly(1)
                if first == b"$":  # interleaved data: RTP from the publisher, RTCP from players
                    head = await reader.readexactly(3)
                    data = await reader.readexactly(int.from_bytes(head[1:3], "big"))
                    if publisher:
                        self._relay(head[0], data)
                    continue
                raw = first + await reader.readuntil(b"\r\n\r\n")
                text = raw.decode("utf-8", "replace")
                self.requests.append(text)
                line, *header_lines = text.strip().split("\r\n")
                method, url, _ = line.split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (h.partition(":") for h in header_lines)}
                body = b""
                if int(headers.get("content-length", "0")):
                    body = await reader.readexactly(int(headers["content-length"]))
                if method in ("ANNOUNCE", "RECORD") or publisher:
                    publisher = True
                    await self._publisher_request(method, url, headers, body, writer)
                    continue
                if method != "OPTIONS" and client not in self.clients:
                    self.clients.append(client)  # (the publisher also starts with OPTIONS)
                await self._player_request(client, method, url, headers, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            if not publisher and client in self.clients:
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

    async def _publisher_request(self, method: str, url: str, headers: dict[str, str],
                                 body: bytes, writer: asyncio.StreamWriter) -> None:
        extra: dict[str, str] = {}
        if method == "ANNOUNCE":
            self.sdp = body.decode()
        elif method == "SETUP":
            extra = {"Transport": headers.get("transport", ""), "Session": "publisher"}
        elif method == "RECORD":
            extra = {"Session": "publisher"}
            self.published.set()
        elif method == "OPTIONS":
            extra = {"Public": "OPTIONS, ANNOUNCE, SETUP, RECORD, TEARDOWN"}
        self._reply(writer, headers, extra=extra)
        await writer.drain()

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

    async def _player_request(self, c: Client, method: str, url: str,
                              headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
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
        elif method == "TEARDOWN":
            c.teardown_at = time.monotonic()
            self._reply(writer, headers, extra={"Session": c.session})
        else:  # GET_PARAMETER keep-alive and anything else
            self._reply(writer, headers, extra={"Session": c.session})
        await writer.drain()

    def _relay(self, channel: int, data: bytes) -> None:
        if self.stalled:
            return
        for c in self.clients:
            if not c.playing or c.writer is None:
                continue
            if c.udp_ports is not None:
                port = c.udp_ports[0] if channel % 2 == 0 else c.udp_ports[1]
                self._udp.sendto(data, ("127.0.0.1", port))
            else:
                ch = c.interleaved[channel % 2]
                c.writer.write(b"$" + bytes([ch]) + len(data).to_bytes(2, "big") + data)
            if channel % 2 == 0:
                c.packets_sent += 1
