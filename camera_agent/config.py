"""Agent configuration: one TOML file written at enrolment, editable by the installer."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class AgentConfig:
    server_url: str  # http(s)://host:port of the supervision service
    camera_id: str
    server_public_key: str  # pinned at enrolment (base64url raw Ed25519)
    state_dir: Path
    source: str = "synthetic"
    width: int = 640
    height: int = 480
    fps: float = 10.0
    codec: str = "vp8"  # vp8 | h264
    enhance: bool = True
    masks: list[list[tuple[float, float]]] = field(default_factory=list)
    heartbeat_seconds: float = 15.0
    backoff_cap_seconds: float = 30.0
    ca_file: str | None = None  # CA or self-signed service certificate to pin for wss
    on_lookin_start: str | None = None  # command run when the camera opens
    on_lookin_end: str | None = None  # command run when the camera is released

    @property
    def key_file(self) -> Path:
        return self.state_dir / "agent.key"

    @property
    def plan_file(self) -> Path:
        return self.state_dir / "plan.json"

    @property
    def link_url(self) -> str:
        base = self.server_url.rstrip("/")
        if base.startswith("https://"):
            return "wss://" + base[len("https://") :] + "/ws/agent"
        return "ws://" + base.removeprefix("http://") + "/ws/agent"

    @classmethod
    def load(cls, path: Path) -> AgentConfig:
        data: dict[str, Any] = tomllib.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
        data["state_dir"] = (path.parent / data.get("state_dir", ".")).resolve()
        data["masks"] = [[(float(x), float(y)) for x, y in poly] for poly in data.get("masks", [])]
        return cls(**data)

    def dump(self) -> str:
        lines = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name == "masks":
                continue
            if isinstance(value, bool):
                lines.append(f"{f.name} = {'true' if value else 'false'}")
            elif isinstance(value, int | float):
                lines.append(f"{f.name} = {value}")
            else:
                text = str(value).replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'{f.name} = "{text}"')
        if self.masks:
            polys = ", ".join(
                "[" + ", ".join(f"[{x}, {y}]" for x, y in p) + "]" for p in self.masks)
            lines.append(f"masks = [{polys}]")
        return "\n".join(lines) + "\n"
