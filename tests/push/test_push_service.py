"""Web Push end to end, against the real service process and a push service played on
loopback: subscriptions made as browsers make them, the service's real push requests
(VAPID checked, payload decrypted with http-ece), who gets what (patrol every alert, a
shift lead of any role the escalations, nobody else anything), a failed push retried and
delivered once, a gone subscription forgotten, repeats and the quiet "settled" push, and
no door code, name, note or care information in any payload."""

from __future__ import annotations

import time
from typing import Any

from tests.harness import Service
from tests.people import Person
from tests.push.conftest import EXTRA, Device, Push, PushService

SECRETS = ("Portkod", "1234", "nyckelgömma", "Nyckelgömma", "kod 9911", "4321")
NAMES = ("Astrid", "Bertil", "Cecilia", "Lindqvist", "Holm")
NOTE = "Hon sa att hon hade ont i bröstet"
CARE = "Hör dåligt, rullator"


def subscribe(person: Person, device: Device) -> int:
    reply = person.post("/api/push/subscriptions", device.subscription())
    assert reply.status_code == 201, reply.text
    return int(reply.json()["id"])


def open_check(staff: Person, timeout: float = 30, *, extra: bool = False) -> dict[str, Any]:
    """An open check of a demo recipient, or (``extra``) of one of ``EXTRA``."""
    names = {name for name, _, _ in EXTRA}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = [c for c in staff.rounds()
                 if c["state"] == "open" and (c["recipient"] in names) == extra]
        if ready:
            return ready[0]
        time.sleep(0.2)
    raise TimeoutError("no open check")


def notices(pushes: list[Push], device: str, alert: int) -> list[tuple[Push, dict[str, Any]]]:
    """(push, message) for each message about ``alert`` that reached ``device``: a push
    carries one, or several (alerts due together for one device travel together)."""
    return [(p, m) for p in pushes if p.device == device and p.answered < 300
            for m in p.items if m["alert"] == alert]


def events(pushes: list[Push], device: str, alert: int) -> list[str]:
    return [m["event"] for _, m in notices(pushes, device, alert)]


def test_pushes_reach_the_right_devices_verified_decrypted_and_saying_only_what_and_where(
        world: tuple[Service, PushService]) -> None:
    svc, played = world
    patrol, staff, admin, chef = (Person(svc.url, u) for u in ("patrull", "natt", "admin", "chef"))
    lead_id = next(u["id"] for u in admin.get("/api/users").json() if u["username"] == "kvall")
    made_lead = admin.http.patch(f"/api/users/{lead_id}", json={"shift_lead": True},
                                 headers={"X-CSRF-Token": admin.csrf})
    assert made_lead.status_code == 200, made_lead.text
    kvall = Person(svc.url, "kvall")  # a new role flag ends the old session

    phone, flaky, gone = played.device("phone"), played.device("flaky"), played.device("gone")
    lead, manager = played.device("lead"), played.device("manager")
    played.answers = {"flaky": [500], "gone": [410]}
    for person, device in ((patrol, phone), (patrol, flaky), (patrol, gone), (kvall, lead),
                           (chef, manager)):
        subscribe(person, device)
    # a phone whose session signed out hears nothing more, as its page hears nothing more
    leaving = Person(svc.url, "patrull")
    subscribe(leaving, played.device("left"))
    assert leaving.http.post("/logout", data={"csrf": leaving.csrf}).status_code == 303
    # the service POSTs only to the push services it knows, and never to a lookalike
    bad = played.device("bad").subscription() | {"endpoint": "https://evil.example/push/x"}
    refused = patrol.post("/api/push/subscriptions", bad)
    assert refused.status_code == 422 and refused.json()["detail"]["code"] == "error.push_endpoint"
    key = patrol.get("/api/push/key").json()["public_key"]

    check = open_check(staff)
    recipient = next(r for r in chef.get("/api/recipients").json()
                     if r["name"] == check["recipient"])
    changed = chef.http.patch(f"/api/recipients/{recipient['id']}", json={
        "care_notes": CARE, "contacts": [{"name": "Lisa", "relation": "dotter",
                                          "phone": "070-123 45 67"}]},
        headers={"X-CSRF-Token": chef.csrf})
    assert changed.status_code == 200, changed.text
    asked = time.time()
    reply = staff.post(f"/api/checks/{check['id']}/outcome",
                       {"outcome": "technical-failure", "note": NOTE})
    assert reply.status_code == 200, reply.text
    alert = int(reply.json()["alert"])

    got = played.wait(lambda g: events(g, "phone", alert) and events(g, "flaky", alert))
    first, msg = notices(got, "phone", alert)[0]
    assert first.at - asked < 2.0, "pushed at once, not at the next poll"
    assert first.vapid_key == key, "signed with the service's VAPID key, the one the page got"
    assert first.headers.get("topic", f"alert-{alert}") == f"alert-{alert}"
    assert first.headers["urgency"] == "high"
    assert msg["event"] == "raised" and msg["reason"] == "technical-failure"
    assert msg["address"] == check["address"] and msg["body"] == check["address"]
    assert msg["url"] == f"/patrol#alert-{alert}" and msg["ack"]
    # the third party relays it and the locked phone shows it: what and where, nothing more
    for word in (*SECRETS, *NAMES, NOTE, CARE, "Lisa", "070", "natt", "Nora"):
        assert word not in str(msg), (word, msg)
        assert word not in str(first.message), (word, first.message)

    # a 410 forgets the subscription; a 500 is tried again and delivered once
    assert [p.answered for p in played.pushes("gone", delivered=False)] == [410]
    flaky_got = played.pushes("flaky", delivered=False)
    assert [p.answered for p in flaky_got][:2] == [500, 201], [p.answered for p in flaky_got]
    # nobody but patrol (and, later, shift leads) hears a new alert
    assert not events(played.pushes(), "lead", alert) and not played.pushes("manager")
    assert not played.pushes("left"), "signed out: no push"

    # not acknowledged: pushed again (same tag: it replaces), then escalated to the lead
    got = played.wait(lambda g: "escalated" in events(g, "lead", alert)
                      and "repeat" in events(g, "phone", alert), timeout=25)
    assert "escalated" in events(got, "phone", alert)
    assert events(got, "lead", alert)[0] == "escalated", "a lead hears only escalations"
    assert not played.pushes("manager"), "a manager who is not shift lead hears nothing"
    escalated = notices(got, "lead", alert)[0][1]
    assert escalated["escalated"] is True and escalated["address"]

    acked = patrol.post(f"/api/alerts/{alert}/state", {"state": "acknowledged"})
    assert acked.status_code == 200, acked.text
    got = played.wait(lambda g: "settled" in events(g, "phone", alert)
                      and "settled" in events(g, "lead", alert))
    carrier, settled = next((p, m) for p, m in notices(got, "phone", alert)
                            if m["event"] == "settled")
    assert "patrull" in settled["title"]
    # quiet unless it travels with news that is not
    loud = any(m["event"] != "settled" for m in carrier.items)
    assert carrier.headers["urgency"] == ("high" if loud else "normal")

    # nothing doubled: each delivery arrived once; the gone device was never tried again
    time.sleep(1.5)
    delivered = [m["delivery"] for p in played.pushes() for m in p.items]
    assert len(delivered) == len(set(delivered)), delivered
    assert len(played.pushes("gone", delivered=False)) == 1
    assert played.errors == []
    # acknowledged: no more repeats
    count = len(events(played.pushes(), "phone", alert))
    time.sleep(3)  # longer than the repeat job's turn (2.5 s); a due repeat would show
    assert events(played.pushes(), "phone", alert)[count:] == []

    # at the door: everything the patrol needs while the dispatch is active ...
    active = next(a for a in patrol.get("/api/alerts").json() if a["id"] == alert)
    assert active["access_info"] and active["care_notes"] == CARE
    assert active["contacts"] == [{"name": "Lisa", "relation": "dotter", "phone": "070-123 45 67"}]
    assert active["staff_note"] == NOTE and active["raised_by"] == "natt"
    # ... and none of it once resolved; the patrol's note goes to staff and the manager
    done = patrol.post(f"/api/alerts/{alert}/state",
                       {"state": "resolved", "note": "Föll, hjälpt upp, ringt dottern"})
    assert done.status_code == 200, done.text
    assert not {"access_info", "contacts", "care_notes"} & done.json().keys()
    assert alert not in [a["id"] for a in patrol.get("/api/alerts").json()]
    tonight = next(a for a in patrol.get("/api/alerts/tonight").json() if a["id"] == alert)
    assert tonight["note"] == "Föll, hjälpt upp, ringt dottern"
    assert not {"access_info", "contacts", "care_notes"} & tonight.keys()
    row = next(c for c in staff.rounds() if c["id"] == check["id"])
    assert row["alert"] == "resolved" and row["alert_note"] == "Föll, hjälpt upp, ringt dottern"
    page = chef.get(f"/manage/recipients/{recipient['id']}")
    assert page.status_code == 200 and "Föll, hjälpt upp, ringt dottern" in page.text


def test_subscriptions_are_checked_and_forgotten_on_request(
        world: tuple[Service, PushService]) -> None:
    svc, played = world
    patrol = Person(svc.url, "patrull")
    device = played.device("spare")
    for broken in ({**device.subscription(), "keys": {"p256dh": "short", "auth": "x"}},
                   {**device.subscription(), "endpoint": "http://10.0.0.1/push/x"},
                   {**device.subscription(), "endpoint": "https://user:pw@fcm.googleapis.com/x"}):
        reply = patrol.post("/api/push/subscriptions", broken)
        assert reply.status_code == 422, reply.text
    assert patrol.post("/api/push/subscriptions", device.subscription(), csrf=False
                       ).status_code == 403
    first, again = subscribe(patrol, device), subscribe(patrol, device)
    assert first == again, "one row per device"
    gone = patrol.post("/api/push/unsubscribe", {"endpoint": device.endpoint})
    assert gone.status_code == 204
    manifest = patrol.get("/manifest.webmanifest")
    assert manifest.status_code == 200 and manifest.json()["display"] == "standalone"
    worker = patrol.get("/sw.js")
    assert worker.status_code == 200 and worker.headers["service-worker-allowed"] == "/"
    assert "javascript" in worker.headers["content-type"]
