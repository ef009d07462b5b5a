"""For in-process tests of what comes after a look-in: the visit row as the agent's
"camera opened" report and the viewer's first-frame report leave it. (System tests take a
real look-in instead: tests/viewer.py.)"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from supervision.models import Camera, Check, User, Visit
from supervision.runtime import Runtime


async def seen(rt: Runtime, viewer: User, check_id: int, *, picture: bool = True) -> str:
    """A look-in by ``viewer`` on the check whose picture showed (``picture=False``: one
    that was refused). Returns its session."""
    now = datetime.now(UTC)
    session = secrets.token_hex(8)
    async with rt.write() as db:
        check = await db.get(Check, check_id)
        assert check is not None
        camera = (await db.execute(select(Camera.id).where(
            Camera.recipient_id == check.recipient_id))).scalars().first()
        assert camera is not None
        visit = Visit(id=session, check_id=check_id, camera_id=camera,
                      recipient_id=check.recipient_id, viewer_id=viewer.id,
                      nonce=secrets.token_hex(16), requested_at=now,
                      expires_at=now + timedelta(seconds=30))
        if picture:
            visit.camera_opened_at = visit.first_frame_at = now
            visit.ttff_ms = 300
        else:
            visit.ended_at, visit.seconds = now, 0.0
            visit.end_reason, visit.end_detail = "refused", "busy"
        db.add(visit)
    return session
