"""The webhook through the real service process: signed, retried with backoff, listed for
admins, and still delivered after a SIGKILL (the outbox is in the database)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervision import webhook
from tests.harness import Service, make_service
from tests.people import Person
from tests.viewer import see
from tests.webhook.conftest import SECRET, Receiver, signature_ok

FAST = {"webhook_secret": SECRET, "webhook_poll_seconds": "0.2",
        "webhook_backoff_base_seconds": "0.5", "webhook_backoff_cap_seconds": "5"}


@pytest.fixture
def service_for(tmp_path: Path) -> Iterator[Callable[[str], Service]]:
    """A service (demo data; agents start when a test needs a look-in) sending its webhook
    to the given URL."""
    made: list[Service] = []

    def start(url: str) -> Service:
        svc = make_service(tmp_path / "svc", webhook_url=url, **FAST)
        made.append(svc)
        svc.start()
        return svc

    yield start
    for svc in made:
        svc.stop()


def needs_help(svc: Service) -> int:
    """A real Needs help: the cameras link, and staff see the picture before pressing."""
    for cam in svc.world["cameras"]:
        if cam["camera_id"] not in svc.agents:
            svc.enrol(cam, source=f"synthetic:{cam['recipient_id']}")
            svc.start_agent(cam["camera_id"])
    staff = Person(svc.url, "natt")
    check = staff.wait_open_checks(1)[0]["id"]
    session = asyncio.run(see(staff, check))
    reply = staff.post(f"/api/checks/{check}/outcome",
                       {"outcome": "needs-help", "session": session})
    assert reply.status_code == 200, reply.text
    return int(reply.json()["alert"])


def deliveries(admin: Person) -> list[dict[str, Any]]:
    reply = admin.get("/api/webhook/deliveries")
    assert reply.status_code == 200, reply.text
    rows: list[dict[str, Any]] = reply.json()
    return rows


def wait_delivery(admin: Person, ok: Callable[[dict[str, Any]], bool],
                  timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [r for r in deliveries(admin) if ok(r)]
        if rows:
            return rows[0]
        time.sleep(0.1)
    raise TimeoutError(f"no such delivery in {deliveries(admin)}")


def seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def test_signed_alert_retried_with_backoff_and_listed(
        receiver: Receiver, service_for: Callable[[str], Service]) -> None:
    receiver.fail_first = 2
    svc = service_for(receiver.start().url)
    alert_id = needs_help(svc)

    got = receiver.wait(3)
    assert [g.answered for g in got] == [500, 500, 200]
    first = got[0]
    # the same delivery, byte for byte, each attempt signed afresh
    assert {g.headers["x-nattillsyn-delivery"] for g in got} == {
        first.headers["x-nattillsyn-delivery"]}
    assert {g.body for g in got} == {first.body}
    for g in got:
        assert g.headers["x-nattillsyn-signature"].startswith("sha256=")
        assert signature_ok(SECRET, g), "the receiver can verify it"
        assert abs(int(g.headers["x-nattillsyn-timestamp"]) - g.at) < 5
        assert g.headers["x-nattillsyn-event"] == "alert.raised"
    # a receiver holding another secret, a body changed on the way, a replay: all caught
    assert not signature_ok("not-the-secret", first)
    tampered = first.body.replace(b'"priority":1', b'"priority":3')
    assert tampered != first.body
    stamp, sig = first.headers["x-nattillsyn-timestamp"], first.headers["x-nattillsyn-signature"]
    assert webhook.verify(SECRET, stamp, first.body, sig, now=first.at)
    assert not webhook.verify("not-the-secret", stamp, first.body, sig, now=first.at)
    assert not webhook.verify(SECRET, stamp, tampered, sig, now=first.at)
    assert not webhook.verify(SECRET, stamp, first.body, sig, now=first.at + 3600)

    body = json.loads(first.body)
    assert first.body == json.dumps(body, sort_keys=True, separators=(",", ":"),
                                    ensure_ascii=False).encode(), "canonical JSON"
    assert body["delivery"] == int(first.headers["x-nattillsyn-delivery"])
    assert body["event"] == "alert.raised"
    alert = body["alert"]
    assert (alert["id"], alert["reason"], alert["priority"], alert["state"]) == (
        alert_id, "needs-help", 1, "new")
    assert alert["recipient"]["address"]
    assert b"Portkod" not in first.body and b"access" not in first.body, "no door codes"
    # the receiver saw the backoff: at least half the nominal wait (jitter), 0.5 s then 1 s
    assert got[1].at - got[0].at >= 0.25 - 0.05
    assert got[2].at - got[1].at >= 0.5 - 0.05

    # the admin list: delivered on the third attempt, every attempt and its wait recorded
    admin = Person(svc.url, "admin")
    row = wait_delivery(admin, lambda r: r["status"] == "delivered")
    assert (row["id"], row["alert_id"], row["event"]) == (body["delivery"], alert_id,
                                                          "alert.raised")
    assert (row["attempts"], row["last_status"], row["last_error"]) == (3, 200, None)
    assert row["next_attempt_at"] is None and row["delivered_at"]
    history = row["history"]
    assert [h["status"] for h in history] == [500, 500, 200]
    assert history[0]["error"].startswith("HTTP 500")
    assert 0.25 <= seconds(history[0]["at"], history[0]["next"]) <= 0.5 + 0.01
    assert 0.5 <= seconds(history[1]["at"], history[1]["next"]) <= 1.0 + 0.01
    assert history[2]["next"] is None

    page = admin.get("/admin/webhook")  # the same, as a page (Swedish by default)
    assert page.status_code == 200 and "alert.raised" in page.text and "levererad" in page.text

    # only admins see it
    assert Person(svc.url, "patrull").get("/api/webhook/deliveries").status_code == 403
    assert Person(svc.url, "patrull").get("/admin/webhook").status_code == 403
    assert Person(svc.url, "chef").get("/api/webhook/deliveries").status_code == 403
    assert httpx.get(f"{svc.url}/api/webhook/deliveries").status_code == 401

    # the patrol acknowledges: that goes out too, after the alert it belongs to
    patrol = Person(svc.url, "patrull")
    reply = patrol.post(f"/api/alerts/{alert_id}/state", {"state": "acknowledged"})
    assert reply.status_code == 200, reply.text
    ack = receiver.wait(4)[3]
    assert ack.headers["x-nattillsyn-event"] == "alert.acknowledged"
    assert signature_ok(SECRET, ack)
    acked = json.loads(ack.body)
    assert acked["alert"]["state"] == "acknowledged"
    assert acked["alert"]["acknowledged_by"] == "patrull"
    assert acked["delivery"] > body["delivery"]
    assert [r["event"] for r in deliveries(admin)[:2]] == ["alert.acknowledged", "alert.raised"]


def test_pending_delivery_survives_sigkill(receiver: Receiver,
                                           service_for: Callable[[str], Service]) -> None:
    svc = service_for(receiver.url)  # nobody listens there yet
    alert_id = needs_help(svc)
    pending = wait_delivery(Person(svc.url, "admin"), lambda r: r["attempts"] >= 1)
    assert pending["status"] == "retrying" and pending["last_status"] is None
    assert "Connect" in pending["last_error"]

    svc.kill()  # SIGKILL with the delivery still owed
    receiver.start()
    svc.start()

    got = receiver.wait(1)[0]
    assert signature_ok(SECRET, got)
    assert int(got.headers["x-nattillsyn-delivery"]) == pending["id"]
    assert json.loads(got.body)["alert"]["id"] == alert_id
    done = wait_delivery(Person(svc.url, "admin"),
                         lambda r: r["id"] == pending["id"] and r["status"] == "delivered")
    assert done["attempts"] >= 2 and done["history"][-1]["status"] == 200
    time.sleep(0.6)  # a few more runs of the job: nothing goes out again once delivered
    assert len(receiver.got) == 1
