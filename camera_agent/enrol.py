"""Enrolment: bind a freshly made device key to a camera with a one-time code."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from camera_agent.config import AgentConfig
from camera_agent.identity import Identity


class EnrolmentError(Exception):
    pass


def enrol(server: str, code: str, state_dir: Path, source: str = "synthetic",
          ca_file: str | None = None) -> AgentConfig:
    """Create the key (0600), send only its public half, pin the service key, write config."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path = state_dir / "agent.key"
    identity = Identity.load(key_path) if key_path.exists() else Identity.create(key_path)
    body = json.dumps({"code": code, "public_key": identity.public_key_b64}).encode()
    request = urllib.request.Request(server.rstrip("/") + "/api/agent/enrol", data=body,
                                     headers={"Content-Type": "application/json"})
    context = ssl.create_default_context(cafile=ca_file) if server.startswith("https") else None
    try:
        with urllib.request.urlopen(request, timeout=15, context=context) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except ValueError:
            detail = exc.reason
        raise EnrolmentError(f"enrolment refused: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise EnrolmentError(f"cannot reach {server}: {exc}") from exc
    config = AgentConfig(server_url=server, camera_id=reply["camera_id"],
                         server_public_key=reply["server_public_key"], state_dir=state_dir,
                         source=source, ca_file=ca_file)
    (state_dir / "agent.toml").write_text(config.dump().replace(
        f'state_dir = "{state_dir}"', 'state_dir = "."'))
    return config
