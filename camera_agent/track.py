"""The WebRTC video track of a look-in, fed by a Capture.

aiortc's VideoStreamTrack.next_timestamp() paces at a fixed 30 fps (VIDEO_PTIME = 1/30).
This track paces at the capture's fps instead: frame n is due at start + n / fps, and its
pts is the elapsed time on the 90 kHz video clock. When the capture fails the track ends:
it stops, keeps the error in `error` and raises MediaStreamError, which makes aiortc's
sender stop sending.

When the capture hands on the camera's H.264 (passthrough), the track returns each
encoded frame as an av.Packet as soon as it arrives, timed by its arrival; aiortc's sender
packetises it without encoding (H264Encoder.pack). The negotiated codec must then be
H.264, which the look-in ensures before it asks for passthrough.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from typing import Any

import av
from aiortc.mediastreams import (
    VIDEO_CLOCK_RATE,
    VIDEO_TIME_BASE,
    MediaStreamError,
    MediaStreamTrack,
)

from camera_agent.capture import Capture, CaptureError


class CaptureTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, capture: Capture) -> None:
        super().__init__()
        self.capture = capture
        self.error: CaptureError | None = None
        self._t0: float | None = None
        self._index = 0
        self._last_pts = -1

    async def next_timestamp(self) -> tuple[int, fractions.Fraction]:
        """Sleep until the next frame instant at the capture's fps; pts from elapsed time."""
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
            self._index = 0
        else:
            period = 1.0 / self.capture.fps
            self._index += 1
            due = self._t0 + self._index * period
            if due > now:
                await asyncio.sleep(due - now)
                now = time.monotonic()
            elif now - due > period:
                # fell behind (slow consumer or source): skip the missed slots, no bursts
                self._index = math.floor((now - self._t0) / period)
        pts = max(int((now - self._t0) * VIDEO_CLOCK_RATE), self._last_pts + 1)
        self._last_pts = pts
        return pts, VIDEO_TIME_BASE

    async def recv(self) -> av.VideoFrame | av.Packet[Any]:
        if self.capture.passthrough:
            return await self._recv_packet()
        pts, time_base = await self.next_timestamp()
        try:
            image = await self.capture.read()
        except CaptureError as exc:
            self.error = exc
            self.stop()
            raise MediaStreamError(str(exc)) from exc
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = pts
        frame.time_base = time_base
        return frame

    async def _recv_packet(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            data = await self.capture.read_packet()
        except CaptureError as exc:
            self.error = exc
            self.stop()
            raise MediaStreamError(str(exc)) from exc
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        pts = max(int((now - self._t0) * VIDEO_CLOCK_RATE), self._last_pts + 1)
        self._last_pts = pts
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = VIDEO_TIME_BASE
        return packet
