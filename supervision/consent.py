"""Consent on record: who consented to look-ins, how, on what document, for which nights.

A camera look-in needs the informed consent of the person (or their legal representative)
and of everyone who lives with them. Each party's consent is a record (never deleted; a
renewal is a new record, a withdrawal marks the record). A recipient's consent is
complete when the newest record of the person or representative, and of each listed
cohabitant, is not withdrawn; it covers the nights all of them cover (latest ``given_on``
to earliest ``valid_until``). That consent, kept on the recipient row
(``consent_recorded``, ``consent_from``, ``consent_until``) in the same transaction, is the
only consent there is: it replaces the plan's own ``consent`` field wherever a plan is
applied (``plans.recorded_consents``), and a recipient without a record has none, whatever
their plan says (plans saved now carry no consent; the editor shows the records instead).
For nights without it, checks are planned as skipped ``no-consent``, the service refuses
look-ins, and the plan signed for the camera carries consent null.

A change re-plans the recipient's coming checks in its transaction, then pushes the plan to
their cameras. A withdrawal also ends the checks already open (skipped, no alert) and
stops a look-in in progress at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from supervision import audit, cameras, planning, recipients
from supervision.errors import ServiceError
from supervision.models import ConsentRecord, Recipient, Visit
from supervision.runtime import Runtime

EXPIRY_WARNING_DAYS = recipients.EXPIRY_WARNING_DAYS
SUBJECT = ("person", "representative")
_PLAIN = r"^[^\x00-\x1f\x7f]*$"


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    party: Literal["person", "representative", "cohabitant"]
    name: str = Field(min_length=1, max_length=128, pattern=_PLAIN,
                      description="who consented (for a cohabitant: as listed)")
    method: Literal["written", "oral"] = Field(description="in writing, or orally with witness")
    witness: str = Field("", max_length=128, pattern=_PLAIN, description="needed if oral")
    document_ref: str = Field("", max_length=128, pattern=_PLAIN,
                              description="the signed document's reference; needed if written")
    given_on: date
    valid_until: date | None = None

    @model_validator(mode="after")
    def _complete(self) -> ConsentIn:
        if self.method == "oral" and not self.witness:
            raise ValueError("an oral consent needs a witness")
        if self.method == "written" and not self.document_ref:
            raise ValueError("a written consent needs the document's reference")
        if self.valid_until is not None and self.valid_until < self.given_on:
            raise ValueError("valid_until must not be before given_on")
        return self


class Cohabitants(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    names: list[str] = Field(max_length=20)

    @model_validator(mode="after")
    def _plain(self) -> Cohabitants:
        if any(not n or len(n) > 128 or any(ord(c) < 32 for c in n) for n in self.names):
            raise ValueError("names of 1 to 128 characters, no control characters")
        return self


class ConsentRecordOut(BaseModel):
    id: int
    party: str
    name: str
    method: str
    witness: str
    document_ref: str
    given_on: date
    valid_until: date | None
    recorded_at: datetime
    recorded_by: str
    withdrawn_at: datetime | None
    withdrawn_by: str | None


class ConsentView(BaseModel):
    recipient_id: int
    cohabitants: list[str]
    records: list[ConsentRecordOut] = Field(description="newest first")
    complete: bool = Field(description="every party needed has a consent not withdrawn")
    missing: list[str] = Field(description="'person' and/or cohabitants' names without one")
    withdrawn: list[str] = Field(description="parties whose newest consent is withdrawn")
    given_on: date | None = Field(description="first night the consent covers")
    valid_until: date | None
    expiring: bool = Field(description=f"runs out within {EXPIRY_WARNING_DAYS} days")


def _out(r: ConsentRecord) -> ConsentRecordOut:
    return ConsentRecordOut(id=r.id, party=r.party, name=r.name, method=r.method,
                            witness=r.witness, document_ref=r.document_ref, given_on=r.given_on,
                            valid_until=r.valid_until, recorded_at=r.recorded_at,
                            recorded_by=r.recorded_by, withdrawn_at=r.withdrawn_at,
                            withdrawn_by=r.withdrawn_by)


def combine(records: Sequence[ConsentRecord], cohabitants: Sequence[str]
            ) -> tuple[schedules.Consent | None, list[str], list[str]]:
    """The consent the records give: (consent or None, parties missing, withdrawn)."""
    def newest(matching: list[ConsentRecord]) -> ConsentRecord | None:
        return max(matching, key=lambda r: (r.given_on, r.id), default=None)

    needed = [("person", newest([r for r in records if r.party in SUBJECT]))]
    for name in cohabitants:
        needed.append((name, newest([r for r in records if r.party == "cohabitant"
                                     and r.name.casefold() == name.casefold()])))
    missing = [who for who, r in needed if r is None]
    withdrawn = [who for who, r in needed if r is not None and r.withdrawn_at is not None]
    if missing or withdrawn:
        return None, missing, withdrawn
    held = [r for _, r in needed if r is not None]
    given = max(r.given_on for r in held)
    ends = [r.valid_until for r in held if r.valid_until is not None]
    until = min(ends) if ends else None
    if until is not None and until < given:  # no night all of them cover
        return None, [], []
    return schedules.Consent(given, until), [], []


async def _records(db: AsyncSession, rid: int) -> list[ConsentRecord]:
    return list((await db.execute(select(ConsentRecord).where(
        ConsentRecord.recipient_id == rid).order_by(ConsentRecord.id.desc()))).scalars())


def _expiring(until: date | None, today: date) -> bool:
    return until is not None and until <= today + timedelta(days=EXPIRY_WARNING_DAYS)


async def view(db: AsyncSession, rid: int) -> ConsentView:
    recipient = await db.get(Recipient, rid)
    if recipient is None:
        raise ServiceError(404, "manage.error.no_recipient")
    records = await _records(db, rid)
    names = list(recipient.cohabitants or [])
    consent, missing, withdrawn = combine(records, names)
    today = schedules.night_of(datetime.now(UTC))
    return ConsentView(
        recipient_id=rid, cohabitants=names, records=[_out(r) for r in records],
        complete=consent is not None, missing=missing, withdrawn=withdrawn,
        given_on=consent.given_on if consent else None,
        valid_until=consent.valid_until if consent else None,
        expiring=consent is not None and _expiring(consent.valid_until, today))


async def _keep(db: AsyncSession, recipient: Recipient) -> schedules.Consent | None:
    """Keep the records' consent on the recipient (what ``plans.recorded_consents`` reads)."""
    consent, _, _ = combine(await _records(db, recipient.id), list(recipient.cohabitants or []))
    recipient.consent_recorded = True
    recipient.consent_from = consent.given_on if consent else None
    recipient.consent_until = consent.valid_until if consent else None
    await db.flush()
    return consent


async def _apply(db: AsyncSession, recipient: Recipient, now: datetime) -> schedules.Consent | None:
    """Keep the records' consent on the recipient and re-plan their coming checks."""
    consent = await _keep(db, recipient)
    await planning.materialise(db, now, recipient_ids=[recipient.id], replace=True)
    return consent


async def record_unplanned(db: AsyncSession, recipient: Recipient, body: ConsentIn, actor: str,
                           now: datetime) -> schedules.Consent | None:
    """Record a consent, audited as ``record`` does, in the caller's transaction and without
    re-planning or telling cameras: for a world being built (the demo seed), where the
    planning job plans every recipient when the service starts."""
    row = ConsentRecord(recipient_id=recipient.id, recorded_at=now, recorded_by=actor,
                        **body.model_dump())
    db.add(row)
    await db.flush()
    consent = await _keep(db, recipient)
    await audit.append(db, actor, "consent.recorded", f"recipient:{recipient.id}", {
        "recipient": recipient.id, "record": row.id, **body.model_dump(mode="json"),
        "complete": consent is not None})
    return consent


async def _live(db: AsyncSession, rid: int) -> Recipient:
    recipient = await db.get(Recipient, rid)
    if recipient is None:
        raise ServiceError(404, "manage.error.no_recipient")
    if recipient.archived_at is not None:
        raise ServiceError(409, "manage.error.archived")
    return recipient


async def _reach_cameras(rt: Runtime, rid: int, stop_lookins: bool) -> list[str]:
    """Push the plan (with the consent now on record) to the recipient's cameras; with
    ``stop_lookins``, first tell them to end any look-in in progress."""
    async with rt.read() as db:
        targets = await cameras.enrolled_cameras(db, [rid])
        running = [] if not stop_lookins else (await db.execute(
            select(Visit.camera_id, Visit.id).where(Visit.recipient_id == rid,
                                                    Visit.ended_at.is_(None)))).all()
    for camera_id, session in running:
        await rt.relay.send(camera_id, "end", session=session)
    return [cid for cid in targets if await cameras.push_plan(rt, cid)]


async def record(rt: Runtime, rid: int, body: ConsentIn, actor: str) -> ConsentView:
    now = datetime.now(UTC)
    async with rt.write() as db:
        recipient = await _live(db, rid)
        await record_unplanned(db, recipient, body, actor, now)
        await planning.materialise(db, now, recipient_ids=[rid], replace=True)
    await _reach_cameras(rt, rid, stop_lookins=False)
    async with rt.read() as db:
        return await view(db, rid)


async def withdraw(rt: Runtime, rid: int, record_id: int, actor: str) -> ConsentView:
    """At once: no look-in from now on, open checks ended, the camera told."""
    now = datetime.now(UTC)
    async with rt.write() as db:
        recipient = await _live(db, rid)
        row = await db.get(ConsentRecord, record_id)
        if row is None or row.recipient_id != rid:
            raise ServiceError(404, "manage.consent.error.no_record")
        if row.withdrawn_at is not None:
            raise ServiceError(409, "manage.consent.error.withdrawn")
        await db.execute(update(ConsentRecord).where(ConsentRecord.id == record_id)
                         .values(withdrawn_at=now, withdrawn_by=actor))
        await db.refresh(row)
        consent = await _apply(db, recipient, now)
        ended = 0
        if consent is None:  # checks whose window has begun: ended now, no alert
            ended = await recipients.end_checks(db, rid, "no-consent", actor, now,
                                                detail="withdrawn", started_by=now)
        await audit.append(db, actor, "consent.withdrawn", f"recipient:{rid}", {
            "recipient": rid, "record": record_id, "party": row.party, "name": row.name,
            "complete": consent is not None, "checks_ended": ended})
    await _reach_cameras(rt, rid, stop_lookins=True)
    async with rt.read() as db:
        return await view(db, rid)


async def set_cohabitants(rt: Runtime, rid: int, body: Cohabitants, actor: str) -> ConsentView:
    """Who lives with the recipient; each must consent too."""
    now = datetime.now(UTC)
    async with rt.write() as db:
        recipient = await _live(db, rid)
        before = list(recipient.cohabitants or [])
        recipient.cohabitants = list(body.names)
        consent = await _apply(db, recipient, now)
        ended = 0
        if consent is None:
            ended = await recipients.end_checks(db, rid, "no-consent", actor, now,
                                                detail="incomplete", started_by=now)
        await audit.append(db, actor, "consent.cohabitants", f"recipient:{rid}", {
            "recipient": rid, "before": before, "after": body.names,
            "complete": consent is not None, "checks_ended": ended})
    await _reach_cameras(rt, rid, stop_lookins=consent is None)
    async with rt.read() as db:
        return await view(db, rid)


async def expiring(db: AsyncSession, today: date) -> set[int]:
    """Recipients (not archived) whose recorded consent runs out within the warning days."""
    return set((await db.execute(select(Recipient.id).where(
        Recipient.archived_at.is_(None), Recipient.consent_recorded.is_(True),
        Recipient.consent_until.is_not(None),
        Recipient.consent_until <= today + timedelta(days=EXPIRY_WARNING_DAYS)))).scalars())

