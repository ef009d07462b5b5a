"""The agent's outbound link to the service: authenticate, reconnect forever, never lose a report.

The device dials out (no open port in the home). Over wss the service proves itself with
a certificate checked against the pinned CA (``ca_file``) only; the agent proves its
identity by signing the service's challenge. Everything the service sends that could
switch the camera on is verified independently by the gate, so the link is trusted with
nothing but delivery. Messages are bounded (MAX_MESSAGE_BYTES: a bigger one closes the
link) and a garbled one is logged and dropped. A service of several nodes is dialled at
``server_url`` (its proxy) or at each address in turn (``servers``): after a failed dial or
a dropped link the next address is tried, so a node that dies leaves its cameras with the
others.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import math
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.frames import CloseCode

from camera_agent.backoff import backoff
from camera_agent.config import AgentConfig
from camera_agent.identity import Identity
from camera_agent.protocol import (
    AUTH,
    CHALLENGE,
    CLOSE_AUTH_FAILED,
    CLOSE_REVOKED,
    HEARTBEAT_ACK,
    MAX_MESSAGE_BYTES,
    SERVICE_TYPES,
    WELCOME,
    Refusal,
    decode_message,
    encode_message,
    link_challenge_message,
    require_str,
)

log = logging.getLogger("camera_agent.link")

Handler = Callable[[dict[str, Any]], Awaitable[None]]

#: Reports (refusals, look-in ends) kept while offline; the oldest are dropped past this.
OUTBOX_LIMIT = 500
#: A link that stayed up this long resets the backoff; a flapping one keeps backing off.
STABLE_SECONDS = 10.0
#: The first reconnect waits up to this long; each failure in a row doubles it, up to the cap.
BACKOFF_BASE_SECONDS = 0.5
#: A time exchange whose round trip took longer than this says little about the clock.
CLOCK_ROUND_TRIP_SECONDS = 5.0


class State(enum.Enum):
    """Where the link is. Only Link._set_state assigns it."""

    OFFLINE = "offline"      # not linked: dialling, authenticating or waiting to dial again
    CONNECTED = "connected"  # authenticated: send() goes out at once
    REFUSED = "refused"      # the service refused this camera: the next dial waits the full cap


class Link:
    def __init__(self, config: AgentConfig, identity: Identity, handler: Handler,
                 version: str = "0") -> None:
        self.config = config
        self.identity = identity
        self._handler = handler
        self._version = version
        self._state = State.OFFLINE
        self._ws: ClientConnection | None = None  # the authenticated connection, if any
        self._outbox: collections.deque[str] = collections.deque(maxlen=OUTBOX_LIMIT)
        self.on_connect: Callable[[], None] | None = None
        #: called when the service refuses this camera (argument: revoked, not just unknown)
        self.on_refused: Callable[[bool], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: the service's clock minus this device's, seconds, from the latest exchange (the
        #: welcome, then each heartbeat's answer); None before the first
        self.clock_offset: float | None = None

    def _set_state(self, state: State) -> None:
        if state is not self._state:
            log.debug("link %s -> %s", self._state.value, state.value)
            self._state = state

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send(self, msg_type: str, *, durable: bool = True, **fields: Any) -> None:
        """Send now if linked; durable messages wait in the outbox while offline."""
        text = encode_message(msg_type, **fields)
        if self._state is State.CONNECTED:
            self._spawn(self._send_now(text, durable))
        elif durable:
            self._outbox.append(text)

    async def _send_now(self, text: str, durable: bool) -> None:
        ws = self._ws
        try:
            if ws is None:
                raise ConnectionError
            await ws.send(text)
        except (ConnectionClosed, ConnectionError):
            if durable:
                self._outbox.append(text)

    def _ssl(self, url: str) -> ssl.SSLContext | None:
        if not url.startswith("wss://"):
            return None
        return ssl.create_default_context(cafile=self.config.ca_file)

    async def run(self) -> None:
        """Dial, authenticate, serve; on any failure wait (backoff with jitter) and dial again.

        Nothing short of cancelling this task ends the loop: a restarted service, a cut
        network, a refused authentication or a bug in one message's handling all lead back
        to a dial.
        """
        failures = 0  # in a row; a link that stayed up STABLE_SECONDS starts again at 0
        urls = self.config.link_urls
        turn = 0  # which address the next dial tries: after a failure, the next one
        while True:
            self._set_state(State.OFFLINE)
            up_since: float | None = None
            url = urls[turn % len(urls)]
            try:
                async with connect(url, max_size=MAX_MESSAGE_BYTES,
                                   ssl=self._ssl(url), open_timeout=10,
                                   ping_interval=max(5.0, self.config.heartbeat_seconds),
                                   ping_timeout=max(10.0, 2 * self.config.heartbeat_seconds),
                                   close_timeout=2) as ws:
                    await self._authenticate(ws)
                    up_since = time.monotonic()
                    log.info("link up to %s", url)
                    while self._outbox:  # what happened while offline, in order
                        await ws.send(self._outbox[0])
                        self._outbox.popleft()
                    self._ws = ws
                    self._set_state(State.CONNECTED)
                    if self.on_connect is not None:
                        self.on_connect()
                    async for raw in ws:
                        try:
                            msg = decode_message(raw, SERVICE_TYPES)
                        except Refusal as exc:
                            log.warning("garbled message from service ignored: %s", exc)
                            continue
                        if msg["type"] == HEARTBEAT_ACK:  # the link's own business
                            self._clock(msg.get("server_time"), msg.get("sent_at"),
                                        time.time())
                            continue
                        self._spawn(self._handle(msg))
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
                if code in (CLOSE_AUTH_FAILED, CLOSE_REVOKED):
                    self._set_state(State.REFUSED)
                    log.error("service refused this camera (%s): %s", code,
                              (exc.rcvd.reason if exc.rcvd else "") or "refused")
                    if self.on_refused is not None:
                        self.on_refused(code == CLOSE_REVOKED)
                elif exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                    log.warning("link closed: the service sent a message over %d bytes",
                                MAX_MESSAGE_BYTES)
                else:
                    log.info("link closed: %s", exc)
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, Refusal) as exc:
                log.info("link down: %s", exc)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the link for good
                log.exception("link failed")
            finally:
                self._ws = None
                if self._state is State.CONNECTED:
                    self._set_state(State.OFFLINE)
            if up_since is not None and time.monotonic() - up_since >= STABLE_SECONDS:
                failures = 0
            failures += 1
            turn += 1  # a node that went away: the next address (one address: the same)
            # a refused camera waits the full cap: retrying faster cannot help
            delay = (self.config.backoff_cap_seconds if self._state is State.REFUSED
                     else backoff(failures, BACKOFF_BASE_SECONDS,
                                  self.config.backoff_cap_seconds))
            log.debug("next dial in %.1f s", delay)
            await asyncio.sleep(delay)

    async def _handle(self, msg: dict[str, Any]) -> None:
        try:
            await self._handler(msg)
        except Exception:
            log.exception("handling %s failed", msg.get("type"))

    async def _authenticate(self, ws: ClientConnection) -> None:
        challenge = decode_message(await asyncio.wait_for(ws.recv(), 10), SERVICE_TYPES)
        if challenge["type"] != CHALLENGE:
            raise Refusal("garbled", "expected a challenge")
        nonce = require_str(challenge, "nonce", 128)
        signature = self.identity.sign(link_challenge_message(self.config.camera_id, nonce))
        sent = time.time()
        await ws.send(encode_message(AUTH, camera=self.config.camera_id, signature=signature,
                                     version=self._version))
        welcome = decode_message(await asyncio.wait_for(ws.recv(), 10), SERVICE_TYPES)
        if welcome["type"] != WELCOME:
            raise Refusal("garbled", "expected welcome")
        self._clock(welcome.get("server_time"), sent, time.time())

    def _clock(self, server_time: object, sent: object, received: float) -> None:
        """The offset from one exchange, as NTP does it: the service read its clock about
        halfway between our sending and our receiving (error at most half the round trip)."""
        if not (isinstance(server_time, float) and isinstance(sent, float)
                and math.isfinite(server_time) and math.isfinite(sent)):
            return  # a service that does not tell the time, or a garbled answer
        if not 0 <= received - sent <= CLOCK_ROUND_TRIP_SECONDS:
            return
        self.clock_offset = server_time - (sent + received) / 2
