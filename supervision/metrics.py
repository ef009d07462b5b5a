"""Prometheus metrics (``/metrics``), for whoever runs the service.

Everything is read at scrape time: this node's own state from memory (its agent links, the
health its cameras last reported), the rest from the database with a few small queries,
each bounded by an index (checks of recent nights, alerts not yet resolved, outbox rows
still waiting) or by a row count (the latest acknowledgements, the latest deliveries). No
counter is kept per event, so every node reports the same database figures and a restart
loses nothing; the figures about the night cover the nights since yesterday.

Scraping needs ``metrics_token`` (``Authorization: Bearer <token>``); without one
``/metrics`` does not exist.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from camera_agent.protocol import CLOCK_TOLERANCE_SECONDS
from supervision import heap
from supervision.alert_states import AlertState
from supervision.checks import State as CheckState
from supervision.models import (
    Alert,
    AuditEvent,
    Camera,
    Check,
    PushDelivery,
    Visit,
    WebhookDelivery,
)
from supervision.runtime import Runtime
from supervision.stalls import WINDOW

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: time to first frame, seconds (the browser's report; the goal is well under 1 s)
TTFF_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
#: from an alert to its acknowledgement, seconds (escalation comes at a few minutes)
ACK_BUCKETS = (10.0, 30.0, 60.0, 180.0, 600.0, 1800.0)
#: the latest acknowledgements the time-to-acknowledgement histogram is made of
ACK_SAMPLE = 500
#: the latest webhook deliveries among which failures are counted
WEBHOOK_SAMPLE = 10_000


def allowed(token: str, authorization: str | None) -> bool:
    """The scraper shows the configured token (compared in constant time); no token set,
    nobody scrapes."""
    if not token or not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[7:].encode(), token.encode())


class _Snapshot(Collector):
    """Families already computed (the queries are async; a collector's ``collect`` is not)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


async def render(rt: Runtime) -> bytes:
    """The exposition text for one scrape."""
    now = datetime.now(UTC)
    families = _this_node(rt)
    async with rt.read() as db:
        families += await _cameras(rt, db)
        families += await _night(db, now)
        families += await _alerts(db)
        families += await _outboxes(db, now)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return generate_latest(registry)


def _gauge(name: str, doc: str, value: float | None = None,
           labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value, labels=labels or None)


def _this_node(rt: Runtime) -> list[Metric]:
    linked = list(rt.links.connected)
    offsets = []
    for camera_id in linked:
        _, health = rt.presence.seen(camera_id, None, None)
        offset = (health or {}).get("clock_offset_seconds")
        if isinstance(offset, int | float) and not isinstance(offset, bool):
            offsets.append(abs(float(offset)))
    return [
        _gauge("nattillsyn_agent_links", "camera agents linked to this node", len(linked)),
        _gauge("nattillsyn_agent_clock_off",
               f"cameras linked to this node whose clock is off the service's by more than "
               f"{CLOCK_TOLERANCE_SECONDS} s (they refuse tickets past the gate's tolerance)",
               sum(1 for o in offsets if o > CLOCK_TOLERANCE_SECONDS)),
        _gauge("nattillsyn_agent_clock_offset_max_seconds",
               "the largest clock offset a camera linked to this node reported",
               max(offsets, default=0.0)),
        _gauge("nattillsyn_event_loop_stall_max_seconds",
               f"the longest this node's event loop was held in the last {WINDOW:.0f} s "
               "(every alert's news on this node waited that long)", rt.stalls.worst()),
        _gauge("nattillsyn_full_collection_last_seconds",
               "the pause of this node's last periodic full collection (supervision/heap.py)",
               heap.last_pause),
    ]


async def _cameras(rt: Runtime, db: AsyncSession) -> list[Metric]:
    enrolled = (await db.execute(select(Camera.id).where(
        Camera.public_key.is_not(None), Camera.revoked.is_(False)))).scalars().all()
    return [
        _gauge("nattillsyn_cameras_enrolled", "enrolled cameras, not revoked", len(enrolled)),
        _gauge("nattillsyn_cameras_offline", "enrolled cameras linked to no live node",
               sum(1 for c in enrolled if not rt.relay.is_online(c))),
    ]


async def _night(db: AsyncSession, now: datetime) -> list[Metric]:
    since = (now - timedelta(days=1)).date()  # checks.night is indexed
    # the window that should be open longest and is not: how far the sweep is behind
    waiting = (await db.execute(select(func.min(Check.opens_at)).where(
        Check.night >= since, Check.state == CheckState.PLANNED.value,
        Check.opens_at <= now))).scalar()
    lag = _gauge("nattillsyn_sweep_lag_seconds",
                 "how long the oldest window due to be open has waited for the sweep "
                 "(0 while the sweep keeps up)",
                 max(0.0, (now - waiting).total_seconds()) if waiting else 0.0)
    checks = _gauge("nattillsyn_checks", "checks of the nights since yesterday, by state",
                    labels=("state",))
    counted = dict((await db.execute(select(Check.state, func.count()).where(
        Check.night >= since).group_by(Check.state))).all())
    for state in CheckState:
        checks.add_metric([state.value], counted.get(state.value, 0))
    recent = select(Visit.end_reason, Visit.ttff_ms).join(Check, Check.id == Visit.check_id)\
        .where(Check.night >= since)
    lookins = _gauge("nattillsyn_lookins",
                     "look-ins of the nights since yesterday, by how they ended "
                     "(in-progress: not yet ended)", labels=("result",))
    results: dict[str, int] = {}
    ttff: list[float] = []
    for reason, ms in (await db.execute(recent)).all():
        key = reason or "in-progress"
        results[key] = results.get(key, 0) + 1
        if ms is not None:
            ttff.append(ms / 1000)
    for key, count in sorted(results.items()):
        lookins.add_metric([key[:64]], count)
    return [lag, checks, lookins,
            _histogram("nattillsyn_lookin_ttff_seconds",
                       "time to first frame as the viewer's browser reported it, look-ins of "
                       "the nights since yesterday", ttff, TTFF_BUCKETS)]


async def _alerts(db: AsyncSession) -> list[Metric]:
    by_state = _gauge("nattillsyn_alerts", "alerts not yet resolved, by state",
                      labels=("state",))
    counted = dict((await db.execute(select(Alert.state, func.count()).where(
        Alert.state != AlertState.RESOLVED.value).group_by(Alert.state))).all())
    for state in AlertState:
        if state is not AlertState.RESOLVED:
            by_state.add_metric([state.value], counted.get(state.value, 0))
    escalated = (await db.execute(select(func.count()).where(
        Alert.state == AlertState.NEW.value, Alert.escalated_at.is_not(None)))).scalar() or 0
    latest = select(AuditEvent.at, AuditEvent.subject).where(
        AuditEvent.kind == "alert.acknowledged").order_by(AuditEvent.id.desc()).limit(ACK_SAMPLE)
    acks = {subject: at for at, subject in (await db.execute(latest)).all()}
    ids = [int(s.split(":", 1)[1]) for s in acks if s.split(":", 1)[-1].isdigit()]
    waited: list[float] = []
    if ids:
        for alert_id, created in (await db.execute(select(Alert.id, Alert.created_at).where(
                Alert.id.in_(ids)))).all():
            waited.append(max(0.0, (acks[f"alert:{alert_id}"] - created).total_seconds()))
    return [by_state,
            _gauge("nattillsyn_alerts_escalated", "alerts escalated and still not acknowledged",
                   escalated),
            _histogram("nattillsyn_alert_ack_seconds",
                       f"from an alert to its acknowledgement, the latest {ACK_SAMPLE}",
                       waited, ACK_BUCKETS)]


async def _outboxes(db: AsyncSession, now: datetime) -> list[Metric]:
    webhook_due = (await db.execute(select(func.count()).where(
        WebhookDelivery.next_attempt_at.is_not(None)))).scalar() or 0
    webhook_retrying = (await db.execute(select(func.count()).where(
        WebhookDelivery.next_attempt_at.is_not(None), WebhookDelivery.attempts > 0)))\
        .scalar() or 0
    newest = (await db.execute(select(func.max(WebhookDelivery.id)))).scalar() or 0
    failed = (await db.execute(select(func.count()).where(
        WebhookDelivery.id > newest - WEBHOOK_SAMPLE, WebhookDelivery.next_attempt_at.is_(None),
        WebhookDelivery.delivered_at.is_(None)))).scalar() or 0
    oldest = (await db.execute(select(func.min(WebhookDelivery.created_at)).where(
        WebhookDelivery.next_attempt_at.is_not(None)))).scalar()
    push_due = (await db.execute(select(func.count()).where(
        PushDelivery.next_attempt_at.is_not(None)))).scalar() or 0
    return [
        _gauge("nattillsyn_webhook_backlog", "webhook deliveries waiting to be sent",
               webhook_due),
        _gauge("nattillsyn_webhook_retrying", "waiting webhook deliveries that failed before",
               webhook_retrying),
        _gauge("nattillsyn_webhook_failed",
               f"webhook deliveries given up on, among the latest {WEBHOOK_SAMPLE}", failed),
        _gauge("nattillsyn_webhook_oldest_waiting_seconds",
               "age of the oldest webhook delivery still waiting",
               (now - oldest).total_seconds() if oldest else 0.0),
        _gauge("nattillsyn_push_backlog", "pushes to patrol phones waiting to be sent",
               push_due),
    ]


def _histogram(name: str, doc: str, values: list[float],
               bounds: tuple[float, ...]) -> GaugeHistogramMetricFamily:
    """A histogram of values read now (it may go down: a gauge histogram)."""
    buckets: list[tuple[str, Any]] = [
        (str(b), sum(1 for v in values if v <= b)) for b in bounds]
    buckets.append(("+Inf", len(values)))
    return GaugeHistogramMetricFamily(name, doc, buckets=buckets, gsum_value=sum(values))
