"""Log review pages: a recipient's look-ins, the log review (loggkontroll) with filters,
flags and the chain's status, and a recipient's own access report (printable, Swedish)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

import schedules
from supervision import log_review
from supervision.context import Who, runtime, translator, who
from supervision.errors import ServiceError
from supervision.i18n import Translator
from supervision.log_review import recipient_lookins
from supervision.models import Recipient
from supervision.plans import current_plan
from supervision.runtime import Runtime
from supervision.web.pages import guard, render

router = APIRouter(include_in_schema=False)


@router.get("/audit/recipients/{recipient_id}")
async def lookins_page(recipient_id: int, request: Request, rt: Runtime = Depends(runtime),
                       current: Who | None = Depends(who)) -> Response:
    refused = guard(request, current, ("manager", "admin"))
    if refused is not None:
        return refused
    assert current is not None
    records = await recipient_lookins(rt, recipient_id)
    async with rt.read() as db:
        recipient = await db.get(Recipient, recipient_id)
        found = await current_plan(db, recipient_id)
    zone = ZoneInfo(found[1].timezone if found else "Europe/Stockholm")
    rows = [r.model_dump() | {"local_time": r.requested_at.astimezone(zone)
                              .strftime("%Y-%m-%d %H:%M:%S")} for r in records]
    return render(request, "audit_lookins.html", translator(request, current.user), current,
                  recipient=recipient, records=rows)


def _instant(value: str | None, end: bool = False) -> datetime | None:
    """A date from a form (local night: Stockholm) as a UTC instant; the end is exclusive."""
    try:
        day = date.fromisoformat(value) if value else None
    except ValueError:
        return None
    if day is None or not date(2000, 1, 1) <= day <= date(2100, 12, 31):
        return None
    local = datetime.combine(day + timedelta(days=1 if end else 0), time(0),
                             ZoneInfo(schedules.DEFAULT_TZ))
    return local.astimezone(UTC)


@router.get("/audit/log")
async def review_page(request: Request, person: str | None = Query(None, max_length=64),
                      recipient: str | None = Query(None, max_length=12),
                      since: str | None = Query(None, max_length=10),
                      until: str | None = Query(None, max_length=10),
                      kind: str | None = Query(None, max_length=16),
                      rt: Runtime = Depends(runtime),
                      current: Who | None = Depends(who)) -> Response:
    """Loggkontroll: the filtered log, the flags with their rules, the chain's status."""
    refused = guard(request, current, ("manager", "admin"))
    if refused is not None:
        return refused
    assert current is not None
    t = translator(request, current.user)
    rid = int(recipient) if recipient and recipient.isdigit() and len(recipient) < 10 else None
    f = log_review.ReviewFilter(
        person=person or None, recipient=rid, since=_instant(since),
        until=_instant(until, end=True),
        kind=kind if kind in log_review.KINDS else None)  # type: ignore[arg-type]
    async with rt.read() as db:
        entries = await log_review.review(db, f)
        people = list((await db.execute(select(Recipient.id, Recipient.name)
                                        .order_by(Recipient.name))).all())
    local = ZoneInfo(schedules.DEFAULT_TZ)
    return render(request, "audit_log.html", t, current, entries=entries, filters={
        "person": person or "", "recipient": rid, "since": since or "", "until": until or "",
        "kind": f.kind or ""}, recipients=people, kinds=log_review.KINDS,
        flags=log_review.FLAGS, rule_values=log_review.RULE_VALUES,
        chain=log_review.chain_status(rt),
        local=lambda when: when.astimezone(local).strftime("%Y-%m-%d %H:%M:%S"))


@router.get("/audit/recipients/{recipient_id}/access-report")
async def access_report_page(recipient_id: int, request: Request,
                             since: str | None = Query(None, max_length=10),
                             until: str | None = Query(None, max_length=10),
                             rt: Runtime = Depends(runtime),
                             current: Who | None = Depends(who)) -> Response:
    """Everyone who looked in on the recipient in a period: printable, in Swedish, for the
    recipient who asks (whatever language the manager reads the service in)."""
    refused = guard(request, current, ("manager", "admin"))
    if refused is not None:
        return refused
    assert current is not None
    today = datetime.now(UTC).astimezone(ZoneInfo(schedules.DEFAULT_TZ)).date()
    start = _instant(since) or _instant((today - timedelta(days=365)).isoformat())
    end = _instant(until, end=True) or _instant(today.isoformat(), end=True)
    assert start is not None and end is not None
    try:
        async with rt.read() as db:
            person, lines = await log_review.access_report(db, recipient_id, start, end)
    except ServiceError as exc:
        return render(request, "forbidden.html", translator(request, current.user), current,
                      status=exc.status, home="/manage")
    local = ZoneInfo(schedules.DEFAULT_TZ)
    swedish = Translator("sv")
    return render(request, "access_report.html", swedish, current, recipient=person,
                  lines=lines, since=start.astimezone(local).date(),
                  until=(end - timedelta(days=1)).astimezone(local).date(),
                  made=datetime.now(UTC).astimezone(local).strftime("%Y-%m-%d %H:%M"),
                  local=lambda when: when.astimezone(local).strftime("%Y-%m-%d %H:%M"))
