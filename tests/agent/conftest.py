"""Fixtures for the camera agent tests: a clip that stands in for the camera, and a real
`camera-agent run` process linked to the test's fake service."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agent.fake_service import (
    AgentProcess,
    FakeService,
    FdWatch,
    new_agent,
    plan_at,
    write_clip,
)


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The camera: a file the agent holds open exactly while it reads it."""
    return write_clip(tmp_path_factory.mktemp("camera") / "camera.avi")


@dataclass
class Rig:
    fake: FakeService
    agent: AgentProcess
    watch: FdWatch
    clip: Path


@asynccontextmanager
async def linked_agent(root: Path, clip: Path, *, plan_version: int | None = 1,
                       ssl_context: ssl.SSLContext | None = None,
                       **settings: Any) -> AsyncIterator[Rig]:
    """A fake service holding a plan that allows a look-in now, and a real agent linked to
    it whose open files are watched from before it starts."""
    agent = new_agent(root)
    fake = FakeService(agent.camera_id, agent.identity.public_key_b64, ssl_context)
    await fake.start()
    if plan_version is not None:
        fields = fake.signed_plan(plan_at(0), plan_version)
        fake.plan = (fields["plan_json"], fields["signature"], plan_version)
    agent.configure(fake.url, fake.public_key_b64, source=str(clip), **settings)
    agent.start()
    try:
        with FdWatch(agent.pid, clip) as watch:
            await fake.wait_linked(40)
            if plan_version is not None:
                await fake.wait_for(lambda r: r.type == "heartbeat"
                                    and r.msg["health"].get("plan_version") == plan_version,
                                    20)
            yield Rig(fake, agent, watch, clip)
    finally:
        agent.stop()
        await fake.close()
