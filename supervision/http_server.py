"""The HTTP server's connection bounds, which no ASGI code can set: it runs only once a
request's head is complete.

uvicorn closes a kept-alive connection that stays idle after an answer
(``timeout_keep_alive``), but has no timer before the first request, nor while a request
line and headers arrive, nor any bound on their size (its httptools parser has none; the
h11 one has ``h11_max_incomplete_event_size`` but is slower). A client that opens a
connection and says nothing, or sends half a header and stalls, or sends a header a byte a
second, would hold the connection for ever; so would one that asks for an answer and
never reads it (the answer waits in the send buffer). ``guarded_protocol`` returns
uvicorn's httptools protocol with those bounds added; ``cli._serve`` hands it to uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: 16\r\nconnection: close\r\n\r\nRequest Timeout\n")
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
              b"content-type: text/plain; charset=utf-8\r\ncontent-length: 32\r\n"
              b"connection: close\r\n\r\nRequest Header Fields Too Large\n")


class _HeadTooLarge(Exception):
    """Raised in a parser callback; the parser turns it into an error for the protocol."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """A request's head (request line and headers) must arrive within ``header_timeout``
    seconds, counted from the connection's opening for its first request and from the
    first byte after an answer for the next, and be at most ``max_header_bytes``. Past the
    time the connection is closed (with 408 if part of a head came); past the size, 431.
    Idle time between requests stays uvicorn's keep-alive timeout. An answer the client
    does not read for ``send_timeout`` seconds (the send buffer stays full) aborts the
    connection: a plain close would wait for that buffer to drain, which it never does."""

    header_timeout: float = 10.0
    max_header_bytes: int = 32 * 1024
    send_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._awaiting_head = True  # between answers: the next bytes start a head
        self._head_bytes = 0
        self._partial_head = False  # some of a head came, then nothing
        self._head_too_large = False
        self._send_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never says anything is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._stop_send_timer()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.send_timeout, self.transport.abort)

    def resume_writing(self) -> None:
        self._stop_send_timer()
        super().resume_writing()

    def _stop_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def data_received(self, data: bytes) -> None:
        # uvicorn drops its keep-alive timer on any byte; from here the head timer runs
        if self._awaiting_head:
            self._partial_head = True
            if self._head_timer is None:
                self._arm()
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head = self._partial_head = False
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        if not self.pipeline:  # a pipelined request already has its head
            self._awaiting_head = True
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        self.transport.write(_TOO_LARGE)
        self.transport.close()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_header_bytes:
            self._head_too_large = True
            raise _HeadTooLarge

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._awaiting_head or self.transport.is_closing():
            return
        if self._partial_head:
            self.transport.write(_TIMEOUT)
        self.transport.close()


def guarded_protocol(header_timeout: float, max_header_bytes: int,
                     send_timeout: float) -> type[asyncio.Protocol]:
    """The protocol class for ``uvicorn.run(http=...)`` with these bounds."""
    bounded: type[asyncio.Protocol] = type(
        "GuardedHttpProtocol", (GuardedHttpToolsProtocol,),
        {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes,
         "send_timeout": send_timeout})
    return bounded


class DrainingServer(uvicorn.Server):
    """uvicorn's server that, asked to stop (SIGTERM, Ctrl-C), first runs ``before_close``
    while every connection is still open (supervision/drain.py ends the look-ins on this
    node's camera links), then shuts down as uvicorn does."""

    def __init__(self, config: uvicorn.Config,
                 before_close: Callable[[], Awaitable[object]]) -> None:
        super().__init__(config)
        self._before_close = before_close

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await self._before_close()
        except Exception:  # stopping must not fail on it
            logging.getLogger("supervision").exception("draining before shutdown failed")
        await super().shutdown(sockets)
