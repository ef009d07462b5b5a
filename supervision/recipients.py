"""Care recipients as care managers see them: camera, newest plan, tonight's consent; their
details edited (each change audited, access information without its values), and archiving.

Archiving takes a recipient off every working list (rounds board, manager list, planning)
while their history stays for log review: in one transaction the recipient is marked, their
planned and open checks end as skipped ``archived`` (guarded moves), and it is audited;
then each of their cameras is revoked (``cameras.revoke``: key refused, link cut). A camera
moving to another home is revoked and enrolled anew for the new recipient, never re-used.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from supervision import audit, cameras, check_rows, checks, plans
from supervision.cameras import CameraStatus
from supervision.checks import State
from supervision.errors import ServiceError
from supervision.models import Camera, Check, Recipient
from supervision.runtime import Runtime

#: a plan in its JSON form, documented by the domain's own schema (schedules.plan_json_schema)
PlanJson = Annotated[dict[str, Any],
                     WithJsonSchema({"allOf": [{"$ref": "#/components/schemas/PlanDocument"}]})]


class ConsentStatus(BaseModel):
    state: Literal["valid", "none", "expired", "not-yet"]
    given_on: date | None = None
    valid_until: date | None = None
    on_record: bool = Field(default=False, description=(
        "the recipient has consent records (or listed cohabitants); false: no consent on "
        "record, so no consent at all"))
    expiring: bool = Field(default=False, description="valid, and runs out within 30 days")
    plan_consent_only: bool = Field(default=False, description=(
        "no consent on record, but the plan in force still carries consent dates (from "
        "before consent was recorded): they give no look-ins until a consent is recorded"))


#: consent running out within this many days is flagged to managers
EXPIRY_WARNING_DAYS = 30


_PLAIN = r"^[^\x00-\x1f\x7f]*$"  # no control characters (PostgreSQL refuses NUL in text)


class Contact(BaseModel):
    """A contact person: next of kin, key holder, guardian."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=128, pattern=_PLAIN)
    relation: str = Field("", max_length=64, pattern=_PLAIN)
    phone: str = Field("", max_length=32, pattern=r"^[0-9+()\- ]*$")


class RecipientSummary(BaseModel):
    id: int
    name: str
    address: str
    unit: str
    camera: CameraStatus | None
    plan_version: int | None = Field(description="newest version, in force or pending")
    check_times: list[str]
    consent: ConsentStatus
    archived_at: datetime | None = None


class RecipientDetail(RecipientSummary):
    access_info: str
    contacts: list[Contact]
    care_notes: str
    plan: PlanJson | None = Field(description=(
        "the newest version: what the editor edits; its consent is always null, since "
        "consent is kept on record (an older version's own consent dates are left out)"))
    in_force_version: int | None = Field(description="the version in force tonight")
    plan_created_at: datetime | None
    plan_created_by: str | None
    tonight: date


class RecipientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=128, pattern=_PLAIN)
    address: str = Field(min_length=1, max_length=256, pattern=_PLAIN)
    access_info: str = Field("", max_length=2000, pattern=r"^[^\x00]*$",
                             description="door code, key box; shown to the patrol on dispatch")
    unit: str = Field("", max_length=64, pattern=_PLAIN)


def consent_status(consent: schedules.Consent | None, night: date, on_record: bool,
                   plan_consent: bool = False) -> ConsentStatus:
    """Tonight's consent: only what the records give (``plans.recorded_consent``);
    ``plan_consent``: the plan in force carries consent dates of its own."""
    if consent is None:
        return ConsentStatus(state="none", on_record=on_record,
                             plan_consent_only=plan_consent and not on_record)
    if night < consent.given_on:
        state: Literal["valid", "expired", "not-yet"] = "not-yet"
    elif consent.valid_until is not None and night > consent.valid_until:
        state = "expired"
    else:
        state = "valid"
    soon = night + timedelta(days=EXPIRY_WARNING_DAYS)
    return ConsentStatus(state=state, given_on=consent.given_on, valid_until=consent.valid_until,
                         on_record=on_record, expiring=state == "valid" and (
                             consent.valid_until is not None and consent.valid_until <= soon))


async def summaries(rt: Runtime, db: AsyncSession) -> list[RecipientSummary]:
    """Every recipient with camera, newest plan and tonight's consent (list page and API)."""
    now = datetime.now(UTC)
    versions = await plans.versions_of(db)
    loaded = await plans.load_plans(db, [vs[0].id for vs in versions.values()], bulk=True)
    cams = await cameras.statuses(rt, db)
    out = []
    listed = select(Recipient).where(Recipient.archived_at.is_(None)).order_by(Recipient.name)
    for r in (await db.execute(listed)).scalars():
        vs = versions.get(r.id, [])
        newest = loaded.get(vs[0].id) if vs else None
        night = plans.tonight(newest, now) if newest else schedules.night_of(now)
        chosen = plans.in_force(vs, night)
        active = loaded.get(chosen.id) if chosen else None
        if chosen is not None and active is None:
            active = (await plans.load_plans(db, [chosen.id], bulk=True)).get(chosen.id)
        out.append(RecipientSummary(
            id=r.id, name=r.name, address=r.address, unit=r.unit, camera=cams.get(r.id),
            plan_version=vs[0].version if vs else None,
            check_times=[c.at.strftime("%H:%M") for c in newest.check_times] if newest else [],
            consent=consent_status(plans.recorded_consent(r), night, r.consent_recorded,
                                   active is not None and active.consent is not None)))
    return out


async def detail(rt: Runtime, db: AsyncSession, rid: int) -> RecipientDetail:
    recipient = await db.get(Recipient, rid)
    if recipient is None:
        raise ServiceError(404, "manage.error.no_recipient")
    now = datetime.now(UTC)
    newest = await plans.newest_plan(db, rid)
    current = await plans.current_plan(db, rid, now)
    plan = newest[1] if newest else None
    night = plans.tonight(plan, now) if plan else schedules.night_of(now)
    cams = await cameras.statuses(rt, db, [rid])
    return RecipientDetail(
        id=recipient.id, name=recipient.name, address=recipient.address, unit=recipient.unit,
        access_info=recipient.access_info, camera=cams.get(rid),
        contacts=[Contact.model_validate(c) for c in recipient.contacts or []],
        care_notes=recipient.care_notes or "", archived_at=recipient.archived_at,
        plan_version=newest[0].version if newest else None,
        check_times=[c.at.strftime("%H:%M") for c in plan.check_times] if plan else [],
        consent=consent_status(plans.recorded_consent(recipient), night,
                               recipient.consent_recorded,
                               current is not None and current[0].data.get("consent") is not None),
        plan=schedules.plan_to_dict(plan.with_consent(None)) if plan else None,
        in_force_version=current[0].version if current else None,
        plan_created_at=newest[0].created_at if newest else None,
        plan_created_by=newest[0].created_by if newest else None,
        tonight=night)


async def create(rt: Runtime, body: RecipientCreate, actor: str) -> RecipientDetail:
    """A new recipient, without plan (so without checks) until a plan is saved."""
    async with rt.write() as db:
        recipient = Recipient(name=body.name, address=body.address,
                              access_info=body.access_info, unit=body.unit)
        db.add(recipient)
        await db.flush()
        await audit.append(db, actor, "recipient.created", f"recipient:{recipient.id}",
                           {"name": recipient.name, "address": recipient.address})
        rid = recipient.id
    async with rt.read() as db:
        return await detail(rt, db, rid)


async def exists(db: AsyncSession, rid: int) -> None:
    """404 in the shared shape unless the recipient exists."""
    if await db.get(Recipient, rid) is None:
        raise ServiceError(404, "manage.error.no_recipient")


class RecipientUpdate(BaseModel):
    """Only the fields given change; ``contacts`` is replaced whole."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str | None = Field(None, min_length=1, max_length=128, pattern=_PLAIN)
    address: str | None = Field(None, min_length=1, max_length=256, pattern=_PLAIN)
    unit: str | None = Field(None, max_length=64, pattern=_PLAIN)
    access_info: str | None = Field(None, max_length=2000, pattern=r"^[^\x00]*$")
    contacts: list[Contact] | None = Field(None, max_length=20)
    care_notes: str | None = Field(None, max_length=4000, pattern=r"^[^\x00]*$",
                                   description="mobility, hearing, key holder, ...")


#: audited as "changed" only: a door code must not end up in the log
SECRET_FIELDS = frozenset({"access_info"})


async def live(db: AsyncSession, rid: int) -> Recipient:
    """The recipient, if they may still be changed: 404 unknown, 409 archived."""
    recipient = await db.get(Recipient, rid)
    if recipient is None:
        raise ServiceError(404, "manage.error.no_recipient")
    if recipient.archived_at is not None:
        raise ServiceError(409, "manage.error.archived")
    return recipient


async def update(rt: Runtime, rid: int, body: RecipientUpdate, actor: str) -> RecipientDetail:
    """Change what was given; one audit entry with each field's old and new value (access
    information only as changed, without either value)."""
    async with rt.write() as db:
        recipient = await live(db, rid)
        changes: dict[str, Any] = {}
        for name, value in body.model_dump(exclude_none=True).items():
            old = getattr(recipient, name)
            if old == value:
                continue
            changes[name] = {"changed": True} if name in SECRET_FIELDS else {
                "old": old, "new": value}
            setattr(recipient, name, value)
        if changes:
            await audit.append(db, actor, "recipient.changed", f"recipient:{rid}",
                               {"recipient": rid, "changes": changes})
    async with rt.read() as db:
        return await detail(rt, db, rid)


async def end_checks(db: AsyncSession, rid: int, reason: str, actor: str, now: datetime,
                     detail: str | None = None, started_by: datetime | None = None) -> int:
    """End the recipient's planned and open checks (with ``started_by``: only those whose
    window opened by then; the planner re-derives the later ones). Guarded: a check an
    outcome or the sweep moved meanwhile is left as they left it. How many ended."""
    query = select(Check.id, Check.state).where(
        Check.recipient_id == rid, Check.state.in_([State.PLANNED.value, State.OPEN.value]))
    if started_by is not None:
        query = query.where(Check.opens_at <= started_by)
    rows = (await db.execute(query)).all()
    ended = 0
    for check_id, state in rows:
        step = checks.end_early(State(state), reason)
        ended += await check_rows.move(db, check_id, State(state), step, now=now, actor=actor,
                                       reason_detail=detail)
    return ended


async def archive(rt: Runtime, rid: int, actor: str) -> RecipientDetail:
    """Off every working list, checks ended, cameras revoked; history kept."""
    now = datetime.now(UTC)
    async with rt.write() as db:
        recipient = await live(db, rid)
        recipient.archived_at = now
        ended = await end_checks(db, rid, "archived", actor, now)
        cams = list((await db.execute(select(Camera.id).where(
            Camera.recipient_id == rid, Camera.revoked.is_(False)))).scalars())
        await audit.append(db, actor, "recipient.archived", f"recipient:{rid}",
                           {"recipient": rid, "checks_ended": ended, "cameras": cams})
    for camera_id in cams:
        await cameras.revoke(rt, camera_id, actor)
    async with rt.read() as db:
        return await detail(rt, db, rid)
