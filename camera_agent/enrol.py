"""Enrolment: bind a freshly made device key to a camera with a one-time code.

The key is generated in memory and written (0600) only after the service accepted its
public half, so a refused or failed enrolment leaves an existing installation untouched.
Re-enrolling keeps the installer's settings (source, masks, hooks) and replaces only the
identity and the pinned service key.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from camera_agent.config import AgentConfig
from camera_agent.identity import Identity
from camera_agent.protocol import Refusal, load_public_key


class EnrolmentError(Exception):
    pass


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _post(server: str, body: dict[str, str], ca_file: str | None) -> dict[str, Any]:
    request = urllib.request.Request(
        server.rstrip("/") + "/api/agent/enrol", data=json.dumps(body).encode(),
        # the installer reads the refusal on the device's console: in English
        headers={"Content-Type": "application/json", "Accept-Language": "en"})
    context = ssl.create_default_context(cafile=ca_file) if server.startswith("https") else None
    try:
        with urllib.request.urlopen(request, timeout=15, context=context) as response:
            reply: dict[str, Any] = json.loads(response.read())
            return reply
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
            if isinstance(detail, dict):  # the service's error shape: {code, message}
                detail = detail.get("message", detail.get("code"))
        except ValueError:
            detail = exc.reason
        raise EnrolmentError(f"enrolment refused: {detail}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise EnrolmentError(f"cannot reach {server}: {exc}") from exc


def enrol(server: str, code: str, state_dir: Path, source: str | None = None,
          ca_file: str | None = None) -> AgentConfig:
    """Create the key (0600), send only its public half, pin the service key, write config."""
    if not server.startswith(("http://", "https://")):
        raise EnrolmentError("--server must be an http:// or https:// URL")
    if server.startswith("http://") and not _is_loopback(server):
        print("warning: enrolling over plain HTTP; the service key pinned now could be "
              "forged on the way. Use https:// with --ca-file.", file=sys.stderr)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):  # e.g. a StateDirectory owned by root
        os.chmod(state_dir, 0o700)
    identity = Identity.generate()
    reply = _post(server, {"code": code.strip(), "public_key": identity.public_key_b64}, ca_file)
    try:
        camera_id = str(reply["camera_id"])
        server_key = str(reply["server_public_key"])
        load_public_key(server_key)
    except (KeyError, TypeError, Refusal, ValueError) as exc:
        raise EnrolmentError("the service's reply is not an enrolment") from exc

    config_path = state_dir / "agent.toml"
    previous: AgentConfig | None = None
    if config_path.exists():
        with contextlib.suppress(ValueError, OSError):
            previous = AgentConfig.load(config_path)
    if previous is not None:
        config = replace(previous, server_url=server, camera_id=camera_id,
                         server_public_key=server_key, state_dir=state_dir,
                         ca_file=ca_file or previous.ca_file,
                         source=source or previous.source)
    else:
        config = AgentConfig(server_url=server, camera_id=camera_id,
                             server_public_key=server_key, state_dir=state_dir,
                             source=source or "synthetic", ca_file=ca_file)
    identity.save(config.key_file)
    config.plan_file.unlink(missing_ok=True)  # signed for another camera or key
    tmp = config_path.with_name("agent.toml.new")
    tmp.write_text(config.dump(state_dir="."))
    os.replace(tmp, config_path)
    return config
