"""Demo data: people, three recipients whose checks fall due within minutes, each with a
written consent on record, and cameras.

Used by `make demo` and by the tests, so the demo is exactly what the tests exercise.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from supervision import audit, consent
from supervision.auth import hash_password
from supervision.cameras import code_hash
from supervision.consent import ConsentIn
from supervision.models import Camera, Plan, Recipient, User

USERS = [  # username, password, role, display name, shift lead
    ("natt", "natt", "staff", "Nora Natt", False),
    ("kvall", "kvall", "staff", "Kalle Kväll", False),
    ("patrull", "patrull", "patrol", "Per Patrull", True),
    ("chef", "chef", "manager", "Hanna Handläggare", False),
    ("admin", "admin", "admin", "Ada Admin", False),
]
RECIPIENTS = [
    ("Astrid Lindqvist", "Storgatan 12, 3 tr, Sundsvall", "Portkod 1234, nyckelgömma 58"),
    ("Bertil Ek", "Björkvägen 4, Sundsvall", "Nyckelgömma vid dörren, kod 9911"),
    ("Cecilia Holm", "Sjögatan 7 lgh 1102, Sundsvall", "Portkod 4321"),
]


def demo_plan(now: datetime, offsets_minutes: list[int], tz: str) -> dict[str, Any]:
    """A valid plan with checks at now + each offset (local wall-clock, whole minutes); no
    consent, which is on record (``seed``, ``demo_consent``)."""
    local = now.astimezone(ZoneInfo(tz))
    boundary = (local - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    times = sorted({(local + timedelta(minutes=m)).strftime("%H:%M") for m in offsets_minutes})
    return {
        "timezone": tz,
        "check_times": [{"at": at} for at in times],
        "window_before_minutes": 15,
        "window_after_minutes": 15,
        "max_lookin_seconds": 30,
        "follow_up": {"interval_minutes": 15, "max_follow_ups": 1},
        "night_boundary": boundary.strftime("%H:%M"),
    }


def demo_consent(now: datetime, name: str, rid: int, tz: str) -> ConsentIn:
    """The person's written consent, given 30 days ago, open-ended, on document DEMO-<id>."""
    given = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=30)
    return ConsentIn(party="person", name=name, method="written", witness="",
                     document_ref=f"DEMO-{rid}", given_on=given)


async def record_consents(db: AsyncSession, people: Iterable[Recipient], now: datetime,
                          tz: str = schedules.DEFAULT_TZ, actor: str = "demo") -> None:
    """Each recipient's written consent (``demo_consent``) on record, as a manager records
    it: the demo, and the test and bench worlds built from demo plans, have look-ins."""
    for recipient in people:
        await consent.record_unplanned(
            db, recipient, demo_consent(now, recipient.name, recipient.id, tz), actor, now)


async def seed(db: AsyncSession, now: datetime | None = None, *, tz: str = schedules.DEFAULT_TZ,
               offsets: tuple[int, ...] = (2, 5, 9), later: int = 120) -> dict[str, Any]:
    """Create the demo world; returns enrolment codes and ids."""
    now = now or datetime.now(UTC)
    for username, password, role, name, lead in USERS:
        db.add(User(username=username, display_name=name, role=role, shift_lead=lead,
                    password_hash=await hash_password(password)))
    cameras = []
    for (name, address, access), offset in zip(RECIPIENTS, offsets, strict=True):
        recipient = Recipient(name=name, address=address, access_info=access, unit="Demo")
        db.add(recipient)
        await db.flush()
        data = demo_plan(now, [offset, offset + later], tz)
        schedules.parse_plan(data)  # the demo must be a valid plan
        db.add(Plan(recipient_id=recipient.id, version=1, data=data, created_at=now,
                    created_by="demo"))
        await record_consents(db, [recipient], now, tz)
        code = "-".join(secrets.token_hex(2).upper() for _ in range(3))
        camera = Camera(id=f"cam-{recipient.id:04d}", recipient_id=recipient.id,
                        enrol_code_hash=code_hash(code), enrol_expires_at=now + timedelta(hours=24))
        db.add(camera)
        cameras.append({"camera_id": camera.id, "code": code, "recipient_id": recipient.id,
                        "recipient": name})
    await audit.append(db, "demo", "demo.seeded", "demo", {"recipients": len(RECIPIENTS)})
    return {"cameras": cameras, "users": [(u, p, r) for u, p, r, _, _ in USERS]}
