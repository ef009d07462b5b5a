"""A saved plan reaches its camera, and the save says so only when it did (issue 9).

A real service process and real agents: the largest plan ``schedules`` accepts is saved,
acknowledged by the agent (``pushed_to`` names the camera) and held by it; a plan over the
bounds is a 422 with code ``too-many`` and saves nothing; a reason with a lone surrogate
(which no signature can cover) is a 422, not a 500. A camera that refuses the plan, and
one that is linked but never answers, are not in ``pushed_to``: the save waits at most
``cameras.PLAN_ACK_SECONDS`` for an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.client import ClientConnection, connect

import schedules
from camera_agent.identity import Identity
from camera_agent.protocol import (
    AUTH,
    CHALLENGE,
    PLAN,
    SERVICE_TYPES,
    WELCOME,
    decode_message,
    encode_message,
    link_challenge_message,
)
from schedules.plan import MAX_ITEMS
from supervision.cameras import PLAN_ACK_SECONDS
from tests.harness import Service, eventually, make_service
from tests.people import Person
from tests.schedules.strategies import largest_plan


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service with its three demo cameras: 0 a real agent, 1 a silent link of the
    test's own, 2 a real agent that pins another service key (refuses every plan)."""
    service = make_service(Path(tmp_path_factory.mktemp("delivery")))
    service.start()
    try:
        first, _, third = service.world["cameras"]
        service.enrol(first)
        service.start_agent(first["camera_id"])
        service.enrol(third)
        service.configure_agent(third["camera_id"], server_public_key=Identity(
            Ed25519PrivateKey.generate()).public_key_b64)
        service.start_agent(third["camera_id"])
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def chef(svc: Service) -> Person:
    return Person(svc.url, "chef")


def put_plan(person: Person, rid: int, plan: Any) -> httpx.Response:
    return person.http.put(f"/api/recipients/{rid}/plan", json=plan,
                           headers={"X-CSRF-Token": person.csrf})


def online(chef: Person, rid: int) -> bool:
    camera = chef.get(f"/api/recipients/{rid}").json()["camera"]
    return bool(camera and camera["online"])


def agent_plan(svc: Service, camera_id: str) -> dict[str, Any]:
    path = svc.agent_dir(camera_id) / "plan.json"
    return json.loads(path.read_text()) if path.exists() else {}


def largest_document() -> dict[str, Any]:
    plan = largest_plan("😀")
    tonight = schedules.night_of(datetime.now(UTC), plan.timezone, plan.night_boundary)
    # consent is on record (the demo's), never in a saved plan; the camera's plan carries it
    return schedules.plan_to_dict(largest_plan("😀", first_night=tonight)) | {"consent": None}


def test_the_largest_plan_reaches_a_real_agent_and_is_acknowledged(
        svc: Service, chef: Person) -> None:
    cam = svc.world["cameras"][0]
    rid, camera_id = cam["recipient_id"], cam["camera_id"]
    eventually(lambda: online(chef, rid), 30, "camera online")
    eventually(lambda: agent_plan(svc, camera_id).get("version") == 1, 30, "plan 1 held")
    links_before = (svc.agent_dir(camera_id) / "agent.log").read_text().count("link up")

    reply = put_plan(chef, rid, largest_document())
    assert reply.status_code == 200, reply.text
    saved = reply.json()
    assert saved["pushed_to"] == [camera_id]
    # acknowledged means held: the device's own copy is that version, byte for byte signed
    held = agent_plan(svc, camera_id)
    assert held["version"] == saved["version"]
    data = json.loads(held["plan_json"])
    assert len(data["skip_nights"]) == MAX_ITEMS["skip_nights"]
    assert data["pauses"][0]["reason"] == "😀" * 200
    assert data["consent"] is not None, "the consent on record, signed for the camera"
    log = (svc.agent_dir(camera_id) / "agent.log").read_text()
    assert log.count("link up") == links_before, "the link never dropped"


def test_a_plan_over_the_bounds_is_refused_and_nothing_is_saved(
        svc: Service, chef: Person) -> None:
    rid = svc.world["cameras"][0]["recipient_id"]
    before = chef.get(f"/api/recipients/{rid}").json()
    document = dict(largest_document(), effective_from=None)  # only the counts are wrong
    document["skip_nights"].append({"night": "2030-01-01", "reason": "en natt till"})
    document["pauses"].append({"start": "2030-02-01", "end": "2030-02-03", "reason": "x"})
    reply = put_plan(chef, rid, document)
    assert reply.status_code == 422, reply.text
    found = {(d["field"], d["code"]): d["params"] for d in reply.json()["detail"]}
    assert found == {
        ("pauses", "too-many"): {"max": MAX_ITEMS["pauses"], "value": MAX_ITEMS["pauses"] + 1},
        ("skip_nights", "too-many"): {"max": MAX_ITEMS["skip_nights"],
                                      "value": MAX_ITEMS["skip_nights"] + 1}}
    assert chef.get(f"/api/recipients/{rid}").json()["plan_version"] == before["plan_version"]


def test_a_reason_no_signature_can_cover_is_a_422_not_a_500(
        svc: Service, chef: Person) -> None:
    rid = svc.world["cameras"][0]["recipient_id"]
    before = chef.get(f"/api/recipients/{rid}").json()
    body = json.dumps(dict(before["plan"], skip_nights=[
        {"night": "2030-01-01", "reason": "borta \ud800"}]))  # ASCII: "\\ud800" escaped
    reply = chef.http.put(f"/api/recipients/{rid}/plan", content=body.encode("ascii"),
                          headers={"X-CSRF-Token": chef.csrf,
                                   "Content-Type": "application/json"})
    assert reply.status_code == 422, reply.text
    # refused where the body is read (any JSON body) or, behind it, by the plan's own rule
    [problem] = reply.json()["detail"]
    assert "unicode" in problem["code"], problem
    assert chef.get(f"/api/recipients/{rid}").json()["plan_version"] == before["plan_version"]


def test_a_camera_that_refuses_the_plan_is_not_reported(svc: Service, chef: Person) -> None:
    cam = svc.world["cameras"][2]
    rid, camera_id = cam["recipient_id"], cam["camera_id"]
    eventually(lambda: online(chef, rid), 30, "camera online")
    log = svc.agent_dir(camera_id) / "agent.log"
    eventually(lambda: "plan-bad-signature" in log.read_text(), 30, "the link's plan refused")
    plan = chef.get(f"/api/recipients/{rid}").json()["plan"]
    started = time.monotonic()
    reply = put_plan(chef, rid, dict(plan, max_lookin_seconds=plan["max_lookin_seconds"] + 1))
    took = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    assert reply.json()["changed"] and reply.json()["pushed_to"] == []
    assert took < PLAN_ACK_SECONDS, "the refusal answered the push, not the time limit"
    assert agent_plan(svc, camera_id) == {}, "the device holds no plan"


class SilentAgent:
    """An enrolled camera whose link authenticates and then never answers a plan."""

    def __init__(self, svc: Service, camera: dict[str, Any]) -> None:
        self.svc = svc
        self.camera = camera
        self.identity = Identity(Ed25519PrivateKey.generate())
        self.plans: list[dict[str, Any]] = []
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        enrolled = await asyncio.to_thread(httpx.post, self.svc.url + "/api/agent/enrol", json={
            "code": self.camera["code"], "public_key": self.identity.public_key_b64})
        assert enrolled.status_code == 200, enrolled.text
        ws = await connect(self.svc.url.replace("http", "ws") + "/ws/agent")
        challenge = decode_message(await ws.recv(), SERVICE_TYPES)
        assert challenge["type"] == CHALLENGE
        camera_id = self.camera["camera_id"]
        await ws.send(encode_message(AUTH, camera=camera_id, version="silent",
                                     signature=self.identity.sign(link_challenge_message(
                                         camera_id, challenge["nonce"]))))
        assert decode_message(await ws.recv(), SERVICE_TYPES)["type"] == WELCOME
        self._ws = ws
        self._task = asyncio.ensure_future(self._read(ws))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                msg = decode_message(raw, SERVICE_TYPES)
                if msg["type"] == PLAN:
                    self.plans.append(msg)  # and says nothing

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._ws is not None:
            await self._ws.close()


@pytest_asyncio.fixture
async def silent(svc: Service) -> AsyncIterator[SilentAgent]:
    agent = SilentAgent(svc, svc.world["cameras"][1])
    await agent.start()
    try:
        yield agent
    finally:
        await agent.close()


async def test_a_camera_that_does_not_answer_is_not_reported(
        svc: Service, chef: Person, silent: SilentAgent) -> None:
    rid = silent.camera["recipient_id"]
    await asyncio.to_thread(eventually, lambda: online(chef, rid), 30, "silent camera online")
    plan = (await asyncio.to_thread(chef.get, f"/api/recipients/{rid}")).json()["plan"]
    started = time.monotonic()
    reply = await asyncio.to_thread(put_plan, chef, rid,
                                    dict(plan, max_lookin_seconds=plan["max_lookin_seconds"] + 1))
    took = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    saved = reply.json()
    assert saved["changed"] and saved["pushed_to"] == []
    assert [m["version"] for m in silent.plans][-1] == saved["version"], "it was sent"
    # bounded: the save waited for the answer, and no longer than the limit (+ 3 s slack)
    assert PLAN_ACK_SECONDS - 0.5 <= took <= PLAN_ACK_SECONDS + 3, took
    assert online(chef, rid), "the link is still up: not answering is not a reason to cut it"
