"""A real RTSP camera on loopback (tests/rtsp/server.py fed by Debian's ffmpeg), one per
test module, and a real agent linked to the agent tests' fake service."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agent.fake_service import AgentProcess, FakeService, new_agent, plan_at
from tests.conftest import need
from tests.rtsp.server import RtspServer

USER = "nattcam"
PASSWORD = "Zq8-secret-do-not-log"


@pytest.fixture(scope="module")
def camera() -> Iterator[RtspServer]:
    need(shutil.which("ffmpeg") is not None, "ffmpeg is not installed (apt install ffmpeg)")
    server = RtspServer({USER: PASSWORD}).start()
    try:
        server.publish()
        yield server
    finally:
        server.stop()


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
