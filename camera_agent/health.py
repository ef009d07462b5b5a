"""What the agent tells the service in each heartbeat."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from camera_agent import __version__


def camera_present(source: str) -> bool | None:
    """True/False for local devices and files; None where only opening would tell (RTSP)."""
    if source.startswith("synthetic"):
        return True
    if source.isdigit():
        return Path(f"/dev/video{source}").exists()
    if source.startswith(("rtsp://", "rtsps://")):
        return None
    return Path(source).exists()


def free_memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def health(source: str, last_result: str | None) -> dict[str, Any]:
    return {
        "camera_present": camera_present(source),
        "last_lookin": last_result,
        "version": __version__,
        "free_memory_mb": free_memory_mb(),
        "pid": os.getpid(),
    }
