"""Signed webhook to an external alarm receiver, through an outbox.

Each alert change the receiver cares about (raised, escalated, acknowledged, on the way,
arrived, resolved) adds a row to `webhook_deliveries` in the same transaction as the change,
so a crash or restart can lose none. A scheduler job POSTs the due rows. Delivery is at
least once: a crash between the receiver's 2xx and our record of it sends the row again,
so receivers de-duplicate by the delivery id (header X-Nattillsyn-Delivery, and "delivery"
in the signed body). The events of one alert go out in order: a later one waits while an
earlier one is still being retried.

The request: POST, body canonical JSON (sorted keys, no spaces, UTF-8), headers
  X-Nattillsyn-Timestamp: Unix seconds of this attempt
  X-Nattillsyn-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
  X-Nattillsyn-Delivery: <id>     X-Nattillsyn-Event: <event>
A 2xx answer delivers; anything else (or no answer within the timeout) is retried after
min(cap, base * 2^(attempt-1)) seconds, jittered down to half that, until the last attempt,
after which the row is marked given up, audited, and shown as failed to admins.

The payload is the alert as it was at the event, with the recipient's name and address but
never door codes or the patrol's free-text note: the receiver needs where, not the rest.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from camera_agent.backoff import backoff
from schedules.canonical import canonical
from supervision import audit
from supervision.config import Settings
from supervision.db import Database
from supervision.models import Alert, Recipient, WebhookDelivery

log = logging.getLogger("supervision.webhook")

SIGNATURE_HEADER = "X-Nattillsyn-Signature"
TIMESTAMP_HEADER = "X-Nattillsyn-Timestamp"
DELIVERY_HEADER = "X-Nattillsyn-Delivery"
EVENT_HEADER = "X-Nattillsyn-Event"
BATCH = 20  # requests in flight per run of the job
LOOKAHEAD = 500  # pending rows read per run (oldest first)

Status = Literal["pending", "retrying", "delivered", "failed"]


async def enqueue(db: AsyncSession, alert: Alert, event: str,
                  recipient: Recipient | None = None) -> WebhookDelivery:
    """Add the event to the outbox in the caller's transaction (callers ask only when a
    receiver is configured: ``Settings.webhook_on``)."""
    recipient = recipient or await db.get(Recipient, alert.recipient_id)
    assert recipient is not None
    now = datetime.now(UTC)
    row = WebhookDelivery(alert_id=alert.id, event=event, payload=payload(alert, recipient),
                          created_at=now, attempts=0, next_attempt_at=now, history=[])
    db.add(row)
    return row


def payload(alert: Alert, recipient: Recipient) -> dict[str, Any]:
    """The alert as the receiver sees it: a contract of its own, not the patrol page's JSON."""
    return {
        "id": alert.id, "check": alert.check_id, "priority": alert.priority,
        "reason": alert.reason, "state": alert.state,
        "created_at": alert.created_at.isoformat(), "updated_at": alert.updated_at.isoformat(),
        "acknowledged_by": alert.acknowledged_by,
        "escalated_at": alert.escalated_at.isoformat() if alert.escalated_at else None,
        "recipient": {"id": recipient.id, "name": recipient.name,
                      "address": recipient.address},
    }


def body_of(row: WebhookDelivery) -> bytes:
    return canonical({"delivery": row.id, "event": row.event,
                      "occurred_at": row.created_at.isoformat(), "alert": row.payload})


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *,
           tolerance_seconds: float = 300, now: float | None = None) -> bool:
    """What a receiver does: constant-time compare, and refuse stale timestamps (replays)."""
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_seconds and hmac.compare_digest(sign(secret, timestamp, body),
                                                            signature)


def status_of(row: WebhookDelivery) -> Status:
    if row.delivered_at is not None:
        return "delivered"
    if row.next_attempt_at is None:
        return "failed"
    return "retrying" if row.attempts else "pending"


async def deliver_due(database: Database, s: Settings, now: datetime | None = None) -> int:
    """One run of the job: POST what is due, record each answer. Returns attempts made.

    No transaction is held while waiting for the receiver: SQLite has one writer, and the
    night's outcomes must not queue behind a slow alarm receiver."""
    if not s.webhook_on:
        return 0
    now = now or datetime.now(UTC)
    async with database.read() as db:
        pending = (await db.execute(
            select(WebhookDelivery).where(WebhookDelivery.next_attempt_at.is_not(None))
            .order_by(WebhookDelivery.id).limit(LOOKAHEAD))).scalars().all()
    first: dict[int, WebhookDelivery] = {}
    for row in pending:  # the oldest open event of each alert, so each alert's go in order
        first.setdefault(row.alert_id, row)
    due = [r for r in first.values() if r.next_attempt_at and r.next_attempt_at <= now][:BATCH]
    if not due:
        return 0
    async with httpx.AsyncClient(timeout=s.webhook_timeout_seconds) as http:
        answers = await asyncio.gather(*(_post(http, s, row) for row in due))
    async with database.write() as db:
        for sent, (code, error) in zip(due, answers, strict=True):
            fresh = await db.get(WebhookDelivery, sent.id)
            if fresh is not None:
                await _record(db, s, fresh, code, error)
    return len(due)


async def _post(http: httpx.AsyncClient, s: Settings, row: WebhookDelivery
                ) -> tuple[int | None, str | None]:
    assert s.webhook_url
    body = body_of(row)
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "nattillsyn-webhook/1",
               TIMESTAMP_HEADER: stamp, DELIVERY_HEADER: str(row.id), EVENT_HEADER: row.event,
               SIGNATURE_HEADER: sign(s.webhook_secret.get_secret_value(), stamp, body)}
    try:
        reply = await http.post(s.webhook_url, content=body, headers=headers)
    except Exception as exc:  # refused, timed out, a bad URL: each is one failed attempt
        return None, f"{type(exc).__name__}: {exc}"[:512]
    if 200 <= reply.status_code < 300:
        return reply.status_code, None
    return reply.status_code, f"HTTP {reply.status_code}: {reply.text[:200]}"[:512]


async def _record(db: AsyncSession, s: Settings, row: WebhookDelivery, code: int | None,
                  error: str | None) -> None:
    now = datetime.now(UTC)
    row.attempts += 1
    row.last_status, row.last_error = code, error
    entry: dict[str, Any] = {"at": now.isoformat(), "status": code, "error": error}
    if error is None:
        row.delivered_at, row.next_attempt_at = now, None
    elif row.attempts >= s.webhook_max_attempts:
        row.next_attempt_at = None
        log.error("webhook delivery %d (%s) given up after %d attempts: %s",
                  row.id, row.event, row.attempts, error)
        await audit.append(db, "webhook", "webhook.failed", f"alert:{row.alert_id}",
                           {"delivery": row.id, "event": row.event,
                            "attempts": row.attempts, "error": error})
    else:
        wait = backoff(row.attempts, s.webhook_backoff_base_seconds,
                       s.webhook_backoff_cap_seconds)
        row.next_attempt_at = now + timedelta(seconds=wait)
        entry["next"] = row.next_attempt_at.isoformat()
        log.warning("webhook delivery %d (%s) attempt %d failed: %s; again in %.1f s",
                    row.id, row.event, row.attempts, error, wait)
    row.history = [*row.history, entry]  # a new list: the JSON column sees the change


# --- what admins see of the outbox ---

class DeliveryAttempt(BaseModel):
    at: datetime
    status: int | None = Field(description="HTTP status; null when no answer came")
    error: str | None
    next: datetime | None = Field(default=None, description="when it was to be tried again")


class DeliveryOut(BaseModel):
    id: int = Field(description="also X-Nattillsyn-Delivery: receivers de-duplicate by it")
    alert_id: int
    event: str
    status: Status
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status: int | None
    last_error: str | None
    history: list[DeliveryAttempt]


def delivery_out(row: WebhookDelivery) -> DeliveryOut:
    history: list[dict[str, Any]] = row.history or []
    return DeliveryOut(id=row.id, alert_id=row.alert_id, event=row.event,
                       status=status_of(row), attempts=row.attempts,
                       created_at=row.created_at, next_attempt_at=row.next_attempt_at,
                       delivered_at=row.delivered_at, last_status=row.last_status,
                       last_error=row.last_error,
                       history=[DeliveryAttempt.model_validate(h) for h in history])


async def newest(database: Database, limit: int) -> list[DeliveryOut]:
    """The newest deliveries, each with its status and every attempt so far."""
    async with database.read() as db:
        rows = (await db.execute(select(WebhookDelivery).order_by(WebhookDelivery.id.desc())
                                 .limit(limit))).scalars().all()
    return [delivery_out(r) for r in rows]
