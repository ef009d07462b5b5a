"""Dispatch alerts reach patrol clients at least once until acknowledged, including
clients that were offline when the alert was raised."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import Service
from tests.people import Person
from tests.viewer import see


def ws_url(svc: Service) -> str:
    return svc.url.replace("http://", "ws://") + "/ws/patrol"


def cookie_header(person: Person) -> str:
    return "; ".join(f"{k}={v}" for k, v in person.http.cookies.items())


async def next_alert(ws: ClientConnection, kind: str = "alert",
                     timeout: float = 15) -> dict[str, Any]:
    """The next message of this type: ``alert`` (one alert's news) or ``alerts`` (the
    re-send)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if msg["type"] == kind:
            return msg


async def test_missed_alerts_arrive_on_reconnect_and_repeat_until_acknowledged(
        service: Service) -> None:
    staff = Person(service.url, "natt")
    patrol = Person(service.url, "patrull")
    checks = await asyncio.to_thread(staff.wait_open_checks, 1)
    headers = {"Cookie": cookie_header(patrol)}

    async with connect(ws_url(service), additional_headers=headers, origin=service.url) as ws:
        snapshot = json.loads(await ws.recv())
        assert snapshot == {"type": "snapshot", "alerts": []}
    # the patrol phone is offline when staff flag Needs help
    session = await see(staff, checks[0]["id"])
    reply = await asyncio.to_thread(staff.post, f"/api/checks/{checks[0]['id']}/outcome",
                                    {"outcome": "needs-help", "session": session})
    assert reply.status_code == 200
    alert_id = reply.json()["alert"]
    async with connect(ws_url(service), additional_headers=headers, origin=service.url) as ws:
        snapshot = json.loads(await ws.recv())
        assert [a["id"] for a in snapshot["alerts"]] == [alert_id]
        alert = snapshot["alerts"][0]
        assert alert["reason"] == "needs-help" and alert["priority"] == 1
        assert alert["access_info"], "door code shown while active, to patrol"
        again = await next_alert(ws, "alerts")  # re-sent while unacknowledged, all in one
        assert [a["id"] for a in again["alerts"]] == [alert_id] and again.get("repeat")
        acked = await asyncio.to_thread(patrol.post, f"/api/alerts/{alert_id}/state",
                                        {"state": "acknowledged"})
        assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
        update = await next_alert(ws)
        assert update["alert"]["state"] == "acknowledged"
        assert update["alert"]["acknowledged_by"] == "patrull"
        # walk it to resolved; skipping back is refused
        for state in ("on-the-way", "arrived"):
            assert (await asyncio.to_thread(patrol.post, f"/api/alerts/{alert_id}/state",
                                            {"state": state})).status_code == 200
        back = await asyncio.to_thread(patrol.post, f"/api/alerts/{alert_id}/state",
                                       {"state": "acknowledged"})
        assert back.status_code == 409
        done = await asyncio.to_thread(patrol.post, f"/api/alerts/{alert_id}/state",
                                       {"state": "resolved", "note": "Fallen, helped up."})
        assert done.status_code == 200 and "access_info" not in done.json()
        # no further repeats once acknowledged
        repeats = []
        try:
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 11))
                repeats.append(msg)
        except TimeoutError:
            pass
        assert not [m for m in repeats if m.get("repeat")]
