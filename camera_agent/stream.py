"""One look-in on the device: an aiortc peer fed by the camera, with a hard stop.

The stop at ticket expiry is a timer on the agent's own event loop, so it fires whether
or not the link to the service is up. Stopping closes the peer and releases the camera.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from camera_agent.capture import Capture, CaptureError
from camera_agent.config import AgentConfig
from camera_agent.protocol import Ticket
from camera_agent.track import CaptureTrack

log = logging.getLogger("camera_agent.stream")

Emit = Callable[[str, dict[str, Any]], None]


class LookIn:
    def __init__(self, ticket: Ticket, config: AgentConfig, emit: Emit,
                 clock: Callable[[], float] = time.time) -> None:
        self.ticket = ticket
        self.config = config
        self._emit = emit
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self.done = asyncio.Event()
        self.end_reason: str | None = None
        self.started = clock()
        self._pc = RTCPeerConnection()
        self._capture = Capture(
            config.source, width=config.width, height=config.height, fps=config.fps,
            enhance=config.enhance, masks=config.masks,
            on_open=self._threadsafe(self._camera_opened),
            on_close=self._threadsafe(self._camera_released),
        )
        self._opening: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stopping: asyncio.Task[None] | None = None
        self.camera_open = False

    def _threadsafe(self, fn: Callable[[], None]) -> Callable[[], None]:
        def call() -> None:
            self._loop.call_soon_threadsafe(fn)
        return call

    def _camera_opened(self) -> None:
        self.camera_open = True
        self._emit("camera", {"state": "opened", "session": self.ticket.session})

    def _camera_released(self) -> None:
        self.camera_open = False
        self._emit("camera", {"state": "released", "session": self.ticket.session})

    async def answer(self, offer_sdp: str) -> str:
        """Open the camera in parallel with the SDP exchange; return the answer SDP."""
        remaining = self.ticket.not_after - self._clock()
        self._timer = self._loop.call_later(max(0.0, remaining), self.stop_soon, "expired")

        @self._pc.on("connectionstatechange")
        async def _state() -> None:
            if self._pc.connectionState in ("failed", "closed"):
                self.stop_soon("peer-" + self._pc.connectionState)

        # A malformed offer fails here, before the camera is touched; the camera then opens
        # while the answer is made and travels, so opening costs the viewer little time.
        await self._pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        self._opening = asyncio.create_task(self._open_capture())
        track = _OpeningTrack(self._capture, self._opening, self._on_track_error)
        self._pc.addTrack(track)
        self._prefer_codec()
        answer = await self._pc.createAnswer()
        await self._pc.setLocalDescription(answer)
        return self._pc.localDescription.sdp

    def _prefer_codec(self) -> None:
        wanted = "video/" + ("H264" if self.config.codec.lower() == "h264" else "VP8")
        caps = RTCRtpSender.getCapabilities("video").codecs
        preferred = [c for c in caps if c.mimeType == wanted]
        for transceiver in self._pc.getTransceivers():
            if transceiver.kind == "video" and preferred:
                transceiver.setCodecPreferences(preferred)

    async def _open_capture(self) -> None:
        await self._capture.open()

    def _on_track_error(self, error: CaptureError) -> None:
        self.stop_soon(f"technical-failure:{error.reason}")

    def stop_soon(self, reason: str) -> None:
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self.stop(reason))

    async def stop(self, reason: str) -> None:
        if self.end_reason is not None:
            await self.done.wait()
            return
        self.end_reason = reason
        if self._timer is not None:
            self._timer.cancel()
        try:
            await asyncio.wait_for(self._pc.close(), 2.0)
        except (TimeoutError, Exception):  # a peer that will not close must not keep the camera
            log.exception("peer close failed")
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
            try:
                await self._opening
            except (asyncio.CancelledError, CaptureError):
                pass
        await self._capture.close()
        self.done.set()
        self._emit("lookin_ended", {
            "session": self.ticket.session,
            "reason": reason,
            "seconds": round(self._clock() - self.started, 2),
        })


class _OpeningTrack(CaptureTrack):
    """A capture track that waits for the camera to open before its first frame."""

    def __init__(self, capture: Capture, opening: asyncio.Task[None],
                 on_error: Callable[[CaptureError], None]) -> None:
        super().__init__(capture)
        self._opening_task = opening
        self._on_error = on_error

    async def recv(self) -> av.VideoFrame:
        try:
            await self._opening_task
        except CaptureError as exc:
            self.error = exc
            self._on_error(exc)
            self.stop()
            raise MediaStreamError(str(exc)) from exc
        try:
            return await super().recv()
        except MediaStreamError:
            if self.error is not None:
                self._on_error(self.error)
            raise
