"""Two real `supervision serve` nodes on one PostgreSQL database with a real agent: what is
asked of either node reaches the camera's link on the other, and every patrol socket on
every node hears of every alert at once.

- a look-in started through the node that does not hold the camera's link plays;
- "end" and "revoke" through that node stop the picture at once;
- a patrol socket on node B gets an alert raised on node A, and its acknowledgement on A,
  within a second each;
- the node holding the link (and leading) is SIGKILLed: the agent redials the other
  address it knows, the survivor takes over the duties, a look-in plays through it, and
  its patrol socket keeps hearing;
- in Chromium: the staff page on node A plays the camera linked to node B, and the patrol
  page on node B shows the Needs help raised on A within 2 s.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.browser.conftest import login
from tests.harness import Service, eventually, make_service
from tests.nodes.conftest import asql, extra_node, stop_all
from tests.people import Person
from tests.viewer import look

pytestmark = pytest.mark.postgres


def patrol_socket(node: Service, patrol: Person) -> Any:
    cookie = "; ".join(f"{k}={v}" for k, v in patrol.http.cookies.items())
    return connect(node.url.replace("http://", "ws://") + "/ws/patrol",
                   additional_headers={"Cookie": cookie}, origin=node.url)


async def alert_message(ws: ClientConnection, alert_id: int, state: str,
                        timeout: float = 5) -> float:
    """Wait for the alert in ``state`` on this socket (repeats ignored); when it came."""
    deadline = time.monotonic() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if msg["type"] == "alert" and msg["alert"]["id"] == alert_id \
                and msg["alert"]["state"] == state and not msg.get("repeat"):
            return time.monotonic()


async def stopped(seen: Any, within: float = 2.0) -> float:
    """Seconds from now until frames stop arriving (none for 1 s); fails after ``within``."""
    began = time.monotonic()
    while time.monotonic() - began < within + 1:
        await asyncio.sleep(0.1)
        if seen.frames and time.monotonic() - seen.frames[-1] > 1.0:
            return seen.frames[-1] - began
    raise AssertionError("the picture went on")


def two_nodes(tmp_path: Path, pg_url: str, **settings: str) -> tuple[Service, Service]:
    a = make_service(tmp_path / "a", pg_url, **settings)
    a.start()
    b = extra_node(a, tmp_path / "b", key_from=a)
    b.start()
    return a, b


async def holder(pg_url: str, camera_id: str, wanted: Any, timeout: float = 15) -> str | None:
    """The node holding the camera's link, once ``wanted(it)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await asql(pg_url, "SELECT link_node FROM cameras WHERE id = $1", camera_id)
        node = rows[0][0] if rows else None
        if wanted(node):
            return node
        if time.monotonic() > deadline:
            raise TimeoutError(f"link of {camera_id}: {node}")
        await asyncio.sleep(0.1)


def port_of(node: str | None) -> int | None:
    return int(node.split(":")[1]) if node else None


async def test_lookin_end_revoke_and_alerts_across_nodes(pg_url: str, tmp_path: Path) -> None:
    a, b = two_nodes(tmp_path, pg_url)
    try:
        camera = a.world["cameras"][0]
        b.enrol(camera)  # the agent knows node B only: its link is on B
        b.start_agent(camera["camera_id"])
        await holder(pg_url, camera["camera_id"], lambda n: port_of(n) == b.port)
        staff = Person(a.url, "natt")
        admin = Person(a.url, "admin")
        patrol_on_a = Person(a.url, "patrull")
        patrol_on_b = Person(b.url, "patrull")
        checks = await asyncio.to_thread(staff.wait_open_checks, 1)
        check_id = checks[0]["id"]

        # a look-in through A plays from the agent linked to B; "end" through A stops it
        first = await look(staff, check_id)
        assert len(first.frames) >= 1
        ended = await asyncio.to_thread(staff.post, f"/api/lookins/{first.session}/end")
        assert ended.status_code == 204, ended.text
        assert await stopped(first) < 1.5
        await first.close()

        async with patrol_socket(b, patrol_on_b) as ws:
            assert json.loads(await ws.recv())["type"] == "snapshot"
            second = await look(staff, check_id)
            raised = await asyncio.to_thread(staff.post, f"/api/checks/{check_id}/outcome",
                                             {"outcome": "needs-help",
                                              "session": second.session})
            sent = time.monotonic()
            assert raised.status_code == 200, raised.text
            alert_id = raised.json()["alert"]
            heard = await alert_message(ws, alert_id, "new")
            acked = await asyncio.to_thread(patrol_on_a.post, f"/api/alerts/{alert_id}/state",
                                            {"state": "acknowledged"})
            acked_at = time.monotonic()
            assert acked.status_code == 200, acked.text
            heard_ack = await alert_message(ws, alert_id, "acknowledged")
            assert heard - sent < 1.0, f"new alert on B after {heard - sent:.3f} s"
            assert heard_ack - acked_at < 1.0, f"ack on B after {heard_ack - acked_at:.3f} s"

            # revoke through A: the link on B is cut, the picture stops at once
            cut = await asyncio.to_thread(admin.post,
                                          f"/api/cameras/{camera['camera_id']}/revoke")
            assert cut.status_code == 200 and cut.json()["link_closed"] is True, cut.text
            assert await stopped(second) < 1.5
            await second.close()
        await holder(pg_url, camera["camera_id"], lambda n: n is None)
        for node in (a, b):
            assert "Traceback" not in node.log.read_text(), node.log.read_text()[-3000:]
    finally:
        stop_all([b, a])


async def test_node_holding_the_link_dies_and_the_other_carries_on(
        pg_url: str, tmp_path: Path) -> None:
    a, b = two_nodes(tmp_path, pg_url, agent_offline_seconds="20")
    try:
        camera = a.world["cameras"][0]
        a.enrol(camera)  # linked on A first; it knows B as well
        a.configure_agent(camera["camera_id"], servers=[b.url])
        a.start_agent(camera["camera_id"])
        await holder(pg_url, camera["camera_id"], lambda n: port_of(n) == a.port)
        staff = Person(b.url, "natt")
        patrol = Person(b.url, "patrull")
        checks = await asyncio.to_thread(staff.wait_open_checks, 1)

        a.kill()  # SIGKILL: its lock, its links and its listener go with it
        killed = time.monotonic()
        await holder(pg_url, camera["camera_id"], lambda n: port_of(n) == b.port)
        redialled = time.monotonic() - killed
        async with patrol_socket(b, patrol) as ws:
            assert json.loads(await ws.recv())["type"] == "snapshot"
            seen = await look(staff, checks[0]["id"])
            raised = await asyncio.to_thread(
                staff.post, f"/api/checks/{checks[0]['id']}/outcome",
                {"outcome": "needs-help", "session": seen.session})
            assert raised.status_code == 200, raised.text
            await alert_message(ws, raised.json()["alert"], "new")
            await seen.close()
        eventually(lambda: "this node leads" in b.log.read_text(), 10, "take-over")
        taken = time.monotonic() - killed
        counts = (await asql(pg_url, "SELECT count(*), count(DISTINCT check_id) FROM alerts"))[0]
        assert counts[0] == counts[1], f"an alert doubled: {counts}"
        assert "Traceback" not in b.log.read_text(), b.log.read_text()[-3000:]
        print(f"agent on the survivor after {redialled:.1f} s; duties held by it "
              f"within {taken:.1f} s of the SIGKILL")
    finally:
        stop_all([b, a])


def test_chromium_looks_in_through_one_node_and_the_patrol_page_on_the_other_hears(
        pg_url: str, tmp_path: Path, browser: Any) -> None:
    """The staff page in Chromium on node A, the camera linked to node B, the patrol page
    in Chromium on node B: the video plays, Needs help reaches the patrol within 2 s."""
    a, b = two_nodes(tmp_path, pg_url)
    try:
        camera = a.world["cameras"][0]
        b.enrol(camera)
        b.start_agent(camera["camera_id"])
        Person(a.url, "natt").wait_open_checks(1)
        staff_ctx, patrol_ctx = browser.new_context(), browser.new_context()
        try:
            patrol = patrol_ctx.new_page()
            login(patrol, b.url, "patrull")
            patrol.wait_for_selector("#link-state.ok")
            staff = staff_ctx.new_page()
            login(staff, a.url, "natt")
            staff.locator("li.check.state-open button.start").first.click()
            staff.wait_for_function(
                "() => { const v = document.getElementById('lookin-video');"
                " return v && v.videoWidth > 0 && v.currentTime > 0.5; }", timeout=15_000)
            staff.click("button[data-outcome=needs-help]")
            clicked = time.monotonic()
            patrol.wait_for_function("name => document.body.innerText.includes(name)",
                                     arg=camera["recipient"], timeout=2000)
            assert time.monotonic() - clicked < 2.0
        finally:
            staff_ctx.close()
            patrol_ctx.close()
    finally:
        stop_all([b, a])
