"""An IP camera over RTSP, opened with PyAV (libavformat, which aiortc already brings).

What is RTSP-specific lives here: the transport (TCP by default: home networks drop UDP),
the time limits, what each failure means for staff (a code) and for the installer (words),
H.264 parameter sets for passthrough, and the one printable form of a source. A camera
URL usually carries its password (rtsp://user:pass@host/...), so nothing here or in the
callers ever prints a source or an exception's text that could contain it: `redact()`
for the source, `classify()` for errors (FFmpeg's own error text, never the file name).

A camera's first frame in passthrough is its next keyframe. Many cameras make one on
request (Hikvision: `PUT /ISAPI/Streaming/channels/<n>/requestKeyFrame`; others by a CGI
URL): `request_keyframe()` runs the installer's command for that, with a time limit,
its output discarded (it may echo the credentials it used) and only its name logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import subprocess
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import av
import av.error

log = logging.getLogger("camera_agent.rtsp")

TRANSPORTS = ("tcp", "udp")
#: A blocking read gives up after this, so the reader notices stop and stalls in time.
READ_POLL_SECONDS = 0.25

# Failure codes (CaptureError.reason; the look-in ends technical-failure with this detail).
UNREACHABLE = "camera-unreachable"     # nothing answered at the camera's address
BAD_CREDENTIALS = "camera-credentials" # the camera refused the user name or password
OPEN_FAILED = "open-failed"            # it answered, but no usable video stream


def redact(source: str) -> str:
    """The source without user, password or query (some cameras take the password as
    ?password=...): what logs, reports and errors may show."""
    try:
        parts = urlsplit(source)
    except ValueError:
        return "rtsp://(unreadable address)"
    if not parts.scheme or not parts.netloc:
        return source
    host = parts.netloc.rpartition("@")[2]
    netloc = f"***@{host}" if "@" in parts.netloc else host
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def open_stream(url: str, transport: str, open_timeout: float) -> Any:
    """Open the camera's stream (blocking: the reader thread calls it). Raises
    av.error.FFmpegError; `classify()` says what it means."""
    if transport not in TRANSPORTS:
        raise ValueError(f"rtsp transport must be one of {TRANSPORTS}")
    options = {
        "rtsp_transport": transport,
        "timeout": str(int(open_timeout * 1_000_000)),  # socket I/O, microseconds
        "analyzeduration": "0",  # the SDP describes the stream; do not wait seconds to probe
        # ...nor for 32 KB of it: FFmpeg's H.264 probe wants 7 decoded frames, which never
        # come before a keyframe, so it reads up to probesize (0.5 s at 512 kbit/s) first
        "probesize": "32",
        # no "fflags nobuffer": with it the frames read while probing are dropped, and the
        # first of them is the keyframe a camera makes for a new session or on request
    }
    if transport == "udp":
        options["reorder_queue_size"] = "0"  # hand packets on at once (a LAN reorders little)
    return av.open(url, options=options, timeout=(open_timeout, READ_POLL_SECONDS))


def classify(exc: BaseException) -> tuple[str, str]:
    """(code, words) for a failure to open: unreachable, refused credentials, or other."""
    words = _words(exc)
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return BAD_CREDENTIALS, f"the camera refused the credentials ({words})"
    low = words.lower()
    if isinstance(exc, av.error.ConnectionRefusedError | av.error.TimeoutError
                  | av.error.ExitError | av.error.ConnectionResetError
                  | av.error.ConnectionAbortedError | TimeoutError) or any(
            hint in low for hint in ("resolve", "unreachable", "no route", "timed out")):
        return UNREACHABLE, f"the camera did not answer ({words})"
    return OPEN_FAILED, f"the camera's stream could not be opened ({words})"


def _words(exc: BaseException) -> str:
    """An error's text without the URL that FFmpeg errors carry as their file name."""
    if isinstance(exc, av.error.FFmpegError):
        return str(exc.strerror or type(exc).__name__)
    return type(exc).__name__


def is_interrupted(exc: BaseException) -> bool:
    """A read that gave up after READ_POLL_SECONDS (no data yet), not a broken stream."""
    return isinstance(exc, av.error.ExitError | av.error.BlockingIOError)


# -- H.264 passthrough ---------------------------------------------------------------

_START = b"\x00\x00\x00\x01"


def annexb_parameter_sets(extradata: bytes | None) -> bytes:
    """SPS and PPS as Annex B (start codes), from the stream's extradata, which is Annex B
    already (RTSP's sprop-parameter-sets) or an avcC record (some demuxers)."""
    if not extradata:
        return b""
    if extradata[:1] != b"\x01":  # Annex B already
        return bytes(extradata)
    try:  # avcC: version, profile, compat, level, length size, SPS count + SPSs, PPS count + PPSs
        out, pos = [], 5
        for count_mask in (0x1F, 0xFF):
            count = extradata[pos] & count_mask
            pos += 1
            for _ in range(count):
                size = int.from_bytes(extradata[pos:pos + 2], "big")
                out.append(_START + extradata[pos + 2:pos + 2 + size])
                pos += 2 + size
        return b"".join(out)
    except IndexError:
        return b""


def nal_types(data: bytes) -> set[int]:
    """The NAL unit types in an Annex B buffer."""
    types = set()
    i = data.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(data):
        types.add(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


def with_parameter_sets(data: bytes, parameter_sets: bytes) -> bytes:
    """A keyframe the browser can start from: SPS and PPS in front when the camera sends
    them only out of band (in the SDP), as many do."""
    if parameter_sets and 7 not in nal_types(data):
        return parameter_sets + data
    return data


# -- asking the camera for a keyframe ------------------------------------------------


def command_name(command: str) -> str:
    """What a log may show of a command: its program's name (the arguments may carry a
    password)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return "?"
    return os.path.basename(argv[0]) if argv else "?"


async def request_keyframe(command: str, timeout: float) -> bool:
    """Run the installer's keyframe request (no shell; `NATTILLSYN_EVENT=keyframe`). True if
    it exited 0 within `timeout`; otherwise it is killed and its failure logged, and the
    first frame waits for the camera's next scheduled keyframe. Cancelling kills it.

    Started and awaited in worker threads: forking the agent's large process blocks for
    milliseconds (tens under load), and the look-in's answer is being made on the loop
    at this very moment."""
    name = command_name(command)
    started = time.monotonic()
    try:
        proc = await asyncio.to_thread(
            subprocess.Popen, shlex.split(command),
            env=dict(os.environ, NATTILLSYN_EVENT="keyframe"), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, ValueError) as exc:
        log.warning("keyframe request %s could not start: %s", name,
                    getattr(exc, "strerror", None) or type(exc).__name__)
        return False
    try:
        code = await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        log.warning("keyframe request %s killed after %g s", name, timeout)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            await asyncio.to_thread(proc.wait)
    if code != 0:
        log.warning("keyframe request %s exited with %s", name, code)
        return False
    log.info("keyframe asked of the camera (%s, %.0f ms)", name,
             (time.monotonic() - started) * 1000)
    return True
