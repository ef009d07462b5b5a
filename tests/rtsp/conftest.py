"""A real RTSP camera on loopback (tests/rtsp/server.py: it encodes its own H.264 with
PyAV), one per test module, and a real agent linked to the agent tests' fake service."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agent.fake_service import AgentProcess, FakeService, new_agent, plan_at
from tests.conftest import need
from tests.rtsp.server import RtspServer

USER = "nattcam"
PASSWORD = "Zq8-secret-do-not-log"


@contextmanager
def running_camera(gop: int = 5, **options: Any) -> Iterator[RtspServer]:
    """A camera sending 640x480 at 10 fps, a keyframe every `gop` frames, that takes
    USER and PASSWORD."""
    server = RtspServer({USER: PASSWORD}, **options).start()
    try:
        server.publish(fps=10, gop=gop)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def camera() -> Iterator[RtspServer]:
    with running_camera() as server:
        yield server


def keyframe_command(camera: RtspServer, netrc: Path) -> str:
    """The installer's keyframe request for this camera, as the install notes give it
    (curl with the credentials in a netrc file, not on the command line)."""
    need(shutil.which("curl") is not None, "curl is not installed (apt install curl)")
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    return (f"curl --fail --silent --max-time 3 --netrc-file {netrc} -X PUT "
            f"{camera.keyframe_url()}")


@dataclass
class Rig:
    fake: FakeService
    agent: AgentProcess


@asynccontextmanager
async def rtsp_agent(root: Path, source: str, **settings: Any) -> AsyncIterator[Rig]:
    """A real agent whose camera is `source`, linked, holding a plan that allows now."""
    agent = new_agent(root)
    fake = FakeService(agent.camera_id, agent.identity.public_key_b64)
    await fake.start()
    fields = fake.signed_plan(plan_at(0), 1)
    fake.plan = (fields["plan_json"], fields["signature"], 1)
    agent.configure(fake.url, fake.public_key_b64, source=source, **settings)
    agent.start()
    try:
        await fake.wait_linked(40)
        await fake.wait_for(lambda r: r.type == "heartbeat"
                            and r.msg["health"].get("plan_version") == 1, 20)
        yield Rig(fake, agent)
    finally:
        agent.stop()
        await fake.close()
