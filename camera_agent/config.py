"""Agent configuration: one TOML file written at enrolment, editable by the installer.

Everything is validated when the file is loaded, so a typo in a privacy mask or a codec
name stops the agent at start-up (where the installer sees it) instead of failing the
first look-in of the night.
"""

from __future__ import annotations

import json
import shlex
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from camera_agent.processing import normalise_masks

CODECS = ("vp8", "h264")


@dataclass
class AgentConfig:
    server_url: str  # http(s)://host:port of the supervision service (or its proxy)
    camera_id: str
    server_public_key: str  # pinned at enrolment (base64url raw Ed25519)
    state_dir: Path
    source: str = "synthetic"  # V4L2 index or /dev/video*, rtsp://..., a file, synthetic[:seed]
    width: int = 640
    height: int = 480
    fps: float = 10.0
    codec: str = "vp8"  # vp8 | h264
    enhance: bool = True  # low-light enhancement (CLAHE on luma)
    masks: list[list[tuple[float, float]]] = field(default_factory=list)  # normalised polygons
    open_deadline_seconds: float = 5.0  # first frame within this, or technical failure
    heartbeat_seconds: float = 15.0
    backoff_cap_seconds: float = 30.0
    ca_file: str | None = None  # CA or self-signed service certificate to pin for wss
    # STUN servers for the peer: [{urls = "stun:host:3478"}] (TURN comes with each look-in)
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    #: more addresses of the same service (other nodes): after a failed dial the link
    #: tries the next, so a node that dies leaves the camera with the others
    servers: list[str] = field(default_factory=list)
    on_lookin_start: str | None = None  # command run when the camera opens
    on_lookin_end: str | None = None  # command run when the camera is released
    rtsp_transport: str = "tcp"  # tcp | udp: how an RTSP camera sends (home networks drop UDP)
    passthrough: bool = True  # hand on an RTSP camera's H.264 when no mask or enhance is set
    # run (no shell) after every look-in, e.g. to turn a PTZ camera to its privacy preset
    after_lookin_command: str | None = None
    after_lookin_timeout_seconds: float = 30.0
    # run (no shell) as an RTSP camera is opened for a look-in, to ask it for a keyframe
    # at once (e.g. curl ... -X PUT .../ISAPI/Streaming/channels/102/requestKeyFrame)
    keyframe_command: str | None = None
    keyframe_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        for url in (self.server_url, *self.servers):
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError("server_url and servers must start with http:// or https://")
        if not 16 <= self.width <= 4096 or not 16 <= self.height <= 4096:
            raise ValueError("width and height must be 16..4096")
        if not 0 < self.fps <= 60:
            raise ValueError("fps must be in (0, 60]")
        self.codec = self.codec.lower()
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}")
        normalise_masks(self.masks)  # raises ValueError with the polygon's index
        self.rtsp_transport = self.rtsp_transport.lower()
        if self.rtsp_transport not in ("tcp", "udp"):
            raise ValueError("rtsp_transport must be tcp or udp")
        for name in ("open_deadline_seconds", "heartbeat_seconds", "backoff_cap_seconds",
                     "after_lookin_timeout_seconds", "keyframe_timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.keyframe_command is not None:
            try:
                if not shlex.split(self.keyframe_command):
                    raise ValueError
            except ValueError:
                raise ValueError("keyframe_command must be a program with its arguments "
                                 "(quoted as in a shell, but run without one)") from None
        for server in self.ice_servers:
            if not isinstance(server, dict) or not server.get("urls"):
                raise ValueError("each ice_servers entry needs urls")
            urls = server["urls"] if isinstance(server["urls"], list) else [server["urls"]]
            # TURN comes per look-in from the service, with a credential that ends with the
            # ticket: no long-lived TURN credential is kept on a device
            if set(server) - {"urls"} or not all(
                    isinstance(u, str) and u.startswith(("stun:", "stuns:")) for u in urls):
                raise ValueError("ice_servers may list STUN servers only (stun:host:port); "
                                 "TURN credentials come from the service with each look-in")

    @property
    def key_file(self) -> Path:
        return self.state_dir / "agent.key"

    @property
    def plan_file(self) -> Path:
        return self.state_dir / "plan.json"

    @property
    def link_url(self) -> str:
        return link_url(self.server_url)

    @property
    def link_urls(self) -> list[str]:
        """Where the link may dial, in order: ``server_url`` first, then ``servers``."""
        return list(dict.fromkeys(link_url(u) for u in (self.server_url, *self.servers)))

    @classmethod
    def load(cls, path: Path) -> AgentConfig:
        data: dict[str, Any] = tomllib.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
        data["state_dir"] = (path.parent / data.get("state_dir", ".")).resolve()
        try:
            data["masks"] = [[(float(x), float(y)) for x, y in poly]
                             for poly in data.get("masks", [])]
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def dump(self, state_dir: str | None = None) -> str:
        """TOML text; `state_dir` overrides the path written (e.g. "." for "next to me")."""
        lines = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "state_dir" and state_dir is not None:
                value = state_dir
            if value is None or f.name in ("masks", "ice_servers", "servers"):
                continue
            if isinstance(value, bool):
                lines.append(f"{f.name} = {'true' if value else 'false'}")
            elif isinstance(value, int | float):
                lines.append(f"{f.name} = {value}")
            else:
                lines.append(f"{f.name} = {json.dumps(str(value))}")
        if self.masks:
            polys = ", ".join(
                "[" + ", ".join(f"[{x}, {y}]" for x, y in p) + "]" for p in self.masks)
            lines.append(f"masks = [{polys}]")
        if self.servers:
            lines.append(f"servers = {json.dumps(self.servers)}")
        if self.ice_servers:
            tables = ", ".join(
                "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in s.items()) + "}"
                for s in self.ice_servers)
            lines.append(f"ice_servers = [{tables}]")
        return "\n".join(lines) + "\n"


def link_url(server_url: str) -> str:
    """The agent link's WebSocket URL on a service at ``server_url``."""
    base = server_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/ws/agent"
    return "ws://" + base.removeprefix("http://") + "/ws/agent"
