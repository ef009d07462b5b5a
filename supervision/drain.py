"""A node that is stopping ends the look-ins its camera links carry, before it lets go of
the links.

Otherwise SIGTERM would cut the links first: the record would say ``agent-gone`` while
the picture went on flowing peer to peer until the ticket ran out. Here each camera linked
to this node with a look-in in progress is told ``end {session, detail:
service-stopping}``; the agent stops the picture and reports ``lookin_ended``, which closes
the visit in the record as usual (reason ``ended``, detail ``service-stopping``). A visit
whose report has not come within ``WAIT_SECONDS`` is closed as its link going away
(``lookins.link_lost``), so the process still exits within a few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import select

from camera_agent.protocol import END, END_SERVICE_STOPPING
from supervision import lookins
from supervision.models import Visit
from supervision.runtime import Runtime

log = logging.getLogger("supervision.drain")

#: how long the agents' reports are waited for
WAIT_SECONDS = 2.0


async def _open_here(rt: Runtime, cameras: list[str]) -> list[tuple[str, str]]:
    async with rt.read() as db:
        rows = (await db.execute(select(Visit.id, Visit.camera_id).where(
            Visit.camera_id.in_(cameras), Visit.ended_at.is_(None)))).all()
    return [(session, camera) for session, camera in rows]


async def end_lookins(rt: Runtime) -> int:
    """End every look-in in progress on this node's links; how many there were."""
    here = list(rt.links.connected)
    if not here:
        return 0
    visits = await _open_here(rt, here)
    for session, camera_id in visits:
        try:
            await rt.links.send(camera_id, END, session=session, detail=END_SERVICE_STOPPING)
        except Exception as exc:  # a link closing meanwhile: closed below instead
            log.info("could not tell camera %s to end look-in: %r", camera_id, exc)
    deadline = time.monotonic() + WAIT_SECONDS
    left = visits
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        left = await _open_here(rt, [camera for _, camera in visits])
    for camera_id in {camera for _, camera in left}:
        await lookins.link_lost(rt, camera_id)
    if visits:
        log.info("stopping: ended %d look-in(s) in progress (%d unreported)",
                 len(visits), len(left))
    return len(visits)
