"""One look-in on the device: an aiortc peer fed by the camera, with a hard stop.

The stop at the admission's stop instant (the earliest of ticket expiry, the plan's
max_lookin_seconds and the end of the plan's window, see ``gate``) is a timer on the
agent's own event loop, so it fires whether or not the link to the service is up.
Stopping releases the camera first and closes the peer after, so the camera never waits
on the network. The offer is parsed before the camera opens: a malformed offer never
switches it on. The only consumer of frames is this peer's track.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription

from camera_agent import ice_checks
from camera_agent.capture import Capture, CaptureError
from camera_agent.config import AgentConfig
from camera_agent.gate import Admission
from camera_agent.track import CaptureTrack
from camera_agent.video_path import ENCODE, PASSTHROUGH, VideoPath, planned
from schedules.reason import Reason

ice_checks.install()  # RFC 8445 7.3.1.4: a relayed look-in need not wait 500 ms

log = logging.getLogger("camera_agent.stream")

Emit = Callable[[str, dict[str, Any]], None]

#: Longest the peer may take to close after the camera has been released.
PEER_CLOSE_SECONDS = 2.0


class State(enum.Enum):
    """Where a look-in is. Only LookIn._set_state assigns it."""

    RUNNING = "running"    # admitted: answering the offer, then streaming
    STOPPING = "stopping"  # stop() began: releasing the camera, then closing the peer
    ENDED = "ended"        # camera released, peer closed, end reported


class LookInEnded(Exception):
    """The look-in was stopped (e.g. expired) before its answer was ready."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(str(reason))
        self.reason = reason


def ice_configuration(servers: list[dict[str, Any]], policy: str = "all") -> RTCConfiguration:
    """Only the servers configured or sent with the look-in; never aiortc's default
    public STUN server (no look-in metadata to third parties unless the operator says so).
    ``policy`` "relay" (the service's ``ice_transport_policy``): relayed candidates only."""
    return RTCConfiguration(iceServers=[
        RTCIceServer(urls=s["urls"], username=s.get("username"),
                     credential=s.get("credential"))
        for s in servers if isinstance(s, dict) and s.get("urls")],
        iceTransportPolicy=RTCIceTransportPolicy(policy))


class LookIn:
    def __init__(self, admission: Admission, config: AgentConfig, emit: Emit, *,
                 ice_servers: list[dict[str, Any]] | None = None,
                 ice_transport_policy: str = "all",
                 on_done: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.admission = admission
        self.ticket = admission.ticket
        self.config = config
        self._emit = emit
        self._on_done = on_done
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._state = State.RUNNING
        self._ended = asyncio.Event()  # set with State.ENDED; later stop() calls wait for it
        self.end_reason: Reason | None = None  # why it stopped: set with State.STOPPING
        self.started = clock()
        servers = list(config.ice_servers) + list(ice_servers or [])
        self._pc = RTCPeerConnection(ice_configuration(servers, ice_transport_policy))
        #: the picture's way through the device; settled once the camera opened
        self.video_path: VideoPath = planned(config)
        self._capture = Capture(
            config.source, width=config.width, height=config.height, fps=config.fps,
            enhance=config.enhance, masks=config.masks,
            open_deadline_s=config.open_deadline_seconds,
            rtsp_transport=config.rtsp_transport,
            keyframe_command=config.keyframe_command,
            keyframe_timeout_s=config.keyframe_timeout_seconds,
            passthrough=self.video_path.path == PASSTHROUGH,
            on_open=self._on_loop(self._camera_opened),
            on_close=self._on_loop(self._camera_released),
        )
        self._opening: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stopping: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        """True until the look-in has ended: a stopping one may still hold the camera."""
        return self._state is not State.ENDED

    def _set_state(self, state: State) -> None:
        if state is not self._state:
            log.debug("look-in %s %s -> %s", self.ticket.session, self._state.value,
                      state.value)
            self._state = state
            if state is State.ENDED:
                self._ended.set()

    def _on_loop(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Run at once on the loop's thread (keeps message order); hop over from any other."""
        def call() -> None:
            if threading.get_ident() == self._loop_thread:
                fn()
            else:
                self._loop.call_soon_threadsafe(fn)
        return call

    def _camera_opened(self) -> None:
        self._emit("camera", {"state": "opened", "session": self.ticket.session,
                              "at": round(time.time(), 3)})

    def _camera_released(self) -> None:
        self._emit("camera", {"state": "released", "session": self.ticket.session,
                              "at": round(time.time(), 3)})

    async def answer(self, offer_sdp: str) -> str:
        """Parse the offer, then open the camera in parallel with making the answer SDP."""
        remaining = self.admission.stop_at - self._clock()
        self._timer = self._loop.call_later(max(0.0, remaining), self.stop_soon,
                                           self.admission.stop_reason)
        # The sending transceiver exists before the offer is applied, so the codec
        # preference (configured codec first, the other as fallback) shapes the answer.
        if self.video_path.path == PASSTHROUGH and not _offers_h264(offer_sdp):
            self.video_path = VideoPath(ENCODE, "viewer-no-h264")
            self._capture.passthrough_wanted = False
        transceiver = self._pc.addTransceiver("video", direction="sendonly")
        transceiver.setCodecPreferences(self._codec_preferences())
        await self._pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        if transceiver.mid is None or any(
                t is not transceiver and t.kind == "video" for t in self._pc.getTransceivers()):
            raise ValueError("the offer must have exactly one video section")
        self._raise_if_stopped()

        @self._pc.on("connectionstatechange")
        async def _peer_state_changed() -> None:
            if self._pc.connectionState in ("failed", "closed"):
                self.stop_soon(Reason("peer-" + self._pc.connectionState))

        self._opening = asyncio.create_task(self._capture.open())
        self._opening.add_done_callback(self._open_finished)
        track = _OpeningTrack(self._capture, self._opening, self._on_track_error)
        transceiver.sender.replaceTrack(track)
        answer = await self._pc.createAnswer()
        await self._pc.setLocalDescription(answer)
        self._raise_if_stopped()
        return str(self._pc.localDescription.sdp)

    def _raise_if_stopped(self) -> None:
        """answer() gives up once the look-in was stopped meanwhile (e.g. it expired)."""
        if self._state is not State.RUNNING:
            raise LookInEnded(self.end_reason or Reason("ended"))

    def _open_finished(self, task: asyncio.Task[None]) -> None:
        """A source that fails to open or gives no first frame in time ends the look-in now,
        not when the viewer's peer first asks for a frame."""
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            if self.video_path.path == PASSTHROUGH and not self._capture.passthrough:
                self.video_path = VideoPath(ENCODE, "camera-not-h264")
            log.info("look-in %s: video path %s (%s)", self.ticket.session,
                     self.video_path.path, self.video_path.reason)
            return
        reason = error.reason if isinstance(error, CaptureError) else "open-failed"
        log.warning("camera failed for look-in %s: %s", self.ticket.session, error)
        self.stop_soon(Reason("technical-failure", reason))

    def _codec_preferences(self) -> list[RTCRtpCodecCapability]:
        """The configured codec first, the other as fallback; for passthrough H.264 only,
        since the camera's frames can go out in no other codec."""
        if self._capture.passthrough_wanted:
            order = ["video/H264"]
        elif self.config.codec == "h264":
            order = ["video/H264", "video/VP8"]
        else:
            order = ["video/VP8", "video/H264"]
        caps = RTCRtpSender.getCapabilities("video").codecs
        return ([c for mime in order for c in caps if c.mimeType == mime]
                + [c for c in caps if c.mimeType == "video/rtx"])

    def _on_track_error(self, error: CaptureError) -> None:
        self.stop_soon(Reason("technical-failure", error.reason))

    def stop_soon(self, reason: Reason) -> None:
        if self._stopping is None and self._state is State.RUNNING:
            self._stopping = asyncio.ensure_future(self.stop(reason))

    async def stop(self, reason: Reason) -> None:
        """Release the camera, then close the peer; idempotent (later callers just wait).

        The end is reported as ``reason`` (a code: expired, ended, technical-failure, ...)
        and ``detail`` (e.g. open-failed after technical-failure; "" for a plain end).
        """
        if self._state is not State.RUNNING:
            await self._ended.wait()
            return
        self.end_reason = reason
        self._set_state(State.STOPPING)
        if self._timer is not None:
            self._timer.cancel()
        try:
            if self._opening is not None and not self._opening.done():
                self._opening.cancel()
                with contextlib.suppress(asyncio.CancelledError, CaptureError):
                    await self._opening
            await self._capture.close()
        except Exception:
            log.exception("releasing the camera failed")
        try:
            await asyncio.wait_for(self._pc.close(), PEER_CLOSE_SECONDS)
        except Exception:  # a peer that will not close is dropped; the camera is already off
            log.warning("peer close failed or timed out", exc_info=True)
        self._set_state(State.ENDED)
        if self._on_done is not None:
            self._on_done()
        log.info("look-in %s ended: %s", self.ticket.session, reason)
        self._emit("lookin_ended", {
            "session": self.ticket.session,
            "reason": reason.code,
            "detail": reason.detail,
            "seconds": round(self._clock() - self.started, 2),
        })


def _offers_h264(offer_sdp: str) -> bool:
    """Whether the viewer can receive H.264 (a malformed offer fails later, as before)."""
    try:
        description = SessionDescription.parse(offer_sdp)
    except Exception:
        return False
    return any(codec.mimeType.lower() == "video/h264" for media in description.media
               if media.kind == "video" for codec in media.rtp.codecs)


class _OpeningTrack(CaptureTrack):
    """A capture track that waits for the camera to open before its first frame."""

    def __init__(self, capture: Capture, opening: asyncio.Task[None],
                 on_error: Callable[[CaptureError], None]) -> None:
        super().__init__(capture)
        self._opening_task = opening
        self._on_error = on_error

    async def recv(self) -> av.VideoFrame | av.Packet[Any]:
        try:
            await asyncio.shield(self._opening_task)
        except CaptureError as exc:
            self.error = exc
            self._on_error(exc)
            self.stop()
            raise MediaStreamError(str(exc)) from exc
        except asyncio.CancelledError:
            if self._opening_task.cancelled():  # the look-in stopped while opening
                self.stop()
                raise MediaStreamError("look-in stopped") from None
            raise
        try:
            return await super().recv()
        except MediaStreamError:
            if self.error is not None:
                self._on_error(self.error)
            raise
