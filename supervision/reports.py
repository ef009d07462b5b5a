"""Reports on what was done: a night per unit (also the morning's shift handover page) and
a period (week, month) per unit and for the whole service.

Computed by SQL, on SQLite and PostgreSQL alike: each check's category (on time, late,
missed, skipped, dispatched without a look-in, not yet ended), the counts, the patrol's
times and their median and 90th percentile are expressions the database evaluates, so a
month of 10,000 recipients is a handful of aggregate queries over indexed columns, not
rows pulled into Python (``bench/report.py``). The two dialects differ in one place only,
the seconds between two instants (``seconds_between``); percentiles are nearest-rank,
from window functions both have.

The patrol's times come from the audit log: the entries ``alert.acknowledged``,
``alert.on-the-way``, ``alert.arrived``, ``alert.resolved`` of ``alert:<id>`` are the
record of who moved an alert when. Time to acknowledgement is to the first of them (a
patrol may go straight to "arrived"), time to arrival to ``alert.arrived``.
"""

from __future__ import annotations

import calendar
import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import (
    String,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select, Subquery

import schedules
from schedules.localtime import zone
from supervision import audit
from supervision.models import (
    Alert,
    AuditEvent,
    Check,
    NightRollup,
    Recipient,
    RollupAlert,
    RollupCamera,
    RollupCount,
    User,
    Visit,
)
from supervision.runtime import Runtime

#: what a check came to, in the order the report shows them
CATEGORIES = ("on-time", "late", "missed", "skipped", "no-lookin", "pending")
Category = Literal["on-time", "late", "missed", "skipped", "no-lookin", "pending"]
#: the patrol's moves of an alert, as audited by supervision.dispatch
MOVES = ("acknowledged", "on-the-way", "arrived", "resolved")
#: how a look-in ended when the camera side failed
TECHNICAL_ENDS = ("technical-failure", "agent-gone", "unreported")
PERIODS = ("week", "month")
Period = Literal["week", "month"]


def seconds_between(dialect: str, later: Any, earlier: Any) -> ColumnElement[Any]:
    """``later - earlier`` in seconds, in the database's own arithmetic."""
    if dialect == "postgresql":
        return extract("epoch", later - earlier)
    diff: ColumnElement[Any] = (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return diff


def _checks_with_first_lookin(where: ColumnElement[bool]) -> Subquery:
    """The checks ``where`` selects, each with its first look-in (``first_at``), read per
    check from the index on visits (check_id, requested_at): a correlated subquery, which
    both databases evaluate once per check, in an inner select so the category's two uses
    of it do not evaluate it twice."""
    first = (select(func.min(Visit.requested_at)).where(Visit.check_id == Check.id)
             .correlate(Check).scalar_subquery())
    return (select(Check.id, Check.recipient_id, Check.night, Check.state, Check.due_at,
                   first.label("first_at"))
            .where(where).offset(0).subquery())  # OFFSET 0: PostgreSQL would inline it


def _category(dialect: str, c: Any, late_minutes: int) -> ColumnElement[str]:
    """The category of a check of ``c`` (a ``_checks_with_first_lookin`` subquery), as SQL
    (see CATEGORIES)."""
    return case(
        (c.state == "skipped", "skipped"),
        (c.state == "missed", "missed"),
        (c.state.in_(("planned", "open")), "pending"),
        (c.first_at.is_(None), "no-lookin"),
        (seconds_between(dialect, c.first_at, c.due_at) > late_minutes * 60, "late"),
        else_="on-time")


def _unit_filter(unit: str | None) -> ColumnElement[bool]:
    return literal(True) if unit is None else Recipient.unit == unit


def _check_in_unit(unit: str | None) -> ColumnElement[bool]:
    """A check's recipient is of the unit: a condition on checks alone, for inside the
    fenced ``_checks_with_first_lookin``, so a unit's report looks up its own checks'
    look-ins only."""
    return literal(True) if unit is None else Check.recipient_id.in_(
        select(Recipient.id).where(Recipient.unit == unit))


def _alert_subject() -> ColumnElement[str]:
    return literal("alert:") + cast(Alert.id, String)


# --- the night ----------------------------------------------------------------------------


class LookinLine(BaseModel):
    viewer: str
    at: datetime
    seconds: float | None
    outcome: str | None
    end_reason: str | None


class DispatchLine(BaseModel):
    alert: int
    reason: str
    state: str
    raised_at: datetime
    acknowledged_at: datetime | None
    on_the_way_at: datetime | None
    arrived_at: datetime | None
    resolved_at: datetime | None
    by: str | None = Field(description="who acknowledged it")
    note: str | None


class NightCheck(BaseModel):
    id: int
    recipient_id: int
    recipient: str
    unit: str
    due_at: datetime
    due_local: str
    state: str
    category: Category
    reason: str | None = Field(description="a code: calm, not-visible, paused, no-consent, ...")
    reason_detail: str | None
    follow_up_of: int | None
    recorded_by: str | None
    note: str | None
    lookins: list[LookinLine]
    dispatch: DispatchLine | None


class NightReport(BaseModel):
    night: date
    unit: str | None = Field(description="null: every unit")
    units: list[str] = Field(description="every unit there is, for a choice of unit")
    late_after_minutes: int
    counts: dict[str, int] = Field(description="checks per category (see CATEGORIES)")
    checks: list[NightCheck]


async def units(db: AsyncSession) -> list[str]:
    return list((await db.execute(select(Recipient.unit).distinct()
                                  .order_by(Recipient.unit))).scalars())


async def night_report(db: AsyncSession, night: date, unit: str | None,
                       late_minutes: int) -> NightReport:
    """Every check of the night for the unit, in due order, with its look-ins and dispatch."""
    dialect = db.get_bind().dialect.name
    tonight = Check.night == night
    sub = _checks_with_first_lookin(and_(tonight, _check_in_unit(unit)))
    category = _category(dialect, sub.c, late_minutes).label("category")
    rows = (await db.execute(
        select(Check, Recipient.name, Recipient.unit, category)
        .join(sub, sub.c.id == Check.id)
        .join(Recipient, Recipient.id == Check.recipient_id)
        .where(_unit_filter(unit)).order_by(Check.due_at, Check.id))).all()
    ids = [c.id for c, *_ in rows]
    lookins: dict[int, list[LookinLine]] = {}
    dispatches: dict[int, DispatchLine] = {}
    if ids:
        for visit, name in (await db.execute(
                select(Visit, User.display_name).join(User, User.id == Visit.viewer_id)
                .where(Visit.check_id.in_(ids)).order_by(Visit.requested_at))).all():
            lookins.setdefault(visit.check_id, []).append(LookinLine(
                viewer=name, at=visit.requested_at, seconds=visit.seconds,
                outcome=visit.outcome, end_reason=visit.end_reason))
        moved = {m: func.min(case((AuditEvent.kind == f"alert.{m}", AuditEvent.at)))
                 for m in MOVES}
        for alert, *times in (await db.execute(
                select(Alert, *moved.values())
                .outerjoin(AuditEvent, and_(AuditEvent.subject == _alert_subject(),
                                            AuditEvent.kind.in_([f"alert.{m}" for m in MOVES])))
                .where(Alert.check_id.in_(ids)).group_by(Alert.id))).all():
            assert alert.check_id is not None
            dispatches[alert.check_id] = DispatchLine(
                alert=alert.id, reason=alert.reason, state=alert.state,
                raised_at=alert.created_at, acknowledged_at=_utc(times[0]),
                on_the_way_at=_utc(times[1]), arrived_at=_utc(times[2]),
                resolved_at=_utc(times[3]), by=alert.acknowledged_by, note=alert.note)
    local = zone(schedules.DEFAULT_TZ)
    checks = [NightCheck(
        id=c.id, recipient_id=c.recipient_id, recipient=name, unit=unit_of, due_at=c.due_at,
        due_local=c.due_at.astimezone(local).strftime("%H:%M"), state=c.state,
        category=cast_category(cat), reason=c.reason, reason_detail=c.reason_detail,
        follow_up_of=c.parent_id, recorded_by=c.actor, note=c.note,
        lookins=lookins.get(c.id, []), dispatch=dispatches.get(c.id))
        for c, name, unit_of, cat in rows]
    counts = dict.fromkeys(CATEGORIES, 0)
    for c in checks:
        counts[c.category] += 1
    return NightReport(night=night, unit=unit, units=await units(db),
                       late_after_minutes=late_minutes, counts=counts, checks=checks)


def cast_category(value: str) -> Category:
    if value not in CATEGORIES:
        raise ValueError(f"unknown category {value!r}")
    return value  # type: ignore[return-value]


def _utc(value: datetime | str | None) -> datetime | None:
    """An aggregate's instant: SQLite hands back the stored text, PostgreSQL a datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- a period -----------------------------------------------------------------------------


class UnitCounts(BaseModel):
    unit: str = Field(description="'' for recipients without a unit; the total is its own row")
    planned: int = Field(description="every check of the period")
    on_time: int
    late: int
    missed: int
    skipped: int
    no_lookin: int
    pending: int


class ReasonCount(BaseModel):
    unit: str
    reason: str
    count: int


class ResponseTimes(BaseModel):
    unit: str | None = Field(description="null: the whole service")
    alerts: int
    acknowledged: int
    ack_median_s: float | None
    ack_p90_s: float | None
    arrived: int
    arrival_median_s: float | None
    arrival_p90_s: float | None


class CameraFailures(BaseModel):
    camera: str
    recipient: str
    technical_failure: int
    agent_gone: int
    unreported: int


class NightCounts(BaseModel):
    night: date
    on_time: int
    late: int
    missed: int
    skipped: int
    no_lookin: int
    pending: int


class PeriodReport(BaseModel):
    period: Period
    first_night: date
    last_night: date
    unit: str | None = Field(description="null: the whole service")
    units: list[str]
    late_after_minutes: int
    by_unit: list[UnitCounts] = Field(description="per unit, then the total (unit 'all')")
    skipped: list[ReasonCount]
    dispatches: list[ReasonCount]
    response: list[ResponseTimes] = Field(description="per unit, then the whole service")
    cameras: list[CameraFailures]
    nights: list[NightCounts] = Field(description="per night, for the chart")


def period_bounds(period: Period, start: date) -> tuple[date, date]:
    """A week from ``start``; a month: the calendar month ``start`` lies in."""
    if period == "week":
        return start, start + timedelta(days=6)
    first = start.replace(day=1)
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def _unit_counts(unit: str, c: dict[str, int]) -> UnitCounts:
    return UnitCounts(unit=unit, planned=sum(c.values()), on_time=c["on-time"], late=c["late"],
                      missed=c["missed"], skipped=c["skipped"], no_lookin=c["no-lookin"],
                      pending=c["pending"])


def _ranks(s: Any, unit: Any) -> list[Any]:
    """Row number and count of ``s`` (nulls last, not counted) per unit and overall."""
    order = [case((s.is_(None), 1), else_=0), s]
    return [func.row_number().over(partition_by=[unit], order_by=order),
            func.count(s).over(partition_by=[unit]),
            func.row_number().over(order_by=order), func.count(s).over()]


def _nearest_rank(rank: Any, n: Any, s: Any, percent: int) -> Any:
    """The ceil(percent/100 * n)-th smallest of ``s`` (nearest rank), as an aggregate."""
    return func.max(case((rank == (n * percent + 99) // 100, s)))


async def _response_times(db: AsyncSession, durations: Subquery) -> list[ResponseTimes]:
    """Per unit, then the whole service: alerts, and of those acknowledged and arrived the
    count, median and 90th percentile. One pass: window functions rank every duration
    within its unit and overall, and one GROUP BY picks the ranks wanted."""
    d = durations.c
    ranked = select(d.unit, d.ack_s, d.arr_s, *(r.label(f"a{i}") for i, r in enumerate(
        _ranks(d.ack_s, d.unit))), *(r.label(f"r{i}") for i, r in enumerate(
            _ranks(d.arr_s, d.unit)))).subquery()
    c = ranked.c

    def stats(prefix: str, s: Any, whole: bool) -> list[Any]:
        rank, n = (c[f"{prefix}2"], c[f"{prefix}3"]) if whole else (
            c[f"{prefix}0"], c[f"{prefix}1"])
        return [func.max(n), _nearest_rank(rank, n, s, 50), _nearest_rank(rank, n, s, 90)]

    rows = (await db.execute(select(
        c.unit, func.count(), *stats("a", c.ack_s, False), *stats("r", c.arr_s, False),
        *stats("a", c.ack_s, True), *stats("r", c.arr_s, True))
        .group_by(c.unit).order_by(c.unit))).all()
    out = [ResponseTimes(unit=row[0], alerts=int(row[1]), acknowledged=int(row[2] or 0),
                         ack_median_s=_secs(row[3]), ack_p90_s=_secs(row[4]),
                         arrived=int(row[5] or 0), arrival_median_s=_secs(row[6]),
                         arrival_p90_s=_secs(row[7])) for row in rows]
    # the overall ranks: each lies in the one unit's group that holds it
    def whole(i: int) -> Any:
        return next((row[i] for row in rows if row[i] is not None), None)

    out.append(ResponseTimes(
        unit=None, alerts=sum(r.alerts for r in out), acknowledged=int(whole(8) or 0),
        ack_median_s=_secs(whole(9)), ack_p90_s=_secs(whole(10)),
        arrived=int(whole(11) or 0), arrival_median_s=_secs(whole(12)),
        arrival_p90_s=_secs(whole(13))))
    return out


def _secs(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def category_cells(dialect: str, where: ColumnElement[bool], unit: str | None,
                   late_minutes: int) -> Select[*tuple[Any, ...]]:
    """Checks per unit, night and category (columns unit, night, category, n) of the
    checks ``where`` selects: read live by the report, and rolled up (supervision/rollup)."""
    sub = _checks_with_first_lookin(and_(where, _check_in_unit(unit)))
    category = _category(dialect, sub.c, late_minutes)
    return (select(Recipient.unit.label("unit"), sub.c.night.label("night"),
                   category.label("category"), func.count().label("n"))
            .join(Recipient, Recipient.id == sub.c.recipient_id)
            .where(_unit_filter(unit)).group_by(Recipient.unit, sub.c.night, category))


def skip_counts(where: ColumnElement[bool], unit: str | None) -> Select[*tuple[Any, ...]]:
    """Skipped checks per unit, night and reason (columns unit, night, reason, n); a check
    without a reason counts under ''."""
    reason = func.coalesce(Check.reason, "")
    return (select(Recipient.unit.label("unit"), Check.night.label("night"),
                   reason.label("reason"), func.count().label("n"))
            .join(Recipient, Recipient.id == Check.recipient_id)
            .where(where, _unit_filter(unit), Check.state == "skipped")
            .group_by(Recipient.unit, Check.night, reason))


def alert_durations(dialect: str, where: ColumnElement[bool], unit: str | None,
                    per_check: bool = True) -> Select[*tuple[Any, ...]]:
    """Each alert of the checks ``where`` selects (columns alert_id, night, recipient_id,
    unit, reason, ack_s, arr_s): seconds from its raising to the patrol's first move and
    to their arrival, None where there was none. ``per_check``: as ``camera_failures``
    does, from the index on alerts (check_id)."""
    by_check = (select(Alert.id, Alert.reason, Alert.created_at)
                .where(Alert.check_id == Check.id).offset(0).lateral())
    lateral = per_check and dialect == "postgresql"
    a: Any = by_check.c if lateral else Alert
    rows = select(a.id, Check.night, Check.recipient_id, Recipient.unit, a.reason,
                  a.created_at, func.min(AuditEvent.at).label("ack_at"),
                  func.min(case((AuditEvent.kind == "alert.arrived", AuditEvent.at)))
                  .label("arrived_at")).select_from(Check)
    rows = (rows.join(by_check, true()) if lateral else
            rows.join(Alert, Alert.check_id == Check.id))
    moved = (rows.join(Recipient, Recipient.id == Check.recipient_id)
             .outerjoin(AuditEvent, and_(
                 AuditEvent.subject == literal("alert:") + cast(a.id, String),
                 AuditEvent.kind.in_([f"alert.{m}" for m in MOVES])))
             .where(where, _check_in_unit(unit))
             .group_by(a.id, Check.night, Check.recipient_id, Recipient.unit, a.reason,
                       a.created_at).subquery())
    m = moved.c
    return select(m.id.label("alert_id"), m.night, m.recipient_id, m.unit, m.reason,
                  seconds_between(dialect, m.ack_at, m.created_at).label("ack_s"),
                  seconds_between(dialect, m.arrived_at, m.created_at).label("arr_s"))


def camera_failures(dialect: str, where: ColumnElement[bool], unit: str | None = None,
                    per_check: bool = True) -> Select[*tuple[Any, ...]]:
    """Look-ins ended by the camera side per camera, night and the check's recipient
    (columns camera_id, night, recipient_id and one per TECHNICAL_ENDS) of the checks
    ``where`` selects. ``per_check`` (for a night or a few): found check by check from the
    index on visits (check_id), as SQLite does anyway; PostgreSQL would choose a scan of
    every look-in there is even for a few tens of thousands of checks, which is far
    slower (a LATERAL with OFFSET 0 keeps it from that). Over many nights the scan is
    the faster, and PostgreSQL's own choice is left alone."""
    failed = and_(Visit.check_id == Check.id, Visit.end_reason.in_(TECHNICAL_ENDS))
    camera: Any = Visit.camera_id
    end: Any = Visit.end_reason
    lateral = per_check and dialect == "postgresql"
    if lateral:
        v = select(Visit.camera_id, Visit.end_reason).where(failed).offset(0).lateral()
        camera, end = v.c.camera_id, v.c.end_reason
    ends = [func.count(case((end == e, 1))).label(e.replace("-", "_"))
            for e in TECHNICAL_ENDS]
    rows = select(camera.label("camera_id"), Check.night.label("night"),
                  Check.recipient_id.label("recipient_id"), *ends).select_from(Check)
    rows = rows.join(v, true()) if lateral else rows.join(Visit, failed)
    return (rows.where(where, _check_in_unit(unit))
            .group_by(camera, Check.night, Check.recipient_id))


async def rolled_nights(db: AsyncSession, first: date, last: date, late_minutes: int
                        ) -> list[date]:
    """The nights from ``first`` to ``last`` whose roll-up is current (supervision/rollup)."""
    return list((await db.execute(
        select(NightRollup.night).where(NightRollup.night.between(first, last),
                                        NightRollup.dirty.is_(False),
                                        NightRollup.late_minutes == late_minutes)
        .order_by(NightRollup.night))).scalars())


async def period_report(db: AsyncSession, period: Period, start: date, unit: str | None,
                        late_minutes: int) -> PeriodReport:
    """The period's figures: the rolled-up nights' roll-ups (supervision/rollup.py) summed
    with the live rows of every other night, by the same SQL, so the figures are the same
    whichever nights are rolled up."""
    dialect = db.get_bind().dialect.name
    first_night, last_night = period_bounds(period, start)
    rolled = await rolled_nights(db, first_night, last_night, late_minutes)
    live: ColumnElement[bool] = Check.night.between(first_night, last_night)
    if rolled:
        done = set(rolled)
        live = Check.night.in_([first_night + timedelta(days=d) for d in range(
            (last_night - first_night).days + 1) if first_night + timedelta(days=d) not in done])
    in_unit = literal(True) if unit is None else RollupCount.unit == unit
    # a few nights live (the usual: the one running, one not yet ended for good): look
    # alerts and look-ins up check by check; many (no roll-ups yet): let the planner scan
    few = (last_night - first_night).days + 1 - len(rolled) <= 3

    # counts per unit, night and category, summed here into the per-unit and per-night
    # tables (a few thousand cells at most)
    cells = [*(await db.execute(category_cells(dialect, live, unit, late_minutes))).all(),
             *(await db.execute(
                 select(RollupCount.unit, RollupCount.night, RollupCount.key, RollupCount.count)
                 .where(RollupCount.night.in_(rolled), RollupCount.kind == "category",
                        in_unit))).all()]
    per_unit: dict[str, dict[str, int]] = {}
    per_night: dict[date, dict[str, int]] = {}
    total = dict.fromkeys(CATEGORIES, 0)
    for unit_of, night_of, cat, n in cells:
        per_unit.setdefault(unit_of, dict.fromkeys(CATEGORIES, 0))[cat] += int(n)
        per_night.setdefault(night_of, dict.fromkeys(CATEGORIES, 0))[cat] += int(n)
        total[cat] += int(n)
    by_unit = [_unit_counts(u, c) for u, c in sorted(per_unit.items())]
    by_unit.append(_unit_counts("all", total))
    series = []
    for day in range((last_night - first_night).days + 1):
        c = per_night.get(first_night + timedelta(days=day), dict.fromkeys(CATEGORIES, 0))
        series.append(NightCounts(night=first_night + timedelta(days=day), on_time=c["on-time"],
                                  late=c["late"], missed=c["missed"], skipped=c["skipped"],
                                  no_lookin=c["no-lookin"], pending=c["pending"]))

    skips = union_all(
        skip_counts(live, unit),
        select(RollupCount.unit, RollupCount.night, RollupCount.key, RollupCount.count)
        .where(RollupCount.night.in_(rolled), RollupCount.kind == "skipped", in_unit)
    ).subquery()
    skipped = [ReasonCount(unit=u, reason=r, count=int(n)) for u, r, n in (await db.execute(
        select(skips.c.unit, skips.c.reason, func.sum(skips.c.n))
        .group_by(skips.c.unit, skips.c.reason).order_by(skips.c.unit, skips.c.reason))).all()]

    rolled_alerts = (select(RollupAlert.alert_id, RollupAlert.night, RollupAlert.recipient_id,
                            Recipient.unit, RollupAlert.reason, RollupAlert.ack_s,
                            RollupAlert.arr_s)
                     .join(Recipient, Recipient.id == RollupAlert.recipient_id)
                     .where(RollupAlert.night.in_(rolled), _unit_filter(unit)))
    durations = union_all(alert_durations(dialect, live, unit, few), rolled_alerts).subquery()
    d = durations.c
    dispatches = [ReasonCount(unit=u, reason=r, count=int(n)) for u, r, n in (await db.execute(
        select(d.unit, d.reason, func.count()).group_by(d.unit, d.reason)
        .order_by(d.unit, d.reason))).all()]
    response = await _response_times(db, durations)

    rolled_cameras = select(
        RollupCamera.camera_id, RollupCamera.night, RollupCamera.recipient_id,
        RollupCamera.technical_failure, RollupCamera.agent_gone, RollupCamera.unreported
    ).where(RollupCamera.night.in_(rolled))
    f = union_all(camera_failures(dialect, live, unit, few), rolled_cameras).subquery().c
    failed = (await db.execute(
        select(f.camera_id, Recipient.name, func.sum(f.technical_failure),
               func.sum(f.agent_gone), func.sum(f.unreported))
        .join(Recipient, Recipient.id == f.recipient_id).where(_unit_filter(unit))
        .group_by(f.camera_id, Recipient.name).order_by(f.camera_id))).all()
    cameras = [CameraFailures(camera=row[0], recipient=row[1], technical_failure=int(row[2]),
                              agent_gone=int(row[3]), unreported=int(row[4])) for row in failed]
    return PeriodReport(period=period, first_night=first_night, last_night=last_night,
                        unit=unit, units=await units(db), late_after_minutes=late_minutes,
                        by_unit=by_unit, skipped=skipped, dispatches=dispatches,
                        response=response, cameras=cameras, nights=series)


# --- CSV ----------------------------------------------------------------------------------

PERIOD_TABLES = ("by_unit", "skipped", "dispatches", "response", "cameras", "nights")
_ROWS: dict[str, type[BaseModel]] = {
    "by_unit": UnitCounts, "skipped": ReasonCount, "dispatches": ReasonCount,
    "response": ResponseTimes, "cameras": CameraFailures, "nights": NightCounts}
#: each table's columns, in order: the CSV's header and the page's
PERIOD_COLUMNS = {table: list(_ROWS[table].model_fields) for table in PERIOD_TABLES}


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Cells a spreadsheet would run as a formula are quoted (``audit.spreadsheet_cell``)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([audit.spreadsheet_cell("" if v is None else str(v)) for v in row])
    return out.getvalue()


def night_csv(report: NightReport) -> str:
    """One line per check: due, recipient, what it came to, the look-ins, the dispatch."""
    header = ["check", "due_at", "due_local", "recipient", "unit", "state", "category",
              "reason", "reason_detail", "follow_up_of", "recorded_by", "lookins",
              "first_lookin_at", "viewers", "alert", "alert_reason", "raised_at",
              "acknowledged_at", "on_the_way_at", "arrived_at", "resolved_at", "note"]
    rows = []
    for c in report.checks:
        d = c.dispatch
        rows.append([c.id, c.due_at.isoformat(), c.due_local, c.recipient, c.unit, c.state,
                     c.category, c.reason, c.reason_detail, c.follow_up_of, c.recorded_by,
                     len(c.lookins), c.lookins[0].at.isoformat() if c.lookins else None,
                     " / ".join(sorted({v.viewer for v in c.lookins})),
                     d and d.alert, d and d.reason, d and d.raised_at.isoformat(),
                     *[(t.isoformat() if t else None) for t in (
                         (d.acknowledged_at, d.on_the_way_at, d.arrived_at, d.resolved_at)
                         if d else (None,) * 4)],
                     " / ".join(n for n in (c.note, d and d.note) if n)])
    return _csv(header, rows)


def period_csv(report: PeriodReport, table: str) -> str:
    """One of the period report's tables (PERIOD_TABLES), as its JSON rows are."""
    rows: list[BaseModel] = getattr(report, table)
    header = PERIOD_COLUMNS[table]
    return _csv(header, ([getattr(r, h) for h in header] for r in rows))


# --- for the routes -----------------------------------------------------------------------


async def night(rt: Runtime, night_: date | None, unit: str | None) -> NightReport:
    """The night (default: the one now running or just ended, the morning's handover)."""
    chosen = night_ or schedules.night_of(datetime.now(UTC))
    async with rt.read() as db:
        return await night_report(db, chosen, unit, rt.settings.report_late_minutes)


async def period(rt: Runtime, kind: Period, start: date | None, unit: str | None
                 ) -> PeriodReport:
    """The week from ``start`` or the month it lies in (default: the current one)."""
    chosen = start or schedules.night_of(datetime.now(UTC))
    async with rt.read() as db:
        return await period_report(db, kind, chosen, unit, rt.settings.report_late_minutes)
