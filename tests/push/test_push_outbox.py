"""The push sender's rounds on both databases, against the played push service (VAPID
checked, bodies decrypted with http-ece): a device with several rows due gets them in one
push of at most 4096 bytes (``{"v": 2, "items": [...]}``, no Topic), one alert alone keeps
its Topic, and every row a push carried ends recorded: delivered, retried after a failure
and then delivered, forgotten with a gone device (audited once), or dropped when its alert
is no longer new. No door code, no name, no note in any of it. One VAPID token serves
every round."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from supervision import push, vapid
from supervision.alert_states import AlertState
from supervision.config import Settings
from supervision.db import Database, migrate
from supervision.models import Alert, AuditEvent, PushDelivery, PushSubscription, Recipient, User
from tests.push.conftest import PushService

SECRETS = ("Portkod", "4711", "Astrid", "Lindqvist", "ont i bröstet", "rullator")


def _item(row: int, alert: int, size: int) -> push._Item:
    body = b'{"delivery":%d,"alert":%d,"pad":"' % (row, alert)
    return push._Item(row=row, alert=alert, loud=True,
                      body=body + b"x" * (size - len(body) - 2) + b'"}')


def test_pack_fills_pushes_to_the_limit_in_order() -> None:
    items = [_item(i, i, 1000) for i in range(1, 9)]
    groups = push.pack(items)
    assert [i.row for g in groups for i in g] == list(range(1, 9)), "in order, each once"
    for group in groups:
        assert len(push.message([i.body for i in group])) <= push.MAX_PAYLOAD
    assert [len(g) for g in groups] == [3, 3, 2]  # 4 x 1000 bytes and the frame do not fit
    assert push.MAX_PAYLOAD + 86 + 17 == 4096  # the aes128gcm header, delimiter and tag
    # the frame: '{"v":2,"items":[' (16 bytes), the items with commas between, ']}'
    exact = [_item(1, 1, push.MAX_PAYLOAD - 119), _item(2, 2, 100)]
    assert [len(g) for g in push.pack(exact)] == [2]
    assert len(push.message([i.body for i in exact])) == push.MAX_PAYLOAD
    over = [_item(1, 1, push.MAX_PAYLOAD - 118), _item(2, 2, 100)]
    assert [len(g) for g in push.pack(over)] == [1, 1]
    alone = push.pack([_item(1, 1, 5000), _item(2, 2, 100), _item(3, 3, 100)])
    assert [[i.row for i in g] for g in alone] == [[1], [2, 3]], "too big to share: alone"
    one = push.message([items[0].body])
    assert json.loads(one)["alert"] == 1, "one message goes as it is"


async def test_rows_due_together_go_in_one_push_per_device_and_all_end_recorded(
        database_url: str, tmp_path: Path) -> None:
    played = PushService().start()
    db = Database.open(database_url)
    try:
        await migrate(db.engine)
        s = Settings(database_url=database_url, data_dir=tmp_path,
                     push_service_hosts=["127.0.0.1"], push_backoff_base_seconds=0.05,
                     push_backoff_cap_seconds=0.1)
        vapid.VapidKey.generate().save(vapid.key_file(s))
        devices = {n: played.device(n) for n in ("one", "many", "flaky", "gone", "quiet")}
        played.answers = {"flaky": [500], "gone": [410]}
        now = datetime.now(UTC)
        async with db.write() as w:
            user = User(username="patrull", display_name="P", password_hash="x",
                        role="patrol", locale="sv")
            home = Recipient(name="Astrid Lindqvist", address="Storgatan 1",
                             access_info="Portkod 4711", care_notes="rullator")
            w.add_all([user, home])
            await w.flush()
            alerts = [Alert(recipient_id=home.id, priority=1, reason="technical-failure",
                            state=AlertState.NEW.value, created_at=now, updated_at=now,
                            note="ont i bröstet") for _ in range(20)]
            done = Alert(recipient_id=home.id, priority=1, reason="technical-failure",
                         state=AlertState.RESOLVED.value, created_at=now, updated_at=now,
                         acknowledged_by="patrull")
            w.add_all([*alerts, done])
            await w.flush()
            subs = {}
            for name, device in devices.items():
                body = device.subscription()
                sub = PushSubscription(user_id=user.id, endpoint_hash=name,
                                       endpoint=body["endpoint"], p256dh=body["keys"]["p256dh"],
                                       auth=body["keys"]["auth"], created_at=now)
                w.add(sub)
                await w.flush()
                subs[name] = sub.id
            wanted = {"one": [(alerts[0].id, "raised")],
                      "many": [(a.id, "raised") for a in alerts],
                      "flaky": [(a.id, "raised") for a in alerts[:3]],
                      "gone": [(a.id, "raised") for a in alerts[:2]],
                      "quiet": [(done.id, "raised"), (done.id, "settled")]}
            for name, rows in wanted.items():
                w.add_all([PushDelivery(alert_id=alert_id, subscription_id=subs[name],
                                        event=ev, created_at=now, attempts=0,
                                        next_attempt_at=now) for alert_id, ev in rows])

        async with push.client(s) as http:
            first = await push.deliver_due(db, s, http)
            # one push for "one", "gone" and "quiet" each, one for "flaky" (failed), and
            # 20 alerts for "many" in as few pushes as 4096 bytes allow (~14 in each)
            many = played.pushes("many")
            assert len(many) == 2 and first == 4 + len(many), (first, len(many))
            deadline = time.monotonic() + 10
            while True:  # the failed push is due again after its backoff
                async with db.read() as r:
                    left = (await r.execute(select(func.count()).select_from(PushDelivery)
                                            .where(PushDelivery.next_attempt_at.is_not(None)))
                            ).scalar_one()
                if not left:
                    break
                assert time.monotonic() < deadline, f"{left} rows still due"
                await push.deliver_due(db, s, http)

        assert played.errors == []
        got = played.pushes(delivered=False)
        for p in got:
            assert p.size <= 4096
            for word in SECRETS:
                assert word not in json.dumps(p.message, ensure_ascii=False), (word, p.message)
        # "many": every alert once, in order, in pushes of several (no Topic); the pushes
        # are sent at once, so they may arrive in either order
        many.sort(key=lambda p: p.items[0]["delivery"])
        carried = [(m["alert"], m["event"]) for p in many for m in p.items]
        assert carried == wanted["many"]
        assert all(p.message["v"] == 2 and "topic" not in p.headers for p in many)
        assert all(p.headers["urgency"] == "high" for p in many)
        item = many[0].items[0]
        assert item["address"] == "Storgatan 1" and item["url"] == f"/patrol#alert-{item['alert']}"
        assert item["title"] and item["ack"] and item["reason"] == "technical-failure"
        # one alert alone: as before, with its Topic
        (single,) = played.pushes("one")
        assert single.message["v"] == 1 and single.headers["topic"] == f"alert-{alerts[0].id}"
        # the failed push is sent again whole, and delivered
        flaky = played.pushes("flaky", delivered=False)
        assert [p.answered for p in flaky] == [500, 201]
        assert [m["alert"] for m in flaky[0].items] == [m["alert"] for m in flaky[1].items] \
            == [a.id for a in alerts[:3]]
        # a resolved alert's "raised" is dropped; its quiet "settled" still goes
        (quiet,) = played.pushes("quiet")
        assert [m["event"] for m in quiet.items] == ["settled"]
        assert quiet.headers["urgency"] == "normal" and quiet.headers["topic"] == f"alert-{done.id}"
        # one VAPID token for every round
        assert len({p.headers["authorization"] for p in got}) == 1

        async with db.read() as r:
            rows = (await r.execute(select(PushDelivery))).scalars().all()
            gone = await r.get(PushSubscription, subs["gone"])
            audits = (await r.execute(select(AuditEvent.kind, AuditEvent.subject).where(
                AuditEvent.kind == "push.gone"))).all()
        assert gone is None and audits == [("push.gone", f"subscription:{subs['gone']}")]
        assert all(r.claimed_until is None and r.next_attempt_at is None for r in rows)
        by_sub: dict[int, list[PushDelivery]] = {}
        for row in rows:
            by_sub.setdefault(row.subscription_id, []).append(row)
        assert subs["gone"] not in by_sub, "forgotten with its device"
        for name in ("one", "many", "flaky"):
            assert all(r.delivered_at is not None and r.last_status == 201
                       for r in by_sub[subs[name]]), name
        assert sorted(r.attempts for r in by_sub[subs["flaky"]]) == [2, 2, 2]
        stale, settled = sorted(by_sub[subs["quiet"]], key=lambda r: r.event)
        assert stale.event == "raised" and stale.delivered_at is None
        assert stale.last_error == "alert no longer new"
        assert settled.delivered_at is not None
        assert now - timedelta(minutes=1) < settled.delivered_at
    finally:
        played.stop()
        await db.engine.dispose()
