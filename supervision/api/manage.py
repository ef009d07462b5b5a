"""Care managers: recipients, consent, check plans, their history and a preview of nights.

A plan is saved whole, as a new version (the JSON form of ``schedules``; pauses,
skip-nights and consent are part of it), so the history is simply the list of versions.
Saving validates with ``schedules.parse_plan`` and answers 422 with every problem tied to
its field; otherwise the version, its audit entry and the re-planned checks commit
together, and then the newly signed plan goes to the recipient's camera.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from schedules.night import skip_reason
from schedules.plan import RANGES
from supervision import audit, planning
from supervision.api.agents import push_plan
from supervision.api.deps import RowId, Who, require, runtime
from supervision.errors import ServiceError, error_responses
from supervision.models import Camera, Recipient
from supervision.models import Plan as PlanRow
from supervision.runtime import Runtime

log = logging.getLogger("supervision.manage")
router = APIRouter(prefix="/api", tags=["manage"])
managers = require("manager", "admin")

MAX_REASON = 200  # "paused: <reason>" must fit the checks' 256-character reason column
MAX_NIGHTS = 62
PREVIEW_YEARS = 5
_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


# --- the plan's JSON form, for the OpenAPI schema (parsing is schedules.parse_plan's) ---

def _lo(name: str) -> int:
    return RANGES[name][0]


def _hi(name: str) -> int:
    return RANGES[name][1]


class CheckTimeDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str = Field(pattern=_TIME, description="local wall-clock time HH:MM", examples=["22:00"])
    weekdays: list[int] = Field(default=[0, 1, 2, 3, 4, 5, 6],
                                description="weekdays of the night's evening, 0=Monday..6")


class FollowUpDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_minutes: int = Field(15, ge=_lo("follow_up.interval_minutes"),
                                 le=_hi("follow_up.interval_minutes"))
    max_follow_ups: int = Field(1, ge=_lo("follow_up.max_follow_ups"),
                               le=_hi("follow_up.max_follow_ups"))


class ConsentDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    given_on: date
    valid_until: date | None = Field(None, description="last night covered; null = open-ended")


class PauseDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: date
    end: date = Field(description="last night of the pause, inclusive")
    reason: str = Field(min_length=1, max_length=MAX_REASON)


class SkipNightDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    night: date = Field(description="the night, named by its evening")
    reason: str = Field(min_length=1, max_length=MAX_REASON)


class PlanDocument(BaseModel):
    """A recipient's check plan: the JSON form of ``schedules`` (schedules/codec.py)."""

    model_config = ConfigDict(extra="forbid")
    timezone: str = Field(schedules.DEFAULT_TZ, description="IANA time zone")
    check_times: list[CheckTimeDoc]
    window_before_minutes: int = Field(15, ge=_lo("window_before_minutes"),
                                      le=_hi("window_before_minutes"))
    window_after_minutes: int = Field(15, ge=_lo("window_after_minutes"),
                                     le=_hi("window_after_minutes"))
    max_lookin_seconds: int = Field(30, ge=_lo("max_lookin_seconds"),
                                   le=_hi("max_lookin_seconds"))
    follow_up: FollowUpDoc = Field(FollowUpDoc.model_validate({}))  # never mutated
    consent: ConsentDoc | None = Field(None, description="null: no consent, no checks")
    pauses: list[PauseDoc] = Field(default_factory=list)
    skip_nights: list[SkipNightDoc] = Field(default_factory=list)
    night_boundary: str = Field("12:00", pattern=_TIME,
                                description="local time where one night ends and the next begins")
    effective_from: date | None = Field(
        None, description="first night this version applies to; null = from tonight. "
        "Earlier nights keep the previous version.")


PLAN_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/PlanDocument"}}}}}


class PlanProblem(BaseModel):
    loc: list[str | int] = Field(description='["body", ...path of the field]')
    msg: str = Field(description="what is wrong (English, from the schedules domain)")
    type: str = Field(description='"plan" for a problem of the plan')
    field: str | None = Field(None, description="type plan: dotted path in the plan, e.g. "
                              "check_times.1.at; '' = the plan as a whole")
    code: str | None = Field(None, description=(
        "type plan: stable machine code of the problem, e.g. range, overlap, time.format, "
        "unknown-key ('' = none); a user interface shows its translation "
        "(key plan_error.<code>) instead of msg"), examples=["overlap"])
    params: dict[str, str | int] | None = Field(None, description=(
        "type plan: the values msg interpolates, by name, for the translated message; "
        "for code range, unit is a unit code (minutes, seconds, follow-ups)"),
        examples=[{"low": 10, "high": 120, "unit": "seconds", "value": 5}])


class PlanProblems(BaseModel):
    """422: every problem at once, nothing saved. Problems of the plan have type "plan" and
    a field; a bad query or path parameter gets the framework's usual items."""

    detail: list[PlanProblem]


# --- recipients ---

class CameraStatus(BaseModel):
    id: str
    enrolled: bool
    online: bool
    last_seen_at: datetime | None


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
    plan: PlanDocument | None = Field(description="the newest version: what the editor edits")
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


class Replanned(BaseModel):
    created: int
    updated: int
    removed: int


class PlanSaved(BaseModel):
    version: int
    changed: bool = Field(description="false: identical to the newest version, nothing saved")
    effective_from: date | None
    checks: Replanned
    pushed_to: list[str] = Field(description="cameras the signed plan was sent to now")


class Change(BaseModel):
    field: str
    old: Any = None
    new: Any = None


class HistoryEntry(BaseModel):
    version: int
    created_at: datetime
    created_by: str
    effective_from: date | None
    plan: PlanDocument
    changes: list[Change] = Field(description="against the version before")


# --- preview ---

class Skip(BaseModel):
    code: Literal["no-consent", "paused", "skip-night"]
    text: str = Field(description="the reason the care manager gave")


class DstChange(BaseModel):
    at: datetime = Field(description="UTC instant the clocks change")
    offset_before: str
    offset_after: str
    minutes: int = Field(description="+60: clocks forward (short night), -60: back")


class PreviewWindow(BaseModel):
    at: str = Field(description="the agreed local check time")
    due: datetime
    opens: datetime
    closes: datetime
    due_local: str
    opens_local: str
    closes_local: str
    dst: Literal["gap", "repeated"] | None = Field(
        description="gap: the time does not exist that night and moves to the end of the "
        "gap; repeated: it occurs twice and the first is used")
    skip: Skip | None


class Tick(BaseModel):
    at: datetime
    label: str


class PreviewNight(BaseModel):
    night: date
    weekday: int
    version: int | None = Field(description="plan version used; null = no plan in force")
    draft: bool = Field(description="the unsaved draft decides this night")
    starts_at: datetime
    ends_at: datetime
    hours: float
    dst_change: DstChange | None
    skip: Skip | None
    windows: list[PreviewWindow]
    ticks: list[Tick]


class Preview(BaseModel):
    recipient_id: int
    timezone: str
    tonight: date
    next_dst_night: date | None = Field(description="next night with a clock change, within a year")
    nights: list[PreviewNight]


# --- helpers ---

def _problems(errors: list[schedules.FieldError]) -> HTTPException:
    def loc(path: str) -> list[str | int]:
        return ["body", *(int(p) if p.isdigit() else p for p in path.split(".") if p)]
    return HTTPException(422, [PlanProblem(loc=loc(e.field), msg=e.message, type="plan",
                                           field=e.field, code=e.code, params=dict(e.params))
                               .model_dump() for e in errors])


async def _body(request: Request) -> object:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ServiceError(400, "manage.error.body") from exc


def validate(data: object, now: datetime) -> schedules.Plan:
    """``schedules.parse_plan`` plus what storing needs; 422 listing every problem at once."""
    plan: schedules.Plan | None = None
    errors: list[schedules.FieldError] = []
    try:
        plan = schedules.parse_plan(data)
    except schedules.PlanError as exc:
        errors.extend(exc.errors)
    errors.extend(_storage_errors(data, plan, now))
    if errors or plan is None:
        raise _problems(errors)
    return plan


def _storage_errors(data: object, plan: schedules.Plan | None,
                    now: datetime) -> list[schedules.FieldError]:
    """Rules of the service, not the domain: no rewriting past nights, reasons that fit."""
    if not isinstance(data, dict):
        return []
    errors: list[schedules.FieldError] = []
    effective = plan.effective_from if plan else _date_or_none(data.get("effective_from"))
    if effective is not None:
        first = planning.tonight(plan, now) if plan else schedules.night_of(now)
        if effective < first:
            errors.append(schedules.FieldError(
                "effective_from", f"must not be before tonight ({first.isoformat()}), "
                f"got {effective.isoformat()}", "effective_from.past",
                {"tonight": first.isoformat(), "value": effective.isoformat()}))
    for name in ("pauses", "skip_nights"):
        items = data.get(name)
        for i, item in enumerate(items if isinstance(items, list) else []):
            reason = item.get("reason") if isinstance(item, dict) else None
            if not isinstance(reason, str):
                continue
            if len(reason) > MAX_REASON:
                errors.append(schedules.FieldError(
                    f"{name}.{i}.reason", f"must be at most {MAX_REASON} characters",
                    "too-long", {"max": MAX_REASON}))
            if any(ord(ch) < 32 or ord(ch) == 127 for ch in reason):
                errors.append(schedules.FieldError(
                    f"{name}.{i}.reason", "must not contain control characters",
                    "control-chars"))
    return errors


def _date_or_none(value: object) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


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


async def _cameras(rt: Runtime, db: AsyncSession,
                   recipient_ids: list[int] | None = None) -> dict[int, CameraStatus]:
    query = select(Camera).where(Camera.revoked.is_(False)).order_by(Camera.id)
    if recipient_ids is not None:
        query = query.where(Camera.recipient_id.in_(recipient_ids))
    out: dict[int, CameraStatus] = {}
    for cam in (await db.execute(query)).scalars():
        status = CameraStatus(id=cam.id, enrolled=cam.public_key is not None,
                              online=rt.links.is_online(cam.id), last_seen_at=cam.last_seen_at)
        best = out.get(cam.recipient_id)
        if best is None or (status.online, status.enrolled) > (best.online, best.enrolled):
            out[cam.recipient_id] = status
    return out


async def summaries(rt: Runtime, db: AsyncSession) -> list[RecipientSummary]:
    """Every recipient with camera, newest plan and tonight's consent (list page and API)."""
    now = datetime.now(UTC)
    versions = await planning.versions_of(db)
    plans = await planning.load_plans(db, [vs[0].id for vs in versions.values()], bulk=True)
    cams = await _cameras(rt, db)
    out = []
    for r in (await db.execute(select(Recipient).order_by(Recipient.name))).scalars():
        vs = versions.get(r.id, [])
        newest = plans.get(vs[0].id) if vs else None
        night = planning.tonight(newest, now) if newest else schedules.night_of(now)
        chosen = planning.in_force(vs, night)
        active = plans.get(chosen.id) if chosen else None
        if chosen is not None and active is None:
            active = (await planning.load_plans(db, [chosen.id], bulk=True)).get(chosen.id)
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
    newest = await planning.newest_plan(db, rid)
    current = await planning.current_plan(db, rid, now)
    plan = newest[1] if newest else None
    night = planning.tonight(plan, now) if plan else schedules.night_of(now)
    cams = await _cameras(rt, db, [rid])
    return RecipientDetail(
        id=recipient.id, name=recipient.name, address=recipient.address, unit=recipient.unit,
        access_info=recipient.access_info, camera=cams.get(rid),
        plan_version=newest[0].version if newest else None,
        check_times=[c.at.strftime("%H:%M") for c in plan.check_times] if plan else [],
        consent=consent_status(current[1] if current else None, night),
        plan=PlanDocument.model_validate(schedules.plan_to_dict(plan)) if plan else None,
        in_force_version=current[0].version if current else None,
        plan_created_at=newest[0].created_at if newest else None,
        plan_created_by=newest[0].created_by if newest else None,
        tonight=night)


def _offset(delta: timedelta | None) -> str:
    minutes = int((delta or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _dst_change(start: datetime, end: datetime, zi: ZoneInfo) -> DstChange | None:
    before, after = start.astimezone(zi).utcoffset(), end.astimezone(zi).utcoffset()
    if before == after or before is None or after is None:
        return None
    lo, hi = start, end  # bisect for the first instant with the new offset
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zi).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return DstChange(at=hi.replace(microsecond=0), offset_before=_offset(before),
                     offset_after=_offset(after),
                     minutes=int((after - before).total_seconds() // 60))


def _skip(reason: str | None) -> Skip | None:
    if reason is None:
        return None
    code, _, text = reason.partition(":")
    return Skip(code=code.strip(), text=text.strip())  # type: ignore[arg-type]


def _local(instant: datetime, zi: ZoneInfo) -> str:
    return instant.astimezone(zi).strftime("%H:%M")


DstNote = Literal["gap", "repeated"]


def _dst_note(window: schedules.Window, day: date, zi: ZoneInfo) -> DstNote | None:
    if window.due.astimezone(zi).time().replace(second=0) != window.local_time:
        return "gap"
    wall = datetime.combine(day, window.local_time)
    if wall.replace(tzinfo=zi, fold=0).utcoffset() != wall.replace(tzinfo=zi, fold=1).utcoffset():
        return "repeated"
    return None


def preview_night(night: date, plan: schedules.Plan | None, version: int | None, draft: bool,
                  tz: str, boundary: Any) -> PreviewNight:
    if plan is not None:
        tz, boundary = plan.timezone, plan.night_boundary
    zi = ZoneInfo(tz)
    start, end = schedules.night_bounds(night, tz, boundary)
    windows = []
    for w in schedules.expand(plan, night, include_skipped=True) if plan else []:
        day = night if w.local_time >= boundary else night + timedelta(days=1)
        windows.append(PreviewWindow(
            at=w.local_time.strftime("%H:%M"), due=w.due, opens=w.opens, closes=w.closes,
            due_local=_local(w.due, zi), opens_local=_local(w.opens, zi),
            closes_local=_local(w.closes, zi), dst=_dst_note(w, day, zi),
            skip=_skip(w.skip_reason)))
    ticks = []
    tick = start.replace(minute=0, second=0, microsecond=0)
    while tick <= end:
        if tick >= start:
            ticks.append(Tick(at=tick, label=_local(tick, zi)))
        tick += timedelta(hours=1)
    return PreviewNight(
        night=night, weekday=night.weekday(), version=version, draft=draft, starts_at=start,
        ends_at=end, hours=round((end - start).total_seconds() / 3600, 2),
        dst_change=_dst_change(start, end, zi),
        skip=_skip(skip_reason(plan, night)) if plan else None, windows=windows, ticks=ticks)


def next_dst_night(start: date, tz: str, boundary: Any) -> date | None:
    zi = ZoneInfo(tz)
    for k in range(366):
        night = start + timedelta(days=k)
        a, b = schedules.night_bounds(night, tz, boundary)
        if a.astimezone(zi).utcoffset() != b.astimezone(zi).utcoffset():
            return night
    return None


async def preview(db: AsyncSession, rid: int, nights: int, start: date | None,
                  draft: schedules.Plan | None = None) -> Preview:
    """The coming nights as they will be (with ``draft``: as they would be if it were saved)."""
    if await db.get(Recipient, rid) is None:
        raise ServiceError(404, "manage.error.no_recipient")
    now = datetime.now(UTC)
    versions = (await planning.versions_of(db, [rid])).get(rid, [])
    plans = await planning.load_plans(db, [v.id for v in versions])
    newest_no = versions[0].version if versions else 0
    if draft is not None:
        versions = [planning.Version(-1, rid, newest_no + 1, draft.effective_from), *versions]
        plans[-1] = draft
    newest = plans.get(versions[0].id) if versions else None
    tz = newest.timezone if newest else schedules.DEFAULT_TZ
    boundary = newest.night_boundary if newest else time(12, 0)
    first = schedules.night_of(now, tz, boundary)
    start = start or first
    if abs((start - first).days) > PREVIEW_YEARS * 366:
        raise HTTPException(422, [{"loc": ["query", "start"], "type": "value_error",
                                   "msg": f"must be within {PREVIEW_YEARS} years of tonight"}])
    out = []
    for k in range(nights):
        night = start + timedelta(days=k)
        chosen = planning.in_force(versions, night)
        plan = plans.get(chosen.id) if chosen else None
        out.append(preview_night(night, plan, chosen.version if chosen else None,
                                 chosen is not None and chosen.id == -1, tz, boundary))
    return Preview(recipient_id=rid, timezone=tz, tonight=first,
                   next_dst_night=next_dst_night(start, tz, boundary), nights=out)


# --- routes ---

READ = error_responses(401, 403, 404)
PLAN_WRITE: dict[int | str, dict[str, Any]] = {
    **error_responses(400, 401, 403, 404, 409), 422: {"model": PlanProblems}}


@router.get("/recipients", response_model=list[RecipientSummary],
            responses=error_responses(401, 403))
async def list_recipients(rt: Runtime = Depends(runtime),
                          _: Who = Depends(managers)) -> list[RecipientSummary]:
    """Every recipient with camera status, plan version, check times and consent tonight."""
    async with rt.read() as db:
        return await summaries(rt, db)


@router.post("/recipients", response_model=RecipientDetail, status_code=201,
             responses=error_responses(400, 401, 403))
async def create_recipient(body: RecipientCreate, rt: Runtime = Depends(runtime),
                           current: Who = Depends(managers)) -> RecipientDetail:
    """A new recipient, without plan (so without checks) until a plan is saved."""
    async with rt.write() as db:
        recipient = Recipient(name=body.name, address=body.address,
                              access_info=body.access_info, unit=body.unit)
        db.add(recipient)
        await db.flush()
        await audit.append(db, current.user.username, "recipient.created",
                           f"recipient:{recipient.id}",
                           {"name": recipient.name, "address": recipient.address})
        rid = recipient.id
    async with rt.read() as db:
        return await detail(rt, db, rid)


@router.get("/recipients/{rid}", response_model=RecipientDetail, responses=READ)
async def get_recipient(rid: RowId, rt: Runtime = Depends(runtime),
                        _: Who = Depends(managers)) -> RecipientDetail:
    """One recipient: consent, camera, and the newest plan with its version."""
    async with rt.read() as db:
        return await detail(rt, db, rid)


@router.put("/recipients/{rid}/plan", response_model=PlanSaved, openapi_extra=PLAN_BODY,
            responses=PLAN_WRITE)
async def save_plan(rid: RowId, request: Request,
                    base_version: int | None = Query(
                        None, ge=0, description="the version the editor started from; "
                        "409 if someone saved a newer one meanwhile (0 = none existed)"),
                    rt: Runtime = Depends(runtime),
                    current: Who = Depends(managers)) -> PlanSaved:
    """Save a plan (body: PlanDocument) as a new version.

    Invalid: 422 listing every problem by field, nothing saved. Valid: the version, the
    audit entry ``plan.changed`` and the re-planned not-yet-open checks commit together;
    then the plan in force is signed and sent to the recipient's camera.
    """
    data = await _body(request)
    now = datetime.now(UTC)
    plan = validate(data, now)
    actor = current.user.username
    async with rt.write() as db:
        await planning.lock(db)  # concurrent saves get consecutive versions
        if await db.get(Recipient, rid) is None:
            raise ServiceError(404, "manage.error.no_recipient")
        newest = await planning.newest_plan(db, rid)
        version = newest[0].version if newest else 0
        if base_version is not None and base_version != version:
            raise ServiceError(409, "manage.error.stale", version=version)
        new = schedules.plan_to_dict(plan)
        old = schedules.plan_to_dict(newest[1]) if newest else None
        if new == old:
            return PlanSaved(version=version, changed=False, effective_from=plan.effective_from,
                             checks=Replanned(created=0, updated=0, removed=0), pushed_to=[])
        db.add(PlanRow(recipient_id=rid, version=version + 1, data=new, created_at=now,
                       created_by=actor))
        await db.flush()
        await audit.append(db, actor, "plan.changed", f"recipient:{rid}", {
            "recipient": rid, "version": version + 1, "previous": version or None,
            "effective_from": new["effective_from"],
            "changes": [c.model_dump() for c in diff(old, new)]})
        changes = await planning.materialise(db, now, recipient_ids=[rid], replace=True)
        cameras = list((await db.execute(select(Camera.id).where(
            Camera.recipient_id == rid, Camera.revoked.is_(False),
            Camera.public_key.is_not(None)))).scalars())
    pushed = [cid for cid in cameras if await push_plan(rt, cid)]
    log.info("recipient %s: plan version %s by %s; checks %s", rid, version + 1, actor, changes)
    return PlanSaved(version=version + 1, changed=True, effective_from=plan.effective_from,
                     checks=Replanned(created=changes.created, updated=changes.updated,
                                      removed=changes.removed), pushed_to=pushed)


@router.get("/recipients/{rid}/plan/history", response_model=list[HistoryEntry],
            responses=READ)
async def plan_history(rid: RowId, rt: Runtime = Depends(runtime),
                       _: Who = Depends(managers)) -> list[HistoryEntry]:
    """Every version, newest first: who saved it, when, from which night, what changed."""
    async with rt.read() as db:
        if await db.get(Recipient, rid) is None:
            raise ServiceError(404, "manage.error.no_recipient")
        rows = (await db.execute(select(PlanRow).where(PlanRow.recipient_id == rid)
                                 .order_by(PlanRow.version))).scalars().all()
    out: list[HistoryEntry] = []
    before: dict[str, Any] | None = None
    for row in rows:
        plan = planning.parse_stored(row.data)
        now_dict = schedules.plan_to_dict(plan)
        out.append(HistoryEntry(version=row.version, created_at=row.created_at,
                                created_by=row.created_by, effective_from=plan.effective_from,
                                plan=PlanDocument.model_validate(now_dict),
                                changes=diff(before, now_dict)))
        before = now_dict
    return out[::-1]


@router.get("/recipients/{rid}/preview", response_model=Preview, responses=READ)
async def preview_saved(rid: RowId, nights: int = Query(14, ge=1, le=MAX_NIGHTS),
                        start: date | None = Query(
                            None, description="first night; default tonight, at most "
                            f"{PREVIEW_YEARS} years away"),
                        rt: Runtime = Depends(runtime),
                        _: Who = Depends(managers)) -> Preview:
    """The coming nights under the saved versions: windows in local time and UTC, skipped
    nights with their reason, and nights with a clock change flagged."""
    async with rt.read() as db:
        return await preview(db, rid, nights, start)


@router.post("/recipients/{rid}/preview", response_model=Preview, openapi_extra=PLAN_BODY,
             responses=PLAN_WRITE)
async def preview_draft(rid: RowId, request: Request,
                        nights: int = Query(14, ge=1, le=MAX_NIGHTS),
                        start: date | None = Query(None, description="as for GET"),
                        rt: Runtime = Depends(runtime),
                        _: Who = Depends(managers)) -> Preview:
    """Validate an unsaved plan (body: PlanDocument) and preview the nights it would give;
    422 exactly as saving would answer. Nothing is saved."""
    draft = validate(await _body(request), datetime.now(UTC))
    async with rt.read() as db:
        return await preview(db, rid, nights, start, draft)


async def push_switched(rt: Runtime, now: datetime | None = None) -> list[str]:
    """Send plans to cameras whose recipient's in-force version changed at tonight's start.

    A version saved with a future ``effective_from`` is not sent at save time (the agent
    must enforce the old version until then); the planning job calls this so the agent
    gets it once its first night has begun. Repeats during that night are harmless.
    """
    now = now or datetime.now(UTC)
    async with rt.read() as db:
        versions = await planning.versions_of(db)
        due = []
        for rid, vs in versions.items():
            starting = [v for v in vs if v.effective_from is not None]
            if not starting:
                continue
            current = await planning.current_plan(db, rid, now)
            if current is not None and current[1].effective_from == planning.tonight(
                    current[1], now):
                due.append(rid)
        cameras = list((await db.execute(select(Camera.id).where(
            Camera.recipient_id.in_(due), Camera.revoked.is_(False),
            Camera.public_key.is_not(None)))).scalars()) if due else []
    return [cid for cid in cameras if await push_plan(rt, cid)]
