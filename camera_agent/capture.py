"""Camera capture for a look-in: opened only on open(), fully released on close().

Sources: a V4L2 device ("0", "/dev/video0"), an RTSP camera ("rtsp://..."), a video file
(looped; for tests and demos) or the synthetic scene ("synthetic", "synthetic:<seed>").
Devices and files are read with OpenCV; RTSP cameras with PyAV (`camera_agent.rtsp`),
which sets the transport, ends the RTSP session (TEARDOWN) on release, reconnects a camera
that drops and comes back within STALL_SECONDS, and can hand on the camera's H.264 as it
came (passthrough: no decoding, no encoding) when nothing has to be done to the picture.
An RTSP camera's first frame is its next keyframe: with a `keyframe_command` the capture
asks the camera for one as it connects (and again on a connection whose first frame is
not one), never otherwise.

One dedicated reader thread per open capture does all the work with the source: it
opens it, grabs continuously (so a device's buffers never go stale), decodes and
processes at most `fps` frames per second, publishes only the latest one, and releases
the source when it stops. The VideoCapture object never leaves that thread. Masks are
applied to each raw frame before anything else sees it. No frame is stored or sent
anywhere: the latest processed frame is handed to read() and otherwise dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import av.error
import cv2
import numpy as np

from camera_agent import rtsp
from camera_agent.processing import apply_masks, enhance_low_light, fit, normalise_masks
from camera_agent.synthetic import SyntheticScene

log = logging.getLogger("camera_agent.capture")

STALL_SECONDS = 2.0          # no frame for longer than this -> "read-failed"
_MAX_QUEUED_PACKETS = 50     # passthrough: more waiting than this -> drop to the next keyframe
_RETRY_PAUSE = 0.02          # back-off between failed grabs, so a dead source cannot spin
_OPEN_GRACE = 0.5            # after a failed open: time given to the reader to release
_CLOSE_WAIT = 15.0           # longest close() waits for the reader (V4L2 select is <= 10 s)
THREAD_PREFIX = "capture-reader"
_thread_ids = itertools.count(1)


class CaptureError(Exception):
    """The camera could not be opened or stopped delivering. `reason` is a short code:
    "open-failed", "no-frames" or "read-failed"; for RTSP also "camera-unreachable" and
    "camera-credentials". `detail` is words for the installer, never the source's URL."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def describe_source(source: str) -> str:
    """Classify a source: "synthetic" | "device" | "rtsp" | "file"."""
    s = source.strip()
    if s == "synthetic" or s.startswith("synthetic:"):
        return "synthetic"
    if s.isdigit() or s.startswith(("/dev/video", "/dev/v4l/")):
        return "device"
    if s.lower().startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    return "file"


def _call_quietly(fn: Callable[[], None] | None, what: str) -> None:
    if fn is None:
        return
    try:
        fn()
    except Exception:
        log.exception("capture %s callback failed", what)


class State(enum.Enum):
    """Where one open() session is. Only _Session._set_state assigns it."""

    OPENING = "opening"  # the reader thread is opening the source
    WAITING = "waiting"  # the backend accepted the source; its first frame is awaited
    OPEN = "open"        # the first frame came and on_open was called: read() hands out frames
    CLOSED = "closed"    # the reader released the source; on_close was called if it was OPEN


class _Session:
    """What the event loop and the reader thread of one open() share.

    The reader thread moves the state to WAITING before it publishes a first frame; the
    loop moves it to OPEN (after that frame) and to CLOSED (after the release).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self.loop = loop
        self.name = name
        self.state = State.OPENING
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.opened: asyncio.Future[None] = loop.create_future()   # first frame or error
        self.released: asyncio.Future[None] = loop.create_future() # reader ended, source freed
        self.new_frame = asyncio.Event()
        self.frame: np.ndarray | None = None
        self.packets: collections.deque[bytes] = collections.deque()  # passthrough only
        self.passthrough = False  # set by the reader before its first publish
        self.seq = 0
        self.returned_seq = 0
        self.error: CaptureError | None = None
        self.thread: threading.Thread | None = None
        self.keyframe_asks: set[asyncio.Task[bool]] = set()  # running keyframe requests

    def _set_state(self, state: State) -> None:
        with self.lock:
            previous, self.state = self.state, state
        if state is not previous:
            log.debug("%s %s -> %s", self.name, previous.value, state.value)

    # -- called from the reader thread -------------------------------------------------
    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):   # loop already closed: nobody is waiting
            self.loop.call_soon_threadsafe(fn, *args)

    def publish(self, frame: np.ndarray) -> None:
        with self.lock:
            self.frame = frame
            self.seq += 1
            first = self.seq == 1
        self.post(self.new_frame.set)
        if first:
            self.post(_resolve, self.opened, None)

    def publish_packet(self, data: bytes) -> bool:
        """Queue an encoded frame (passthrough). False if the queue overflowed and was
        emptied: the reader then waits for the next keyframe."""
        with self.lock:
            overflow = len(self.packets) >= _MAX_QUEUED_PACKETS
            if overflow:
                self.packets.clear()
            else:
                self.packets.append(data)
                self.seq += 1
            first = self.seq == 1 and not overflow
        self.post(self.new_frame.set)
        if first:
            self.post(_resolve, self.opened, None)
        return not overflow

    def fail(self, error: CaptureError) -> None:
        with self.lock:
            if self.error is None:
                self.error = error
            self.frame = None
        self.post(self.new_frame.set)
        self.post(_resolve, self.opened, error)


def _resolve(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)
        fut.exception()  # mark retrieved: a failure nobody awaits is not an "unhandled" one


class Capture:
    """One camera session: see the module docstring. Not reusable concurrently; open()
    again after close() starts a fresh session."""

    def __init__(self, source: str, *, width: int = 640, height: int = 480, fps: float = 10.0,
                 enhance: bool = True, masks: Sequence[Sequence[tuple[float, float]]] = (),
                 open_deadline_s: float = 5.0, rtsp_transport: str = "tcp",
                 passthrough: bool = False,
                 keyframe_command: str | None = None, keyframe_timeout_s: float = 5.0,
                 on_open: Callable[[], None] | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        if width <= 0 or height <= 0:
            raise ValueError("width and height must be positive")
        if not fps > 0:
            raise ValueError("fps must be positive")
        if not open_deadline_s > 0:
            raise ValueError("open_deadline_s must be positive")
        self.source = source.strip()
        self.kind = describe_source(self.source)
        self.width = int(width)
        self.height = int(height)
        self.fps = float(fps)
        self.enhance = enhance
        self.masks = normalise_masks(masks)
        self.open_deadline_s = float(open_deadline_s)
        if rtsp_transport not in rtsp.TRANSPORTS:
            raise ValueError(f"rtsp_transport must be one of {rtsp.TRANSPORTS}")
        self.rtsp_transport = rtsp_transport
        # Passthrough is only ever asked for an RTSP camera whose picture needs nothing done
        # to it: a mask or enhancement always means decoding here, whatever the caller says.
        self.passthrough_wanted = (passthrough and self.kind == "rtsp" and not self.masks
                                   and not enhance)
        #: run (no shell) to ask an RTSP camera for a keyframe: see rtsp.request_keyframe
        self.keyframe_command = keyframe_command if self.kind == "rtsp" else None
        self.keyframe_timeout_s = float(keyframe_timeout_s)
        #: after open(): the camera's codec ("h264", ...; "" when not RTSP)
        self.camera_codec = ""
        self._on_open = on_open
        self._on_close = on_close
        self._session: _Session | None = None

    # ------------------------------------------------------------------ public API
    @property
    def passthrough(self) -> bool:
        """True when this session hands on the camera's H.264 (read_packet), False when it
        decodes (read). Known once open() returned."""
        s = self._session
        return s is not None and s.passthrough

    @property
    def is_open(self) -> bool:
        """True while a successfully opened source is held (until close() or a failure)."""
        s = self._session
        return s is not None and s.state is State.OPEN and s.error is None

    async def open(self) -> None:
        """Open the source in the reader thread and wait for its first frame."""
        if self._session is not None:
            if self.is_open:
                return
            await self.close()  # left over from a failed or cancelled attempt
        s = _Session(asyncio.get_running_loop(), f"{THREAD_PREFIX}-{next(_thread_ids)}")
        self._session = s
        thread = threading.Thread(target=self._run, args=(s,), daemon=True, name=s.name)
        s.thread = thread
        s.released.add_done_callback(lambda _f: self._finish(s))
        thread.start()
        self._ask_keyframe(s)  # while the reader connects: the camera makes it at its next tick
        try:
            await asyncio.wait_for(asyncio.shield(s.opened), self.open_deadline_s)
            if s.state is State.CLOSED:  # released before open() resumed (failed at once)
                error = s.error or CaptureError("open-failed", "capture closed")
                raise CaptureError(error.reason, error.detail)
        except TimeoutError:
            reason = "no-frames" if s.state is State.WAITING else "open-failed"
            s.stop.set()  # the reader releases as soon as its backend call returns
            raise CaptureError(reason, f"no frame from {self.kind} source within "
                                       f"{self.open_deadline_s:g} s") from None
        except CaptureError as exc:
            await self._abort(s)
            if exc.reason == "read-failed":  # opened, but nothing came before it gave up
                raise CaptureError("no-frames", exc.detail) from None
            raise
        except BaseException:  # cancelled: stop the reader; close() waits for the release
            s.stop.set()
            raise
        s._set_state(State.OPEN)
        _call_quietly(self._on_open, "on_open")

    async def read(self) -> np.ndarray:
        """The latest frame newer than the one returned before: BGR uint8 (height, width, 3),
        masked and (if enabled) enhanced. Frames come at most `fps` per second; stale ones
        are dropped, never queued."""
        s = self._session
        if s is None or s.state is not State.OPEN:
            raise CaptureError("read-failed", "capture is not open")
        deadline = time.monotonic() + STALL_SECONDS + 1.0 / self.fps
        while True:
            s.new_frame.clear()
            with s.lock:
                error, seq, frame = s.error, s.seq, s.frame
            if error is not None:
                raise CaptureError(error.reason, error.detail)
            if s.stop.is_set():
                raise CaptureError("read-failed", "capture is closing")
            if seq > s.returned_seq and frame is not None:
                s.returned_seq = seq
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CaptureError("read-failed", f"no frame for {STALL_SECONDS:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(s.new_frame.wait(), remaining)

    async def read_packet(self) -> bytes:
        """Passthrough: the next encoded frame (Annex B H.264; a keyframe carries SPS and
        PPS), in the camera's order. Never a frame from before a keyframe the viewer got."""
        s = self._session
        if s is None or s.state is not State.OPEN or not s.passthrough:
            raise CaptureError("read-failed", "capture is not open for passthrough")
        deadline = time.monotonic() + STALL_SECONDS + 0.5
        while True:
            s.new_frame.clear()
            with s.lock:
                error = s.error
                packet = s.packets.popleft() if s.packets else None
            if error is not None:
                raise CaptureError(error.reason, error.detail)
            if s.stop.is_set():
                raise CaptureError("read-failed", "capture is closing")
            if packet is not None:
                return packet
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CaptureError("read-failed", f"no frame for {STALL_SECONDS:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(s.new_frame.wait(), remaining)

    async def close(self) -> None:
        """Stop the reader, release the source, call on_close (once, if on_open was)."""
        s = self._session
        if s is None:
            return
        s.stop.set()
        with s.lock:
            s.frame = None
        s.new_frame.set()  # wake a pending read()
        try:
            await asyncio.wait_for(asyncio.shield(s.released), _CLOSE_WAIT)
        except TimeoutError:
            # The reader is stuck inside the backend; it releases the source as soon as the
            # call returns (stop is set) and on_close follows then, from the done-callback.
            log.error("camera reader did not stop within %.0f s; release deferred", _CLOSE_WAIT)
            return
        self._finish(s)

    # ------------------------------------------------------------------ internals
    def _ask_keyframe(self, s: _Session) -> None:
        """Run the keyframe request, if configured, beside the reader (on the loop)."""
        if self.keyframe_command is None or s.stop.is_set():
            return
        task = s.loop.create_task(rtsp.request_keyframe(self.keyframe_command,
                                                        self.keyframe_timeout_s))
        s.keyframe_asks.add(task)
        task.add_done_callback(s.keyframe_asks.discard)

    def _finish(self, s: _Session) -> None:
        """After the reader has released the source (runs on the loop; idempotent)."""
        for task in list(s.keyframe_asks):  # a keyframe for nobody: stop asking
            task.cancel()
        if s.thread is not None:
            s.thread.join(timeout=1.0)
        if self._session is s:
            self._session = None
        if s.state is State.CLOSED:
            return
        was_open = s.state is State.OPEN
        s._set_state(State.CLOSED)
        if was_open:
            _call_quietly(self._on_close, "on_close")

    async def _abort(self, s: _Session) -> None:
        """A failed open: stop the reader and give it a moment to release."""
        s.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(s.released), _OPEN_GRACE)
        except TimeoutError:
            log.warning("camera reader still inside the backend after a failed open; "
                        "it releases the source when the call returns")
            return
        self._finish(s)

    def _process(self, raw: np.ndarray) -> np.ndarray:
        """Masks first (raw frame), then size, then enhancement, then masks again so the
        masked area is exact black in what leaves the device."""
        if raw.ndim == 2:
            raw = cv2.cvtColor(raw, cv2.COLOR_GRAY2BGR)
        elif raw.shape[2] == 4:
            raw = cv2.cvtColor(raw, cv2.COLOR_BGRA2BGR)
        masked = apply_masks(raw, self.masks)
        frame = fit(masked, self.width, self.height)
        resized = frame is not masked
        if self.enhance:
            frame = enhance_low_light(frame)
        if self.masks and (self.enhance or resized):
            frame = apply_masks(frame, self.masks)
        return frame

    # ------------------------------------------------------------------ reader thread
    def _run(self, s: _Session) -> None:
        cap: Any = None
        try:
            if self.kind == "synthetic":
                self._run_synthetic(s)
            elif self.kind == "rtsp":
                self._run_rtsp(s)
            else:
                cap = self._open_cv(s)
                if cap is not None:
                    self._run_cv(s, cap)
        except CaptureError as exc:
            s.fail(exc)
        except Exception as exc:  # never let the thread die holding the camera
            if self.kind == "rtsp":  # an FFmpeg error's text names the URL: its password too
                words = rtsp.classify(exc)[1]
                log.error("camera reader failed: %s", words)
                s.fail(CaptureError("read-failed", words))
            else:
                log.exception("camera reader failed")
                s.fail(CaptureError("read-failed", f"{type(exc).__name__}: {exc}"))
        finally:
            if cap is not None:
                try:
                    cap.release()
                except Exception:
                    log.exception("releasing the camera failed")
            with s.lock:
                s.frame = None
            if not s.stop.is_set() and s.error is None:
                s.fail(CaptureError("read-failed", "reader ended"))
            s.post(_resolve, s.opened, CaptureError("open-failed", "capture closed"))
            s.post(s.new_frame.set)
            s.post(_resolve, s.released, None)

    def _run_synthetic(self, s: _Session) -> None:
        seed_text = self.source.partition(":")[2].strip()
        try:
            seed = int(seed_text) if seed_text else 0
        except ValueError:
            raise CaptureError("open-failed", f"bad synthetic seed {seed_text!r}") from None
        scene = SyntheticScene(self.width, self.height, seed)
        s._set_state(State.WAITING)
        period = 1.0 / self.fps
        start = time.monotonic()
        due = start
        while not s.stop.is_set() and not s.loop.is_closed():  # no loop, no viewer
            now = time.monotonic()
            if now < due:
                if s.stop.wait(due - now):
                    break
                now = time.monotonic()
            s.publish(self._process(scene.frame(now - start)))
            due = max(due + period, now)

    def _open_cv(self, s: _Session) -> Any:
        """Open the source with OpenCV (reader thread). None if stopped meanwhile."""
        source = self.source
        if self.kind == "device":
            target: Any = int(source) if source.isdigit() else source
            if isinstance(target, str) and not os.path.exists(target):
                raise CaptureError("open-failed", f"no such device {source}")
            if isinstance(target, int) and not os.path.exists(f"/dev/video{target}"):
                raise CaptureError("open-failed", f"no such device /dev/video{target}")
            cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
        else:
            if not os.path.isfile(source):
                raise CaptureError("open-failed", "no such file")
            cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise CaptureError("open-failed", f"cannot open {self.kind} source")
        s._set_state(State.WAITING)
        if self.kind == "device":
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(STALL_SECONDS * 1000))
        if s.stop.is_set():
            cap.release()
            return None
        return cap

    def _run_cv(self, s: _Session, cap: Any) -> None:
        period = 1.0 / self.fps
        looped = self.kind == "file"
        last_ok = time.monotonic()
        due = last_ok
        while not s.stop.is_set() and not s.loop.is_closed():  # no loop, no viewer
            now = time.monotonic()
            if looped:
                # a file decodes as fast as asked: read one frame per period, no grabbing
                if now < due:
                    if s.stop.wait(due - now):
                        break
                    now = time.monotonic()
                ok, raw = cap.read()
                if not ok:  # end of file: loop
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, raw = cap.read()
            else:
                # a live source: grab everything, decode and process only when due
                ok = cap.grab()
                raw = None
                now = time.monotonic()
                if ok and now >= due:
                    ok, raw = cap.retrieve()
            if s.stop.is_set():
                break
            if not ok:
                if time.monotonic() - last_ok > STALL_SECONDS:
                    raise CaptureError("read-failed",
                                       f"{self.kind} source delivered nothing for "
                                       f"{STALL_SECONDS:g} s")
                s.stop.wait(_RETRY_PAUSE)
                continue
            last_ok = time.monotonic()
            if raw is not None:
                s.publish(self._process(raw))
                due = max(due + period, now)

    def _run_rtsp(self, s: _Session) -> None:
        """Read an RTSP camera with PyAV until stopped (reader thread).

        Each packet is either queued as it came (passthrough) or decoded, every packet, and
        converted and processed at most `fps` times a second. A stream that ends or breaks
        is opened again until nothing has come for STALL_SECONDS; only then does the
        look-in end ("read-failed"). Every connection starts at a keyframe; if its first
        frame is not one, the camera is asked for one (when configured). Closing the
        container ends the RTSP session (TEARDOWN) and the connection."""
        container: Any = None
        stream: Any = None
        packets: Any = None
        key = b""  # SPS + PPS for passthrough keyframes
        need_key = True
        first_packet = True  # of this connection
        connected_once = False
        period = 1.0 / self.fps
        last_ok = time.monotonic()
        due = last_ok
        try:
            while not s.stop.is_set() and not s.loop.is_closed():
                if container is None:
                    try:
                        container = rtsp.open_stream(self.source, self.rtsp_transport,
                                                     self.open_deadline_s)
                    except Exception as exc:
                        code, words = rtsp.classify(exc)
                        if not connected_once:
                            raise CaptureError(code, words) from None
                        if time.monotonic() - last_ok > STALL_SECONDS:
                            raise CaptureError("read-failed", f"the camera went away and "
                                               f"did not come back: {words}") from None
                        s.stop.wait(0.1)
                        continue
                    if not container.streams.video:
                        raise CaptureError(rtsp.OPEN_FAILED, "the camera sends no video")
                    stream = container.streams.video[0]
                    codec = stream.codec_context.name
                    if not connected_once:
                        self.camera_codec = codec
                        s.passthrough = self.passthrough_wanted and codec == "h264"
                        s._set_state(State.WAITING)
                    elif s.passthrough and codec != "h264":
                        raise CaptureError("read-failed", f"the camera now sends {codec}")
                    else:
                        log.info("camera stream reopened after a break")
                    key = rtsp.annexb_parameter_sets(stream.codec_context.extradata)
                    packets = container.demux(stream)
                    need_key = True
                    first_packet = True
                    connected_once = True
                try:
                    packet = next(packets)
                except Exception as exc:  # StopIteration (ended) or FFmpegError
                    if rtsp.is_interrupted(exc):
                        if time.monotonic() - last_ok > STALL_SECONDS:
                            raise CaptureError("read-failed", "the camera delivered nothing "
                                               f"for {STALL_SECONDS:g} s") from None
                        packets = container.demux(stream)
                        continue
                    log.warning("camera stream broke (%s); reopening",
                                rtsp.classify(exc)[1] if not isinstance(exc, StopIteration)
                                else "ended")
                    packets = None
                    container.close()
                    container = None
                    continue
                if not packet.size:  # the demuxer's end-of-stream marker
                    packets = None
                    container.close()
                    container = None
                    continue
                if s.stop.is_set():
                    break
                if need_key:
                    if not (packet.is_keyframe or 5 in rtsp.nal_types(bytes(packet))):
                        if first_packet:  # the keyframe asked for as we connected may
                            s.post(self._ask_keyframe, s)  # have gone before our PLAY
                            first_packet = False
                        continue
                    need_key = False
                first_packet = False
                last_ok = time.monotonic()
                if s.passthrough:
                    data = bytes(packet)
                    if packet.is_keyframe or 5 in rtsp.nal_types(data):
                        data = rtsp.with_parameter_sets(data, key)
                    if not s.publish_packet(data):
                        need_key = True
                    continue
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:  # a damaged packet: skip it
                    log.debug("undecodable packet skipped: %s", rtsp.classify(exc)[1])
                    continue
                for frame in frames:
                    now = time.monotonic()
                    if now >= due:
                        s.publish(self._process(frame.to_ndarray(format="bgr24")))
                        due = max(due + period, now)
        finally:
            packets = None
            if container is not None:
                container.close()  # sends TEARDOWN and closes the connection
