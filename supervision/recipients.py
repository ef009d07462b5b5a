"""Care recipients as care managers see them: camera, newest plan, tonight's consent."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from supervision import audit, cameras, plans
from supervision.cameras import CameraStatus
from supervision.errors import ServiceError
from supervision.models import Recipient
from supervision.runtime import Runtime

#: a plan in its JSON form, documented by the domain's own schema (schedules.plan_json_schema)
PlanJson = Annotated[dict[str, Any],
                     WithJsonSchema({"allOf": [{"$ref": "#/components/schemas/PlanDocument"}]})]


class ConsentStatus(BaseModel):
    state: Literal["valid", "none", "expired", "not-yet"]
    given_on: date | None = None
    valid_until: date | None = None


class RecipientSummary(BaseModel):
    id: int
    name: str
    address: str
    unit: str
    camera: CameraStatus | None
    plan_version: int | None = Field(description="newest version, in force or pending")
    check_times: list[str]
    consent: ConsentStatus


class RecipientDetail(RecipientSummary):
    access_info: str
    plan: PlanJson | None = Field(description="the newest version: what the editor edits")
    in_force_version: int | None = Field(description="the version in force tonight")
    plan_created_at: datetime | None
    plan_created_by: str | None
    tonight: date


_PLAIN = r"^[^\x00-\x1f\x7f]*$"  # no control characters (PostgreSQL refuses NUL in text)


class RecipientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=128, pattern=_PLAIN)
    address: str = Field(min_length=1, max_length=256, pattern=_PLAIN)
    access_info: str = Field("", max_length=2000, pattern=r"^[^\x00]*$",
                             description="door code, key box; shown to the patrol on dispatch")
    unit: str = Field("", max_length=64, pattern=_PLAIN)


def consent_status(plan: schedules.Plan | None, night: date) -> ConsentStatus:
    consent = plan.consent if plan else None
    if consent is None:
        return ConsentStatus(state="none")
    if night < consent.given_on:
        state: Literal["valid", "expired", "not-yet"] = "not-yet"
    elif consent.valid_until is not None and night > consent.valid_until:
        state = "expired"
    else:
        state = "valid"
    return ConsentStatus(state=state, given_on=consent.given_on, valid_until=consent.valid_until)


async def summaries(rt: Runtime, db: AsyncSession) -> list[RecipientSummary]:
    """Every recipient with camera, newest plan and tonight's consent (list page and API)."""
    now = datetime.now(UTC)
    versions = await plans.versions_of(db)
    loaded = await plans.load_plans(db, [vs[0].id for vs in versions.values()], bulk=True)
    cams = await cameras.statuses(rt, db)
    out = []
    for r in (await db.execute(select(Recipient).order_by(Recipient.name))).scalars():
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
            consent=consent_status(active, night)))
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
        plan_version=newest[0].version if newest else None,
        check_times=[c.at.strftime("%H:%M") for c in plan.check_times] if plan else [],
        consent=consent_status(current[1] if current else None, night),
        plan=schedules.plan_to_dict(plan) if plan else None,
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
