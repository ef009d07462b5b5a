"""Web Push to the patrol's phones (RFC 8030, 8291, 8292), through an outbox.

A phone subscribes after login (``subscribe``); its subscription is kept per user and
device. Every alert change reaches ``alert_feed.announce`` inside the transaction that
made it, which calls ``enqueue``: one ``push_deliveries`` row per (alert event,
subscription) commits with the change, or not at all, so no restart or crash can lose a
push. Who gets what:

- ``raised`` (a new alert) and ``repeat`` (still not acknowledged after
  ``push_repeat_seconds``): every device of an active patrol or admin user;
- ``escalated`` (not acknowledged in time), and the repeats of an escalated alert: those
  and every device of an active user flagged shift lead, whatever the role;
- ``settled`` (someone acknowledged or moved it on): the devices that were sent it, so the
  loud notification is replaced by a quiet one on every phone.

The leader sends the outbox (``run``, a duty of the scheduler): it claims the due rows
(``claimed_until``, so no other sender takes them meanwhile), packs each device's rows into
as few pushes as fit 4 KB (``pack``: alerts back to back cost one push per device, not one
per alert), encrypts them with ``pywebpush`` in worker threads (the CPU work stays off the
event loop) and POSTs each chunk as soon as it is encrypted, over kept-alive connections
(aiohttp), with a VAPID token signed once per push service and reused for hours; then it
records every answer in one transaction, for every row a push carried. 2xx delivers; 404
and 410 mean the subscription is gone: it is forgotten with its rows (audited); anything
else is retried with ``camera_agent.backoff`` until ``push_max_attempts``. A push for an
alert that is no longer new when its turn comes is dropped, except ``settled``. The leader
wakes at once when an alert changes (after the commit, on this node, or on another node's
announcement), else every ``push_poll_seconds``. Delivery is at least once; a crash
between the push service's answer and its record sends it again, and the phone's worker
de-duplicates by the delivery id and replaces by the alert's tag. A push carrying several
rows is ``{"v": 2, "items": [...]}``, one message per row (the worker shows one
notification per alert), and names no ``Topic`` (a later push about one of its alerts
would replace it, unread, at the push service).

What the push service (a third party: Google, Mozilla, Apple) sees: the endpoint, the
time, the size, ``Urgency``, ``Topic: alert-<id>`` (a push about one alert), and a
payload it cannot read (aes128gcm to the phone's key). What the phone shows, even locked:
what and where: the reason in words and the address. No name, no door code, no notes, no
contacts, no care notes; the page fetches those when the patrol opens the alert.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import json
import logging
import time
import weakref
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, Field, field_validator
from pywebpush import WebPusher
from sqlalchemy import delete, event, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from camera_agent.backoff import backoff
from supervision import audit, vapid
from supervision.alert_states import AlertState
from supervision.config import Settings
from supervision.db import Database
from supervision.errors import ServiceError
from supervision.i18n import Translator
from supervision.models import (
    Alert,
    PushDelivery,
    PushSubscription,
    Recipient,
    User,
    WebSession,
)

log = logging.getLogger("supervision.push")

#: roles whose devices get every new alert (the others' only escalations, as shift lead)
PATROL_ROLES = ("patrol", "admin")
#: events sent only while their alert is still new (the point is to get it acknowledged)
WHILE_NEW = frozenset({"raised", "escalated", "repeat"})
#: rows claimed per round: a burst of alerts to every device goes in one round (a push
#: carries ~14 alerts), not a round for every few alerts
BATCH = 5000
#: finished rows are kept this long (what was sent to whom), then deleted
KEEP = timedelta(days=2)


# --- subscriptions ---------------------------------------------------------------------------

class SubscriptionKeys(BaseModel):
    """``PushSubscription.toJSON().keys``: the phone's P-256 key and its auth secret."""

    p256dh: str = Field(pattern=r"^[A-Za-z0-9_-]{86,88}={0,2}$")
    auth: str = Field(pattern=r"^[A-Za-z0-9_-]{16,24}={0,2}$")

    @field_validator("p256dh")
    @classmethod
    def _a_point(cls, value: str) -> str:
        """A key no push could be encrypted to is refused now, not retried all night."""
        raw = base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)  # ValueError: 422
        return value


class SubscriptionIn(BaseModel):
    endpoint: str = Field(min_length=10, max_length=1024, pattern=r"^https?://[^\x00-\x20\x7f]+$")
    keys: SubscriptionKeys
    device: str = Field(default="", max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$",
                        description="what the person calls it")


def endpoint_allowed(endpoint: str, s: Settings) -> bool:
    """Only https endpoints of the push services named in ``push_service_hosts`` (or their
    sub-domains): a subscription makes the service POST to its endpoint, and it must not be
    a way to make it POST anywhere else. Plain http only to a loopback address named there
    (a push service played on the same machine, in tests)."""
    try:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
        _ = parts.port
    except ValueError:
        return False
    if not host or parts.username or parts.password:
        return False
    named = any(host == h or host.endswith("." + h) for h in s.push_service_hosts)
    if parts.scheme == "https":
        return named
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return parts.scheme == "http" and named and loopback


def _hash(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


async def subscribe(database: Database, s: Settings, user: User, body: SubscriptionIn,
                    session_id: str) -> int:
    """Keep this device's subscription for ``user`` (a phone someone else used before is
    theirs now); its id. Anyone signed in may subscribe: a patrol member's device gets
    every alert, a shift lead's the escalations, anyone else's nothing until flagged."""
    if not endpoint_allowed(body.endpoint, s):
        raise ServiceError(422, "error.push_endpoint")
    async with database.write() as db:
        row = await _keep(db, user, body, session_id)
        return row.id


async def unsubscribe(database: Database, user: User, endpoint: str) -> bool:
    """Forget this device's subscription, if it is ``user``'s; whether there was one."""
    async with database.write() as db:
        row = (await db.execute(select(PushSubscription).where(
            PushSubscription.endpoint_hash == _hash(endpoint),
            PushSubscription.user_id == user.id))).scalar_one_or_none()
        if row is None:
            return False
        await _forget(db, [row.id])
        await audit.append(db, user.username, "push.unsubscribed", f"user:{user.id}",
                           {"subscription": row.id})
        return True


async def _keep(db: AsyncSession, user: User, body: SubscriptionIn,
                session_id: str) -> PushSubscription:
    now = datetime.now(UTC)
    key = _hash(body.endpoint)
    row = (await db.execute(select(PushSubscription).where(
        PushSubscription.endpoint_hash == key))).scalar_one_or_none()
    if row is None:
        row = PushSubscription(user_id=user.id, endpoint_hash=key, endpoint=body.endpoint,
                               p256dh=body.keys.p256dh, auth=body.keys.auth,
                               device=body.device, session_id=session_id, created_at=now)
        db.add(row)
    else:
        row.user_id, row.p256dh, row.auth = user.id, body.keys.p256dh, body.keys.auth
        row.device, row.session_id = body.device, session_id
    await db.flush()
    await audit.append(db, user.username, "push.subscribed", f"user:{user.id}",
                       {"subscription": row.id, "device": body.device,
                        "service": urlsplit(body.endpoint).hostname or ""})
    return row


async def _forget(db: AsyncSession, ids: Sequence[int]) -> list[int]:
    """Delete these subscriptions with their rows; the ids that were still there."""
    await db.execute(delete(PushDelivery).where(PushDelivery.subscription_id.in_(ids)))
    return sorted((await db.execute(delete(PushSubscription).where(
        PushSubscription.id.in_(ids)).returning(PushSubscription.id))).scalars())


# --- the outbox --------------------------------------------------------------------------------

_wakes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = (
    weakref.WeakKeyDictionary())
def _wake_event() -> asyncio.Event:
    loop = asyncio.get_running_loop()
    wake = _wakes.get(loop)
    if wake is None:
        wake = _wakes[loop] = asyncio.Event()
    return wake


def wake() -> None:
    """Something may be due: the sender on this node (if it leads) looks now."""
    _wake_event().set()


async def enqueue(db: AsyncSession, alert_id: int, *, escalation: bool = False) -> int:
    """The pushes this alert change calls for, as outbox rows in ``db``'s transaction
    (``alert_feed.announce``); the sender is woken when it commits. Rows written."""
    alert = await db.get(Alert, alert_id)
    if alert is None:
        return 0
    if escalation:
        event_name, targets = "escalated", await _targets(db, leads=True)
    elif alert.state == AlertState.NEW.value:
        event_name, targets = "raised", await _targets(db, leads=alert.escalated_at is not None)
    else:
        event_name, targets = "settled", await _settle_targets(db, alert.id)
    return await _write(db, alert.id, event_name, targets)


async def _targets(db: AsyncSession, *, leads: bool) -> list[int]:
    who: ColumnElement[bool] = User.role.in_(PATROL_ROLES)
    if leads:
        who = or_(who, User.shift_lead.is_(True))
    # only devices whose web session lives: a phone signed out (or whose session ran out)
    # hears nothing more, as its page gets nothing more
    rows = await db.execute(select(PushSubscription.id).join(
        User, User.id == PushSubscription.user_id).join(
        WebSession, (WebSession.id == PushSubscription.session_id)
        & (WebSession.user_id == User.id)).where(
        User.active.is_(True), who, WebSession.expires_at > datetime.now(UTC)))
    return list(rows.scalars())


async def _settle_targets(db: AsyncSession, alert_id: int) -> list[int]:
    """Devices sent this alert, once: the first change after new settles it."""
    sent = select(PushDelivery.subscription_id, PushDelivery.event).where(
        PushDelivery.alert_id == alert_id)
    rows = (await db.execute(sent)).all()
    if any(ev == "settled" for _, ev in rows):
        return []
    return sorted({sid for sid, _ in rows})


async def _write(db: AsyncSession, alert_id: int, event_name: str,
                 targets: Sequence[int]) -> int:
    if not targets:
        return 0
    now = datetime.now(UTC)
    await db.execute(insert(PushDelivery), [
        {"alert_id": alert_id, "subscription_id": sid, "event": event_name,
         "created_at": now, "attempts": 0, "next_attempt_at": now} for sid in targets])
    if not db.info.get("push_wake"):
        db.info["push_wake"] = True
        signal = _wake_event()
        event.listen(db.sync_session, "after_commit", lambda _s: signal.set(), once=True)
    return len(targets)


async def repeat_due(database: Database, s: Settings, now: datetime | None = None) -> int:
    """Alerts still new whose newest push is ``push_repeat_seconds`` old go out again
    (replacing the last on the phone: same tag); finished rows past ``KEEP`` are deleted.
    Alerts pushed again."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=s.push_repeat_seconds)
    last = (select(PushDelivery.alert_id, func.max(PushDelivery.created_at).label("last"))
            .group_by(PushDelivery.alert_id).subquery())
    repeated = 0
    async with database.write() as db:
        rows = (await db.execute(
            select(Alert.id, Alert.escalated_at, Alert.created_at, last.c.last)
            .outerjoin(last, last.c.alert_id == Alert.id)
            .where(Alert.state == AlertState.NEW.value))).all()
        for alert_id, escalated_at, created_at, newest in rows:
            if (newest or created_at) > cutoff:
                continue
            targets = await _targets(db, leads=escalated_at is not None)
            repeated += bool(await _write(db, alert_id, "repeat", targets))
        await db.execute(delete(PushDelivery).where(
            PushDelivery.next_attempt_at.is_(None), PushDelivery.created_at < now - KEEP))
    return repeated


# --- sending -----------------------------------------------------------------------------------

#: RFC 8030/8291: a push service must take message bodies of up to 4096 bytes; aes128gcm
#: adds its header (16-byte salt, record size, the 65-byte key: 86 bytes), a padding
#: delimiter and a 16-byte tag. A push's JSON stays within what is left.
MAX_PAYLOAD = 4096 - 86 - 1 - 16
#: pushes encrypted per worker-thread task: each chunk is posted as soon as it is
#: encrypted, so the first pushes of a round leave while later ones are still being made
CHUNK = 32
#: a VAPID token is signed for this long and used until ``VAPID_RENEW`` of it is left
#: (RFC 8292: at most 24 hours; the push service may keep reusing its check of it)
VAPID_LIFETIME = 12 * 3600
VAPID_RENEW = 3600


@dataclass(frozen=True)
class _Item:
    """One delivery row as the phone gets it: one alert event, its JSON."""

    row: int
    alert: int
    loud: bool
    body: bytes


@dataclass
class _Job:
    """One push to one device, carrying one or more delivery rows."""

    rows: list[int]
    subscription: int
    info: dict[str, Any]
    data: bytes
    topic: str | None
    urgency: str
    audience: str


async def run(database: Database, s: Settings) -> None:
    """The leader's duty, for as long as it leads (it is cancelled when leadership is lost,
    and started again by the scheduler after a failure): send what is due, then wait until
    an alert changes (woken at once) or ``push_poll_seconds`` pass (a retry falls due), and
    again. One long run, not a job at intervals: between runs a burst of alerts would wait
    for the next one to begin."""
    async with client(s) as http:
        await _run(database, s, http)


async def _run(database: Database, s: Settings, http: aiohttp.ClientSession) -> None:
    """Rounds back to back while there is work. A round's answers are recorded while the
    next round is claimed and sent (at most one record behind), so the record is not on the
    next alert's path; before waiting idle, everything is recorded."""
    signal = _wake_event()
    behind: asyncio.Task[None] | None = None
    try:
        while True:
            signal.clear()  # before reading: a change committed after this wakes the wait
            done, record = await _round(database, s, http)
            previous = behind
            behind = asyncio.create_task(record, name="push-record") if record else None
            if previous is not None:
                await asyncio.shield(previous)  # stopped meanwhile: the record goes on
            if done:
                continue  # more may be due
            if behind is not None:
                await asyncio.shield(behind)
                behind = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), s.push_poll_seconds)
    finally:
        if behind is not None:  # sent: record it even when stopped, or it is sent again
            await asyncio.shield(behind)


async def deliver_due(database: Database, s: Settings, http: aiohttp.ClientSession) -> int:
    """One round, recorded before it returns. Pushes attempted."""
    done, record = await _round(database, s, http)
    if record is not None:
        await record
    return done


async def _round(database: Database, s: Settings, http: aiohttp.ClientSession
                 ) -> tuple[int, Coroutine[Any, Any, None] | None]:
    """Claim the due rows, send them off the event loop; the pushes attempted and the
    record of their answers, to be awaited. A device with several rows due gets them in
    one push (``pack``): alerts back to back cost one encryption and one request per device
    and round, not per alert, so a burst is out in a round or two instead of queueing
    alert behind alert. No transaction is held while the push services answer."""
    now = datetime.now(UTC)
    claim = now + timedelta(seconds=2 * s.push_timeout_seconds + 5)
    free = or_(PushDelivery.claimed_until.is_(None), PushDelivery.claimed_until < now)
    due_ids = (select(PushDelivery.id).where(PushDelivery.next_attempt_at <= now, free)
               .order_by(PushDelivery.id).limit(BATCH))
    async with database.write() as db:
        claimed = (await db.execute(
            update(PushDelivery).where(PushDelivery.id.in_(due_ids), free)
            .values(claimed_until=claim)
            .returning(PushDelivery.id, PushDelivery.event, PushDelivery.subscription_id,
                       PushDelivery.alert_id)
            .execution_options(synchronize_session=False))).all()
        if not claimed:
            return 0, None
        subs = {row.id: row for row in (await db.execute(
            select(PushSubscription.id, PushSubscription.endpoint, PushSubscription.p256dh,
                   PushSubscription.auth, User.locale)
            .join(User, User.id == PushSubscription.user_id)
            .where(PushSubscription.id.in_({c.subscription_id for c in claimed})))).all()}
        alerts = {alert.id: (alert, recipient) for alert, recipient in (await db.execute(
            select(Alert, Recipient).join(Recipient, Recipient.id == Alert.recipient_id)
            .where(Alert.id.in_({c.alert_id for c in claimed})))).all()}
    stale: list[int] = []
    due: dict[int, list[_Item]] = {}
    bodies: dict[tuple[int, str, str], bytes] = {}  # one payload per alert event and language
    translators: dict[str, Translator] = {}
    for row_id, event_name, sub_id, alert_id in sorted(claimed):
        alert, recipient = alerts[alert_id]
        if event_name in WHILE_NEW and alert.state != AlertState.NEW.value:
            stale.append(row_id)
            continue
        lang = subs[sub_id].locale or s.default_locale
        base = bodies.get((alert_id, event_name, lang))
        if base is None:
            t = translators.get(lang) or translators.setdefault(lang, Translator(lang))
            fields = payload(alert, recipient, event_name, 0, t)
            del fields["delivery"]
            base = bodies[(alert_id, event_name, lang)] = _json(fields)
        due.setdefault(sub_id, []).append(_Item(
            row=row_id, alert=alert_id, loud=event_name != "settled",
            body=b'{"delivery":%d,' % row_id + base[1:]))
    jobs = [_job(sub_id, subs[sub_id].endpoint,
                 {"p256dh": subs[sub_id].p256dh, "auth": subs[sub_id].auth}, group)
            for sub_id, items in due.items() for group in pack(items)]
    jobs.sort(key=lambda j: j.rows[0])  # the oldest alert's pushes first
    answers = await _send_all(jobs, s, http) if jobs else []
    return len(jobs), _record(database, s, jobs, answers, stale)


def payload(alert: Alert, recipient: Recipient, event_name: str, delivery: int,
            t: Translator) -> dict[str, Any]:
    """One alert event as the phone gets it (and shows even when locked): what and where,
    nothing more. A push carries one such message, or several in ``message``'s form."""
    reason = t(f"reason.{alert.reason}")
    if event_name == "settled":
        title = t("push.settled", state=t(f"alert.state.{alert.state}"),
                  name=alert.acknowledged_by or "")
    else:
        title = t(f"push.title.{event_name}", reason=reason)
    return {"v": 1, "delivery": delivery, "alert": alert.id, "event": event_name,
            "reason": alert.reason, "priority": alert.priority, "state": alert.state,
            "escalated": alert.escalated_at is not None,
            "at": alert.created_at.isoformat(), "address": recipient.address,
            "title": title, "body": recipient.address,
            "ack": t("patrol.do.acknowledged"), "url": f"/patrol#alert-{alert.id}"}


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


_MANY_HEAD, _MANY_TAIL = b'{"v":2,"items":[', b"]}"


def message(bodies: Sequence[bytes]) -> bytes:
    """What one push carries: a single message as it is, several as ``{"v": 2, "items":
    [...]}`` (the worker shows each as its own notification)."""
    if len(bodies) == 1:
        return bodies[0]
    return _MANY_HEAD + b",".join(bodies) + _MANY_TAIL


def pack(items: Sequence[_Item], limit: int = MAX_PAYLOAD) -> list[list[_Item]]:
    """One device's due items, in order, as few pushes as fit ``limit`` bytes each
    (``message``'s size). An item too big to share a push goes alone."""
    groups: list[list[_Item]] = []
    size = 0  # the current group's message size if it carries several
    for item in items:
        if groups and size + 1 + len(item.body) <= limit:
            groups[-1].append(item)
            size += 1 + len(item.body)
        else:
            groups.append([item])
            size = len(_MANY_HEAD) + len(item.body) + len(_MANY_TAIL)
    return groups


def _job(sub_id: int, endpoint: str, keys: dict[str, str], items: list[_Item]) -> _Job:
    parts = urlsplit(endpoint)
    alerts = {i.alert for i in items}
    # RFC 8030 Topic: a push service replaces a waiting message of the same topic; only a
    # push about one alert may name it, or a later push about that alert would replace
    # (and lose) the others' news on a phone that is off
    return _Job(rows=[i.row for i in items], subscription=sub_id,
                info={"endpoint": endpoint, "keys": keys},
                data=message([i.body for i in items]),
                topic=f"alert-{items[0].alert}" if len(alerts) == 1 else None,
                urgency="high" if any(i.loud for i in items) else "normal",
                audience=f"{parts.scheme}://{parts.netloc}")


_tokens: dict[tuple[str, str, str], tuple[float, dict[str, str]]] = {}
#: one thread encrypts: the work holds the GIL, so more threads only fight over it (and
#: over the event loop's turn) and finish later, not sooner
_crypto = ThreadPoolExecutor(max_workers=1, thread_name_prefix="push-encrypt")


def _vapid_headers(key: vapid.VapidKey, audience: str, subject: str) -> dict[str, str]:
    """The VAPID ``Authorization`` for one push service origin, signed once and reused
    until ``VAPID_RENEW`` seconds of it are left (RFC 8292 allows reuse; signing is ES256)."""
    cache_key = (key.public_key, audience, subject)
    now = time.time()
    kept = _tokens.get(cache_key)
    if kept is not None and kept[0] - now > VAPID_RENEW:
        return kept[1]
    exp = int(now) + VAPID_LIFETIME
    headers: dict[str, str] = key.signer.sign({"sub": subject, "aud": audience, "exp": exp})
    if len(_tokens) > 64:  # a key change or many push services: start again
        _tokens.clear()
    _tokens[cache_key] = (exp, headers)
    return headers


async def _send_all(jobs: list[_Job], s: Settings, http: aiohttp.ClientSession
                    ) -> list[tuple[int | None, str | None]]:
    """Encrypt in worker threads (``pywebpush``: ECDH and AES-GCM per push, CPU work kept
    off the event loop), ``CHUNK`` at a time, each chunk POSTed as soon as it is made, over
    the session's kept-alive connections. Answers in the order of ``jobs``."""
    key = vapid.current(vapid.key_file(s))
    signed = {aud: _vapid_headers(key, aud, s.vapid_subject) for aud in {j.audience for j in jobs}}

    async def chunk(part: list[_Job]) -> list[tuple[int | None, str | None]]:
        bodies = await asyncio.get_running_loop().run_in_executor(_crypto, _encrypt, part)
        return list(await asyncio.gather(*(
            _post(http, job, body, signed[job.audience], s)
            for job, body in zip(part, bodies, strict=True))))

    parts = await asyncio.gather(*(chunk(jobs[i:i + CHUNK]) for i in range(0, len(jobs), CHUNK)))
    return [answer for part in parts for answer in part]


def _encrypt(jobs: list[_Job]) -> list[bytes | str]:
    """Each payload encrypted to its phone's key (RFC 8291, aes128gcm), or why it cannot be."""
    out: list[bytes | str] = []
    for job in jobs:
        try:
            out.append(bytes(WebPusher(job.info).encode(job.data, "aes128gcm")["body"]))
        except Exception as exc:  # a subscription whose keys are not a valid point
            out.append(f"{type(exc).__name__}: {exc}"[:256])
    return out


async def _post(http: aiohttp.ClientSession, job: _Job, body: bytes | str,
                vapid_headers: dict[str, str], s: Settings) -> tuple[int | None, str | None]:
    if isinstance(body, str):
        return None, body
    headers = {**vapid_headers, "Content-Encoding": "aes128gcm", "TTL": str(s.push_ttl_seconds),
               "Urgency": job.urgency, "Content-Type": "application/octet-stream"}
    if job.topic is not None:
        headers["Topic"] = job.topic
    try:
        async with http.post(job.info["endpoint"], data=body, headers=headers) as reply:
            if 200 <= reply.status < 300:
                return reply.status, None
            text = (await reply.text(errors="replace"))[:120]
            return reply.status, f"HTTP {reply.status}: {text}"[:256]
    except Exception as exc:  # refused, timed out, reset: one failed attempt
        return None, f"{type(exc).__name__}: {exc}"[:256]


def client(s: Settings) -> aiohttp.ClientSession:
    """The sender's HTTP client: kept-alive connections to the push services."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=s.push_timeout_seconds),
        cookie_jar=aiohttp.DummyCookieJar(),  # push services set none worth keeping
        connector=aiohttp.TCPConnector(limit=64, limit_per_host=32))


async def _record(database: Database, s: Settings, jobs: list[_Job],
                  answers: list[tuple[int | None, str | None]], stale: list[int]) -> None:
    """Every row a push carried ends as that push did: delivered, gone with its device,
    or failed (retried with backoff until ``push_max_attempts``)."""
    now = datetime.now(UTC)
    delivered = [(j, code) for j, (code, error) in zip(jobs, answers, strict=True)
                 if error is None]
    gone = sorted({j.subscription for j, (code, _) in zip(jobs, answers, strict=True)
                   if code in (404, 410)})
    failed = [(j, code, error) for j, (code, error) in zip(jobs, answers, strict=True)
              if error is not None and j.subscription not in gone]
    async with database.write() as db:
        done = {"claimed_until": None, "next_attempt_at": None}
        if delivered:
            await db.execute(update(PushDelivery).where(
                PushDelivery.id.in_([r for j, _ in delivered for r in j.rows])).values(
                **done, delivered_at=now, attempts=PushDelivery.attempts + 1,
                last_status=delivered[0][1]).execution_options(synchronize_session=False))
            await db.execute(update(PushSubscription).where(PushSubscription.id.in_(
                {j.subscription for j, _ in delivered})).values(last_ok_at=now)
                .execution_options(synchronize_session=False))
        if stale:
            await db.execute(update(PushDelivery).where(PushDelivery.id.in_(stale)).values(
                **done, last_error="alert no longer new").execution_options(
                synchronize_session=False))
        # a round sent meanwhile may have found it gone too: forgotten (and audited) once
        forgotten = await _forget(db, gone) if gone else []
        for sid in forgotten:
            await audit.append(db, "push", "push.gone", f"subscription:{sid}", {})
        if forgotten:
            log.info("forgot %d push subscription(s) their push service says are gone",
                     len(forgotten))
        for job, code, error in failed:
            await _failed(db, s, job, code, error or "", now)


async def _failed(db: AsyncSession, s: Settings, job: _Job, code: int | None, error: str,
                  now: datetime) -> None:
    """A push that failed: each of its rows one attempt more; those with attempts left are
    due again together (one backoff for the push, so they travel together again)."""
    rows = (await db.execute(select(PushDelivery).where(PushDelivery.id.in_(job.rows))
                             .order_by(PushDelivery.id))).scalars().all()
    again = []
    for row in rows:
        row.attempts += 1
        row.last_status, row.last_error, row.claimed_until = code, error, None
        if row.attempts < s.push_max_attempts:
            again.append(row)
            continue
        row.next_attempt_at = None
        log.error("push %d (alert %d, %s) given up after %d attempts: %s",
                  row.id, row.alert_id, row.event, row.attempts, error)
        await audit.append(db, "push", "push.failed", f"alert:{row.alert_id}",
                           {"delivery": row.id, "subscription": row.subscription_id,
                            "attempts": row.attempts, "error": error})
    if not again:
        return
    tries = max(row.attempts for row in again)
    wait = backoff(tries, s.push_backoff_base_seconds, s.push_backoff_cap_seconds)
    for row in again:
        row.next_attempt_at = now + timedelta(seconds=wait)
    log.warning("push of %d row(s) (alerts %s) attempt %d failed: %s; again in %.1f s",
                len(again), sorted({row.alert_id for row in again}), tries, error, wait)
