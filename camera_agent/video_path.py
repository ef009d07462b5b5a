"""Which way a look-in's picture takes through the device, and why.

"passthrough": the RTSP camera's H.264 is handed to the viewer as it came, nothing decoded
or encoded here (a few % of a core instead of most of one on a small box). "encode": every
frame is decoded, masked and enhanced as configured, and encoded again. A privacy mask or
low-light enhancement always means "encode": they change the picture, so it must be
decoded. The reason is a code the service can show (the heartbeat's `video_path_reason`).
"""

from __future__ import annotations

from dataclasses import dataclass

from camera_agent.capture import describe_source
from camera_agent.config import AgentConfig

PASSTHROUGH = "passthrough"
ENCODE = "encode"


@dataclass(frozen=True)
class VideoPath:
    path: str    # PASSTHROUGH | ENCODE
    reason: str  # why, as a code (see planned() and LookIn)


def planned(config: AgentConfig) -> VideoPath:
    """The path the configuration allows; the camera's own codec and the viewer's are
    known only during a look-in (reasons "camera-not-h264", "viewer-no-h264")."""
    if describe_source(config.source) != "rtsp":
        return VideoPath(ENCODE, "not-rtsp")
    if not config.passthrough:
        return VideoPath(ENCODE, "passthrough-off")
    if config.masks:
        return VideoPath(ENCODE, "masks")
    if config.enhance:
        return VideoPath(ENCODE, "enhance")
    return VideoPath(PASSTHROUGH, "rtsp-h264-unprocessed")
