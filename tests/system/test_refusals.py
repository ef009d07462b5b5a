"""Refusals at the service: clear errors, nothing changed, the camera never opened."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from aiortc import RTCPeerConnection

from tests.conftest import Service
from tests.people import Person


def audit_kinds(svc: Service) -> list[str]:
    db = sqlite3.connect(svc.root / "test.db")
    try:
        return [k for (k,) in db.execute("SELECT kind FROM audit_events ORDER BY id")]
    finally:
        db.close()


async def real_offer() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


def test_refusals_never_open_a_camera(service: Service) -> None:
    staff = Person(service.url, "natt")
    open_checks = staff.wait_open_checks(1)
    planned = [c for c in staff.rounds() if c["state"] == "planned"]
    assert planned, "the demo has checks whose window has not opened yet"
    offer = asyncio.run(real_offer())
    target = open_checks[0]["id"]

    # Start outside the check's window
    reply = staff.post(f"/api/checks/{planned[0]['id']}/lookin", {"offer": offer})
    assert reply.status_code == 409
    assert reply.json()["detail"]["code"] == "error.outside_window"
    assert reply.json()["detail"]["message"] == "Tillsynen är inte öppen just nu."  # sv default
    english = Person(service.url, "kvall")
    english.http.headers["Accept-Language"] = "en-GB,en;q=0.8"
    assert english.post(f"/api/checks/{planned[0]['id']}/lookin", {"offer": offer}
                        ).json()["detail"]["message"] == "This check is not open now."

    # Start by a patrol user, a care manager, an admin: wrong role
    for username in ("patrull", "chef", "admin"):
        reply = Person(service.url, username).post(f"/api/checks/{target}/lookin",
                                                   {"offer": offer})
        assert reply.status_code == 403, (username, reply.text)

    # anonymous, and a staff request without the CSRF token
    import httpx
    assert httpx.post(f"{service.url}/api/checks/{target}/lookin",
                      json={"offer": offer}).status_code == 401
    assert staff.post(f"/api/checks/{target}/lookin", {"offer": offer},
                      csrf=False).status_code == 403

    # garbled offers: schema refusal, then an agent refusal of an SDP it cannot parse
    assert staff.post(f"/api/checks/{target}/lookin", {"offer": 5}).status_code == 422
    assert staff.post(f"/api/checks/{target}/lookin", {}).status_code == 422
    assert staff.post("/api/checks/999999/lookin", {"offer": offer}).status_code == 404
    reply = staff.post(f"/api/checks/{target}/lookin", {"offer": "v=0 this is not SDP"})
    assert reply.status_code == 409, reply.text
    assert reply.json()["detail"]["code"] == "error.agent_refused"

    kinds = audit_kinds(service)
    assert "camera.opened" not in kinds
    assert kinds.count("lookin.requested") == 1, "only the garbled offer got as far as a ticket"
    checks = {c["id"]: c["state"] for c in staff.rounds()}
    assert checks[target] == "open" and checks[planned[0]["id"]] == "planned"


def test_second_viewer_is_told_who_is_looking(service: Service) -> None:
    nora = Person(service.url, "natt")
    kalle = Person(service.url, "kvall")
    target = nora.wait_open_checks(1)[0]["id"]
    first = nora.post(f"/api/checks/{target}/lookin", {"offer": asyncio.run(real_offer())})
    assert first.status_code == 200, first.text
    second = kalle.post(f"/api/checks/{target}/lookin", {"offer": asyncio.run(real_offer())})
    assert second.status_code == 409
    detail = second.json()["detail"]
    assert detail["code"] == "error.being_viewed" and detail["viewer"] == "Nora Natt"
    assert "Nora Natt" in detail["message"]
    session = first.json()["session"]
    assert nora.post(f"/api/lookins/{session}/end").status_code == 204
    assert kalle.get(f"/api/lookins/{session}").status_code == 404, "not Kalle's look-in"
    status: dict[str, object] = {}
    for _ in range(50):  # the agent reports the end; the service records it
        status = nora.get(f"/api/lookins/{session}").json()
        if status["end_reason"]:
            break
        time.sleep(0.1)
    assert status["end_reason"] == "ended" and status["ended_at"]
