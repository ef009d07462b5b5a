"""Log review (loggkontroll): who looked at a recipient, when, for how long, and with what
outcome; every look-in, refusal and change of plan, consent or details, filtered, with the
unusual-access flags and their rules; the chain's verification status (verified in the
background); and a recipient's own access report."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from schedules.canonical import canonical
from supervision import audit_anchor
from supervision.errors import ServiceError
from supervision.models import AuditEvent, Check, NightShift, Recipient, User, Visit
from supervision.runtime import Runtime

log = logging.getLogger(__name__)


class LookinRecord(BaseModel):
    session: str
    check: int
    camera: str
    viewer: str
    viewer_name: str
    requested_at: datetime
    ended_at: datetime | None
    seconds: float | None
    outcome: str | None
    end_reason: str | None = Field(description="a code: expired, ended, refused, ...")
    end_detail: str | None = Field(description="what the code leaves open, e.g. busy")


async def recipient_lookins(rt: Runtime, recipient_id: int) -> list[LookinRecord]:
    async with rt.read() as db:
        if await db.get(Recipient, recipient_id) is None:
            raise ServiceError(404, "manage.error.no_recipient")
        rows = (await db.execute(
            select(Visit, User).join(User, User.id == Visit.viewer_id)
            .where(Visit.recipient_id == recipient_id)
            .order_by(Visit.requested_at.desc()))).all()
    return [LookinRecord(session=v.id, check=v.check_id, camera=v.camera_id, viewer=u.username,
                         viewer_name=u.display_name, requested_at=v.requested_at,
                         ended_at=v.ended_at, seconds=v.seconds, outcome=v.outcome,
                         end_reason=v.end_reason, end_detail=v.end_detail) for v, u in rows]


# --- the log review page (loggkontroll) ---------------------------------------------------

#: what the review lists: look-ins and refusals (from the visits, which name the recipient,
#: camera and viewer), and the audited changes to a recipient's plan, consent and details
KINDS = ("lookin", "refusal", "plan", "consent", "recipient")
AUDIT_KINDS = {"plan": ("plan.changed",),
               "consent": ("consent.recorded", "consent.withdrawn", "consent.cohabitants"),
               "recipient": ("recipient.created", "recipient.changed", "recipient.archived")}
#: the unusual-access rules; each flag's words (audit.flag.<code>) state its rule
LONG_GRACE_SECONDS = 5
REFUSALS_PER_NIGHT = 3
MANY_FACTOR = 2
FLAGS = ("outside-window", "long", "refusals", "many", "not-on-roster", "not-staff")
#: the values the rules' words name
RULE_VALUES = {"grace": LONG_GRACE_SECONDS, "refusals": REFUSALS_PER_NIGHT,
               "factor": MANY_FACTOR}
MAX_ENTRIES = 500


class ReviewFilter(BaseModel):
    person: str | None = None
    recipient: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    kind: Literal["lookin", "refusal", "plan", "consent", "recipient"] | None = None


class ReviewEntry(BaseModel):
    at: datetime
    kind: str = Field(description="lookin, refusal, plan, consent, recipient")
    what: str = Field(description="the audit kind, or the look-in's outcome or end reason")
    person: str
    person_name: str
    recipient_id: int | None
    recipient: str | None
    seconds: float | None = None
    detail: str = ""
    flags: list[str] = Field(default_factory=list, description="unusual access (FLAGS)")


async def review(db: AsyncSession, f: ReviewFilter) -> list[ReviewEntry]:
    """The entries the filter selects, newest first (at most MAX_ENTRIES), each look-in
    with its unusual-access flags; the flags are computed by SQL over the nights involved."""
    out: list[ReviewEntry] = []
    if f.kind in (None, "lookin", "refusal"):
        out += await _lookins(db, f)
    if f.kind is None or f.kind in AUDIT_KINDS:
        out += await _changes(db, f)
    out.sort(key=lambda e: e.at, reverse=True)
    return out[:MAX_ENTRIES]


async def _lookins(db: AsyncSession, f: ReviewFilter) -> list[ReviewEntry]:
    refused = Visit.end_reason == "refused"
    # per camera and night: refusals; per recipient and night: look-ins and checks
    refusals = (select(Visit.camera_id, Check.night, func.count().label("n"))
                .join(Check, Check.id == Visit.check_id).where(refused)
                .group_by(Visit.camera_id, Check.night).subquery())
    looks = (select(Visit.recipient_id, Check.night, func.count().label("n"))
             .join(Check, Check.id == Visit.check_id).where(~refused | (
                 Visit.end_reason.is_(None)))
             .group_by(Visit.recipient_id, Check.night).subquery())
    planned = (select(Check.recipient_id, Check.night, func.count().label("n"))
               .group_by(Check.recipient_id, Check.night).subquery())
    query = (select(Visit, Check.opens_at, Check.closes_at, Check.max_lookin_seconds,
                    User.username, User.display_name, User.role, User.active, Recipient.name,
                    refusals.c.n, looks.c.n, planned.c.n, NightShift.id)
             .join(Check, Check.id == Visit.check_id)
             .join(User, User.id == Visit.viewer_id)
             .join(Recipient, Recipient.id == Visit.recipient_id)
             .outerjoin(refusals, and_(refusals.c.camera_id == Visit.camera_id,
                                       refusals.c.night == Check.night))
             .outerjoin(looks, and_(looks.c.recipient_id == Visit.recipient_id,
                                    looks.c.night == Check.night))
             .outerjoin(planned, and_(planned.c.recipient_id == Visit.recipient_id,
                                      planned.c.night == Check.night))
             # the viewer's shift for the check's night and the recipient's unit, if they
             # were on it when the look-in began (at most one row: one per night, unit, person)
             .outerjoin(NightShift, and_(
                 NightShift.night == Check.night, NightShift.unit == Recipient.unit,
                 NightShift.user_id == Visit.viewer_id,
                 NightShift.joined_at <= Visit.requested_at,
                 or_(NightShift.left_at.is_(None), NightShift.left_at > Visit.requested_at)))
             .order_by(Visit.requested_at.desc()).limit(MAX_ENTRIES))
    if f.person:
        query = query.where(User.username == f.person)
    if f.recipient:
        query = query.where(Visit.recipient_id == f.recipient)
    if f.since:
        query = query.where(Visit.requested_at >= f.since)
    if f.until:
        query = query.where(Visit.requested_at < f.until)
    if f.kind == "lookin":
        query = query.where(~refused | Visit.end_reason.is_(None))
    elif f.kind == "refusal":
        query = query.where(refused)
    out = []
    for (v, opens, closes, most, username, name, role, active, recipient, n_refused,
         n_looks, n_checks, shift) in (await db.execute(query)).all():
        flags = []
        if v.end_reason != "refused":
            if not opens <= v.requested_at <= closes:
                flags.append("outside-window")
            if v.seconds is not None and v.seconds > most + LONG_GRACE_SECONDS:
                flags.append("long")
            if (n_looks or 0) > MANY_FACTOR * (n_checks or 0):
                flags.append("many")
            if shift is None:
                flags.append("not-on-roster")
            if role != "staff" or not active:
                flags.append("not-staff")
        elif (n_refused or 0) >= REFUSALS_PER_NIGHT:
            flags.append("refusals")
        out.append(ReviewEntry(
            at=v.requested_at, kind="refusal" if v.end_reason == "refused" else "lookin",
            what=v.outcome or v.end_reason or "", person=username, person_name=name,
            recipient_id=v.recipient_id, recipient=recipient, seconds=v.seconds,
            detail=" ".join(x for x in (v.camera_id, v.end_detail or "") if x), flags=flags))
    return out


async def _changes(db: AsyncSession, f: ReviewFilter) -> list[ReviewEntry]:
    kinds = AUDIT_KINDS[f.kind] if f.kind in AUDIT_KINDS else tuple(
        k for ks in AUDIT_KINDS.values() for k in ks)
    query = (select(AuditEvent, User.display_name)
             .outerjoin(User, User.username == AuditEvent.actor)
             .where(AuditEvent.kind.in_(kinds))
             .order_by(AuditEvent.id.desc()).limit(MAX_ENTRIES))
    if f.person:
        query = query.where(AuditEvent.actor == f.person)
    if f.recipient:
        query = query.where(AuditEvent.subject == f"recipient:{f.recipient}")
    if f.since:
        query = query.where(AuditEvent.at >= f.since)
    if f.until:
        query = query.where(AuditEvent.at < f.until)
    rows = (await db.execute(query)).all()
    ids = {int(e.subject.split(":", 1)[1]) for e, _ in rows
           if e.subject.startswith("recipient:") and e.subject[10:].isdigit()}
    names = dict((await db.execute(select(Recipient.id, Recipient.name)
                                   .where(Recipient.id.in_(ids)))).all()) if ids else {}
    out = []
    for e, person_name in rows:
        rid = int(e.subject[10:]) if e.subject[10:].isdigit() else None
        data = {k: v for k, v in e.data.items() if k != "recipient"}
        out.append(ReviewEntry(
            at=e.at, kind=e.kind.split(".", 1)[0], what=e.kind, person=e.actor,
            person_name=person_name or e.actor, recipient_id=rid,
            recipient=names.get(rid) if rid is not None else None,
            detail=canonical(data).decode()[:300] if data else ""))
    return out


# --- the chain's status, verified in the background --------------------------------------


class ChainStatus(BaseModel):
    state: Literal["unknown", "running", "intact", "broken"]
    checked_at: datetime | None = None
    entries: int | None = None
    problems: int | None = None


#: the newest verification per running service (keyed by its database object): a page
#: shows it and starts another in the background once it is older than STALE
STALE = timedelta(minutes=5)
_status: dict[int, ChainStatus] = {}
_running: dict[int, asyncio.Task[None]] = {}


def chain_status(rt: Runtime) -> ChainStatus:
    """The last verification's result; a new one starts in the background if that one is
    stale (the request never waits for it: a long chain takes seconds to hash)."""
    key = id(rt.database)
    now = datetime.now(UTC)
    known = _status.get(key, ChainStatus(state="unknown"))
    stale = known.checked_at is None or now - known.checked_at > STALE
    if stale and (key not in _running or _running[key].done()):
        _running[key] = asyncio.get_running_loop().create_task(_verify(rt, key))
        if known.state == "unknown":
            known = ChainStatus(state="running")
            _status[key] = known
    return known


async def _verify(rt: Runtime, key: int) -> None:
    try:
        async with rt.read() as db:
            report = await audit_anchor.check(
                db, [audit_anchor.Witness(rt.settings.audit_witness)], [rt.key.public_key_b64])
        _status[key] = ChainStatus(state="intact" if report.intact else "broken",
                                   checked_at=datetime.now(UTC), entries=report.entries,
                                   problems=len(report.chain) + len(report.problems))
    except Exception:  # the page says "unknown"; the log says why
        log.exception("background audit verification failed")
        _status[key] = ChainStatus(state="unknown", checked_at=datetime.now(UTC))


# --- a recipient's own access report ------------------------------------------------------


class AccessLine(BaseModel):
    at: datetime
    viewer: str
    seconds: float | None
    outcome: str | None


async def access_report(db: AsyncSession, rid: int, since: datetime, until: datetime
                        ) -> tuple[Recipient, list[AccessLine]]:
    """Everyone who looked in on the recipient in the period (refusals left out: nobody saw
    anything), oldest first, for the recipient who asks."""
    recipient = await db.get(Recipient, rid)
    if recipient is None:
        raise ServiceError(404, "manage.error.no_recipient")
    rows = (await db.execute(
        select(Visit, User.display_name).join(User, User.id == Visit.viewer_id)
        .where(Visit.recipient_id == rid, Visit.requested_at >= since,
               Visit.requested_at < until,
               (Visit.end_reason != "refused") | Visit.end_reason.is_(None))
        .order_by(Visit.requested_at))).all()
    return recipient, [AccessLine(at=v.requested_at, viewer=name, seconds=v.seconds,
                                  outcome=v.outcome) for v, name in rows]
