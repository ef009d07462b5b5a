"""What the agent tells the service in each heartbeat.

Only facts the service needs to plan the night (is the camera there, did the last look-in
work, which plan and version does the device run, is it running out of memory); nothing
about the picture.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from camera_agent import __version__
from camera_agent.capture import describe_source
from camera_agent.protocol import CLOCK_TOLERANCE_SECONDS
from camera_agent.video_path import VideoPath
from schedules.reason import Reason

_STARTED = time.monotonic()


def camera_present(source: str) -> bool | None:
    """True/False for local devices and files; None where only opening would tell (RTSP)."""
    kind = describe_source(source)
    if kind == "synthetic":
        return True
    if kind == "rtsp":
        return None
    if source.strip().isdigit():
        return Path(f"/dev/video{source.strip()}").exists()
    return Path(source).exists()


def free_memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def health(source: str, last_result: Reason | None, plan_version: int | None = None,
           lookin_active: bool = False, video_path: VideoPath | None = None,
           clock_offset: float | None = None) -> dict[str, Any]:
    """``last_lookin`` is how the last look-in ended, a code (None before the first), and
    ``last_lookin_detail`` the words with it (e.g. open-failed after technical-failure).
    ``video_path`` is "passthrough" or "encode" (the last look-in's, else what the
    configuration allows) and ``video_path_reason`` why, as a code.
    ``clock_offset_seconds``: the service's clock minus this device's, as the link last
    measured it (tickets are refused past ``gate.SKEW``); None before the first measure;
    ``clock_off`` when it is past ``CLOCK_TOLERANCE_SECONDS``, which admins are shown."""
    return {
        "video_path": video_path.path if video_path is not None else None,
        "video_path_reason": video_path.reason if video_path is not None else None,
        "camera_present": camera_present(source),
        "last_lookin": last_result.code if last_result is not None else None,
        "last_lookin_detail": last_result.detail if last_result is not None else None,
        "version": __version__,
        "free_memory_mb": free_memory_mb(),
        "plan_version": plan_version,
        "lookin_active": lookin_active,
        "uptime_seconds": round(time.monotonic() - _STARTED),
        "pid": os.getpid(),
        "clock_offset_seconds": round(clock_offset, 3) if clock_offset is not None else None,
        "clock_off": clock_offset is not None and abs(clock_offset) > CLOCK_TOLERANCE_SECONDS,
    }
