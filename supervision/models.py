"""Tables. Times are UTC (timezone-aware in Python, stored naive-UTC portable across SQLite/PG)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC without zone (SQLite has none); always returns aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))  # staff | patrol | manager | admin
    shift_lead: Mapped[bool] = mapped_column(Boolean, default=False)
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class WebSession(Base):
    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie value
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Recipient(Base):
    __tablename__ = "recipients"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    address: Mapped[str] = mapped_column(String(256))
    access_info: Mapped[str] = mapped_column(Text, default="")  # door code, key box
    unit: Mapped[str] = mapped_column(String(64), default="")
    #: contact people: [{"name", "relation", "phone"}]; see supervision/recipients.py
    contacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    care_notes: Mapped[str] = mapped_column(Text, default="")  # mobility, hearing, key holder
    #: archived: off every working list, history kept (supervision/recipients.archive)
    archived_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: who live with the recipient and must consent too (names; supervision/consent.py)
    cohabitants: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: the consent the records give, kept with the recipient in the transaction that changed
    #: a record: with ``consent_recorded`` the plan's own consent field is replaced by it
    consent_recorded: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_from: Mapped[date | None] = mapped_column(Date, nullable=True)
    consent_until: Mapped[date | None] = mapped_column(Date, nullable=True)


class Camera(Base):
    __tablename__ = "cameras"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"))
    public_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enrol_code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enrol_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[datetime | None] = mapped_column(nullable=True)
    health: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    #: the node holding the camera's link now (``nodes.id``), or None; see presence.py
    link_node: Mapped[str | None] = mapped_column(String(96), nullable=True)
    linked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Plan(Base):
    """One immutable version of a recipient's plan. A night uses the newest version whose
    ``effective_from`` (in ``data``) it has reached; see ``supervision.plans.in_force``."""

    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("recipient_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"))
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class Check(Base):
    __tablename__ = "checks"
    id: Mapped[int] = mapped_column(primary_key=True)
    # idempotency key: "<recipient>:<night>:<HH:MM>" or "<parent>/fu<n>"
    slot: Mapped[str] = mapped_column(String(96), unique=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"), index=True)
    night: Mapped[date] = mapped_column(Date, index=True)
    due_at: Mapped[datetime] = mapped_column(index=True)
    opens_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), index=True)
    follow_ups: Mapped[int] = mapped_column(Integer, default=0)  # how many came before this one
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("checks.id"), nullable=True,
                                                  index=True)
    reason: Mapped[str | None] = mapped_column(String(256), nullable=True)  # a code
    reason_detail: Mapped[str | None] = mapped_column(String(256), nullable=True)  # words
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    actor: Mapped[str | None] = mapped_column(String(64), nullable=True)
    max_lookin_seconds: Mapped[int] = mapped_column(Integer, default=30)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)  # staff's note


class Visit(Base):
    """One look-in: who looked, at which camera, when, how long, with what outcome."""

    __tablename__ = "visits"
    #: a check's first look-in, read from the index alone (supervision/reports.py)
    __table_args__ = (Index("ix_visits_check_requested", "check_id", "requested_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the session id
    check_id: Mapped[int] = mapped_column(ForeignKey("checks.id"), index=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"))
    viewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    requested_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    seconds: Mapped[float | None] = mapped_column(nullable=True)
    #: how it ended, a code: expired, ended, refused, technical-failure, revoked, ...
    end_reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    end_detail: Mapped[str | None] = mapped_column(String(256), nullable=True)  # e.g. busy
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # what an outcome rests on: the agent said the camera opened for this session, and the
    # viewer's browser said it decoded the first frame (time to first frame, ms)
    camera_opened_at: Mapped[datetime | None] = mapped_column(nullable=True)
    first_frame_at: Mapped[datetime | None] = mapped_column(nullable=True)
    ttff_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ux_alerts_check_id", "check_id", unique=True),)  # one per check
    id: Mapped[int] = mapped_column(primary_key=True)
    check_id: Mapped[int | None] = mapped_column(ForeignKey("checks.id"), nullable=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"), index=True)
    priority: Mapped[int] = mapped_column(Integer)  # 1 highest
    reason: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    escalated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditEvent(Base):
    """Append-only; each row carries the hash of the one before."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)  # the retention purge's boundary
    actor: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(64), index=True)
    data: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditPurge(Base):
    """A retention purge (supervision/retention.py): its signed purge checkpoint (``line``,
    the witness line as written: the last purged entry's id and hash and how many) and
    whether its deletions are done. Verification starts from the newest whose signature
    verifies (supervision/audit_anchor.py); the columns beside ``line`` are for the job."""

    __tablename__ = "audit_purges"
    id: Mapped[int] = mapped_column(primary_key=True)
    entry: Mapped[int] = mapped_column(Integer, index=True)  # the last purged entry's id
    hash: Mapped[str] = mapped_column(String(64))
    purged: Mapped[int] = mapped_column(Integer)  # audit entries this purge removes
    #: audit entries before this instant, and nights before ``keep_night``, are purged
    before: Mapped[datetime]
    keep_night: Mapped[date] = mapped_column(Date)
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)


class WebhookDelivery(Base):
    """Outbox for the external alarm receiver: written in the transaction that changed the
    alert, so a crash can lose no event; sent at least once by supervision.webhook."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))  # alert.raised, alert.escalated, ...
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # None once delivered or given up: the sender's work list is "next_attempt_at <= now"
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(512), nullable=True)
    # every attempt: {"at", "status", "error", "next"}, so admins see the backoff afterwards
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class ServerIdentity(Base):
    """The service's public key, recorded at its first start. The agents pin it, so every
    node must hold its private half (supervision/identity.py refuses any other)."""

    __tablename__ = "server_identity"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # always 1
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Node(Base):
    """A running service process (one per start: a restarted node is a new row). Alive
    while ``heard_at`` is recent; see supervision/nodes.py."""

    __tablename__ = "nodes"
    id: Mapped[str] = mapped_column(String(96), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime]
    heard_at: Mapped[datetime]


class NodeMessage(Base):
    """A message from one node to another too big for a notification's payload (an SDP
    offer or answer): the notification names the row; the addressee deletes it as it reads."""

    __tablename__ = "node_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    to_node: Mapped[str] = mapped_column(String(96), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class PasswordLink(Base):
    """A one-time link to set a password (a new user's first, or after a reset): only the
    token's SHA-256 is stored; spent on use (supervision/users.py)."""

    __tablename__ = "password_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ConsentRecord(Base):
    """One party's consent to look-ins for a recipient (supervision/consent.py): the person
    or a legal representative, or a cohabitant; how, on what document, for which nights,
    and its withdrawal. Never deleted: a renewal is a new record."""

    __tablename__ = "consent_records"
    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"), index=True)
    party: Mapped[str] = mapped_column(String(16))  # person | representative | cohabitant
    name: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(16))  # written | oral
    witness: Mapped[str] = mapped_column(String(128), default="")
    document_ref: Mapped[str] = mapped_column(String(128), default="")
    given_on: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date, nullable=True)
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(64))
    withdrawn_at: Mapped[datetime | None] = mapped_column(nullable=True)
    withdrawn_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class PushIdentity(Base):
    """The service's VAPID key (Web Push, RFC 8292), made at its first start: the public
    half, which every browser subscription is bound to, and the private half sealed with a
    key only the server key can derive, so a node with the service's key takes it from here
    (supervision/vapid.py refuses a node whose own VAPID file holds another)."""

    __tablename__ = "push_identity"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # always 1
    public_key: Mapped[str] = mapped_column(String(100))  # base64url, uncompressed P-256
    sealed_private: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class PushSubscription(Base):
    """A browser's Web Push subscription (one per device and user): where the push service
    takes messages for it, and the keys they are encrypted to (supervision/push.py)."""

    __tablename__ = "push_subscriptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    endpoint_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of endpoint
    endpoint: Mapped[str] = mapped_column(Text)
    p256dh: Mapped[str] = mapped_column(String(128))
    auth: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(128), default="")
    #: the web session that subscribed (``web_sessions.id``): pushes go only to devices
    #: whose session lives, so signing out (or its expiry) stops them
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    created_at: Mapped[datetime]
    last_ok_at: Mapped[datetime | None] = mapped_column(nullable=True)


class PushDelivery(Base):
    """Outbox of pushes: one row per (alert event, subscription), written in the transaction
    of the alert change, sent at least once by the leader (supervision/push.py)."""

    __tablename__ = "push_deliveries"
    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("push_subscriptions.id"),
                                                 index=True)
    event: Mapped[str] = mapped_column(String(16))  # raised | escalated | repeat | settled
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # None once delivered, dropped or given up: the sender's work list
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    # a sender that took the row: no other sends it before this passes
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(256), nullable=True)


class LoginFailure(Base):
    """One failed (or not yet judged) login of the last minute, by one of its keys: the
    address, the address with the user, the user (supervision/login_limits.py)."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), index=True)
    at: Mapped[datetime] = mapped_column(index=True)


class NightRollup(Base):
    """A night whose period-report figures are rolled up (supervision/rollup.py), with the
    late limit they were counted with. ``dirty``: something the report reads changed since
    (set in the changing transaction by triggers, migration 0013), so the report reads the
    night live until the job rolls it up again. ``late_minutes`` None: not rolled up yet."""

    __tablename__ = "night_rollups"
    night: Mapped[date] = mapped_column(Date, primary_key=True)
    late_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rolled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    dirty: Mapped[bool] = mapped_column(Boolean, default=True)


class RollupCount(Base):
    """A rolled-up night's checks per unit: ``kind`` "category" (key: reports.CATEGORIES)
    or "skipped" (key: the skip's reason)."""

    __tablename__ = "rollup_counts"
    night: Mapped[date] = mapped_column(Date, primary_key=True)
    unit: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class RollupAlert(Base):
    """A rolled-up night's alert: its reason and the patrol's times, per alert so that the
    median and 90th percentile over any set of nights stay exact. No foreign keys: a cache
    of what the triggers keep it true to, it must not stand in the way of a purge."""

    __tablename__ = "rollup_alerts"
    night: Mapped[date] = mapped_column(Date, primary_key=True)
    alert_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    recipient_id: Mapped[int] = mapped_column(Integer)  # the check's
    reason: Mapped[str] = mapped_column(String(64))
    ack_s: Mapped[float | None]
    arr_s: Mapped[float | None]


class RollupCamera(Base):
    """A rolled-up night's technical failures per camera (and the check's recipient)."""

    __tablename__ = "rollup_cameras"
    night: Mapped[date] = mapped_column(Date, primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    recipient_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    technical_failure: Mapped[int] = mapped_column(Integer)
    agent_gone: Mapped[int] = mapped_column(Integer)
    unreported: Mapped[int] = mapped_column(Integer)


class NightShift(Base):
    """One person on one night's roster for one care unit (supervision/roster.py). The
    night is the checks' night (its evening date in the plan's zone); ``joined_at`` and
    ``left_at`` bound when the person was on it, which the log review compares with the
    time of each look-in. Joining again after leaving starts the time afresh."""

    __tablename__ = "night_shifts"
    __table_args__ = (UniqueConstraint("night", "unit", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    night: Mapped[date] = mapped_column(Date)
    unit: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    joined_at: Mapped[datetime]
    joined_by: Mapped[str] = mapped_column(String(64))
    left_at: Mapped[datetime | None] = mapped_column(nullable=True)
