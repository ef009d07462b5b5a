"""Saving a care plan as a new version, and the history of versions.

A plan is saved whole, as a new immutable version (the JSON form of ``schedules``; pauses
and skip-nights are part of it, consent is not: it is on record), so the history is simply
the list of versions.
Saving validates with ``schedules.parse_plan`` and refuses with every problem tied to its
field; otherwise the version, its audit entry and the re-planned checks commit together,
and then the newly signed plan goes to the recipient's camera.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from schedules.codec import TIME_PATTERN
from schedules.localtime import zone
from supervision import audit, cameras, planning, plans, recipients
from supervision.errors import BadInput, ServiceError
from supervision.models import Camera
from supervision.models import Plan as PlanRow
from supervision.recipients import PlanJson
from supervision.runtime import Runtime

log = logging.getLogger("supervision.plan_versions")


def rejected(errors: list[schedules.FieldError]) -> BadInput:
    """A plan's problems as a 422, each tied to its field (``PlanProblem`` in the API)."""
    def loc(path: str) -> list[str | int]:
        return ["body", *(int(p) if p.isdigit() else p for p in path.split(".") if p)]
    return BadInput([{"loc": loc(e.field), "msg": e.message, "type": "plan", "field": e.field,
                      "code": e.code, "params": dict(e.params)} for e in errors])


class Replanned(BaseModel):
    created: int
    updated: int
    removed: int


#: why a saved plan's checks may send the patrol instead of a look-in (``PlanSaved.warnings``)
SaveWarning = Literal["no-camera", "camera-not-enrolled", "camera-offline"]


class PlanSaved(BaseModel):
    version: int
    changed: bool = Field(description="false: identical to the newest version, nothing saved")
    effective_from: date | None
    checks: Replanned
    pushed_to: list[str] = Field(description="cameras that acknowledged the signed plan now")
    warnings: list[SaveWarning] = Field(default_factory=list, description=(
        "codes: the plan has check times but no look-in can be made now, so a check due "
        "before that changes sends the night patrol: no-camera (none registered), "
        "camera-not-enrolled (registered, never set up), camera-offline (not connected)"))


class Change(BaseModel):
    field: str
    old: Any = None
    new: Any = None


class HistoryEntry(BaseModel):
    version: int
    created_at: datetime
    created_by: str
    effective_from: date | None
    plan: PlanJson
    changes: list[Change] = Field(description="against the version before")


def validate(data: object, now: datetime) -> schedules.Plan:
    """``schedules.parse_plan`` plus the service's rules of its own: no version may
    rewrite nights that have begun, and its ``consent`` is null. Raises ``BadInput``
    listing every problem.

    Consent comes only from consent records (``supervision.consent``), so a plan that
    carries consent dates is refused (422, code ``consent.on_record``) rather than
    accepted and ignored: a client that believes it enabled look-ins must hear that it
    did not. Stored versions from before keep their dates, which nothing reads."""
    plan: schedules.Plan | None = None
    errors: list[schedules.FieldError] = []
    try:
        plan = schedules.parse_plan(data)
    except schedules.PlanError as exc:
        errors.extend(exc.errors)
    # every problem at once, so effective_from is judged even when other fields are wrong;
    # "tonight" is the plan's own (its zone and night boundary) as far as they can be read
    effective = plan.effective_from if plan else _field(data, "effective_from", _date)
    if effective is not None:
        first = plans.tonight(plan, now) if plan else schedules.night_of(
            now, _field(data, "timezone", _zone) or schedules.DEFAULT_TZ,
            _field(data, "night_boundary", _time) or time(12, 0))
        if effective < first:
            errors.append(schedules.FieldError(
                "effective_from", f"must not be before tonight ({first.isoformat()}), "
                f"got {effective.isoformat()}", "effective_from.past",
                {"tonight": first.isoformat(), "value": effective.isoformat()}))
    if isinstance(data, dict) and data.get("consent") is not None:
        errors.append(schedules.FieldError(
            "consent", "must be null: consent is recorded on the recipient "
            "(POST /api/recipients/{rid}/consent), never in the plan", "consent.on_record"))
    if errors or plan is None:
        raise rejected(errors)
    return plan


T = TypeVar("T")


def _field(data: object, name: str, read: Callable[[str], T]) -> T | None:
    """One field of a plan that did not parse, if it reads on its own."""
    value = data.get(name) if isinstance(data, dict) else None
    try:
        return read(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _date(text: str) -> date:
    return date.fromisoformat(text)


def _zone(text: str) -> str:
    zone(text)  # ValueError for what is not a portable zone
    return text


def _time(text: str) -> time:
    if not re.fullmatch(TIME_PATTERN, text):
        raise ValueError(text)
    return time(int(text[:2]), int(text[3:5]))


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[Change]:
    """Field-by-field changes between two plan dicts (nested objects one level down)."""
    if old is None:
        return [Change(field=k, new=v) for k, v in sorted(new.items())]
    out: list[Change] = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(Change(field=f"{key}.{k}", old=a.get(k), new=b.get(k))
                       for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k))
        else:
            out.append(Change(field=key, old=a, new=b))
    return out


async def save(rt: Runtime, rid: int, data: object, base_version: int | None,
               actor: str) -> PlanSaved:
    """Save ``data`` as the recipient's next version (unless identical to the newest)."""
    now = datetime.now(UTC)
    plan = validate(data, now)
    async with rt.write() as db:
        await plans.lock(db)  # concurrent saves get consecutive versions
        await recipients.live(db, rid)  # an archived recipient's plan is history
        newest = await plans.newest_plan(db, rid)
        version = newest[0].version if newest else 0
        if base_version is not None and base_version != version:
            raise ServiceError(409, "manage.error.stale", version=version)
        new = schedules.plan_to_dict(plan)
        old = schedules.plan_to_dict(newest[1]) if newest else None
        if new == old:
            return PlanSaved(version=version, changed=False, effective_from=plan.effective_from,
                             checks=Replanned(created=0, updated=0, removed=0), pushed_to=[],
                             warnings=await _warnings(rt, db, rid, plan))
        db.add(PlanRow(recipient_id=rid, version=version + 1, data=new, created_at=now,
                       created_by=actor))
        await db.flush()
        await audit.append(db, actor, "plan.changed", f"recipient:{rid}", {
            "recipient": rid, "version": version + 1, "previous": version or None,
            "effective_from": new["effective_from"],
            "changes": [c.model_dump() for c in diff(old, new)]})
        changes = await planning.materialise(db, now, recipient_ids=[rid], replace=True)
        targets = await cameras.enrolled_cameras(db, [rid])
        warnings = await _warnings(rt, db, rid, plan)
    pushed = [cid for cid in targets if await cameras.push_plan(rt, cid)]
    log.info("recipient %s: plan version %s by %s; checks %s", rid, version + 1, actor, changes)
    return PlanSaved(version=version + 1, changed=True, effective_from=plan.effective_from,
                     checks=Replanned(created=changes.created, updated=changes.updated,
                                      removed=changes.removed), pushed_to=pushed,
                     warnings=warnings)


async def _warnings(rt: Runtime, db: AsyncSession, rid: int,
                    plan: schedules.Plan) -> list[SaveWarning]:
    """What the editor must say before the night comes: with no camera to look through,
    each check of this plan sends the patrol (the sweep's ``camera-offline``)."""
    if not plan.check_times:
        return []
    rows = (await db.execute(select(Camera.id, Camera.public_key).where(
        Camera.recipient_id == rid, Camera.revoked.is_(False)))).all()
    if not rows:
        return ["no-camera"]
    enrolled = [cid for cid, key in rows if key is not None]
    if not enrolled:
        return ["camera-not-enrolled"]
    if not any(rt.relay.is_online(cid) for cid in enrolled):
        return ["camera-offline"]
    return []


async def history(rt: Runtime, rid: int) -> list[HistoryEntry]:
    """Every version, newest first: who saved it, when, from which night, what changed."""
    async with rt.read() as db:
        await recipients.exists(db, rid)
        rows = (await db.execute(select(PlanRow).where(PlanRow.recipient_id == rid)
                                 .order_by(PlanRow.version))).scalars().all()
    out: list[HistoryEntry] = []
    before: dict[str, Any] | None = None
    for row in rows:
        plan = plans.parse_stored(row.data)
        now_dict = schedules.plan_to_dict(plan)
        out.append(HistoryEntry(version=row.version, created_at=row.created_at,
                                created_by=row.created_by, effective_from=plan.effective_from,
                                plan=now_dict, changes=diff(before, now_dict)))
        before = now_dict
    return out[::-1]
