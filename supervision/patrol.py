"""The patrol's live sockets on this node: the fan-out hub beside ``signaling.AgentLinks``.

It holds sockets and queues, never alert rows: ``alerts`` writes the rows, and whoever
committed a change hands the patrol's view of it to ``broadcast``.

Every socket is held by one web session (``web_sessions.id``) of one user, and lives no
longer than that session: ``end_session`` and ``end_user`` close a session's or a user's
sockets at once (logout calls the first; a notification from another node could call
either), ``keep_live`` closes those whose session another process ended or changed (the
scheduler's re-validation job), and a socket whose session has expired is closed instead
of being sent to.

It also answers what the night's patrol has done (``night_alerts``): the "tonight" list of
the patrol page, for a patrol taking over a shift.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Any, Final

from fastapi import WebSocket
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import schedules
from schedules.localtime import local_to_utc, utc_to_local, zone
from supervision import plans
from supervision.alert_states import AlertState
from supervision.alerts import alert_json
from supervision.models import Alert, Check, Recipient

log = logging.getLogger("supervision.patrol")

#: the session holding the socket ended (signed out, disabled, role changed, expired): the
#: page sends the person to the login page. 4401 is "not authenticated" at connect.
CLOSE_SESSION_ENDED: Final = 4440
#: the page is on another origin than the service's own (``Settings.public_url``)
CLOSE_WRONG_ORIGIN: Final = 4403


@dataclass
class Holder:
    """Who holds a socket: the web session, its user, the roles that may hold this kind of
    socket, and when the session expires (wall clock, seconds since the epoch)."""

    session_id: str
    user_id: int
    roles: frozenset[str]
    expires: float

    def expired(self) -> bool:
        return time.time() >= self.expires


class _Outbox:
    """One patrol client's queue and the task that writes it out. Sends on a healthy socket
    complete without suspending, so a broadcast is one enqueue per client, not one task and
    one timer per client; a slow client holds up only its own queue."""

    __slots__ = ("first", "holder", "queue", "task", "ws")

    def __init__(self, ws: WebSocket, holder: Holder, limit: int) -> None:
        self.ws = ws
        self.holder = holder
        self.queue: asyncio.Queue[str] = asyncio.Queue(limit)
        self.task: asyncio.Task[None] | None = None
        self.first: str | None = None  # the snapshot, sent before anything queued

    async def run(self, fanout: PatrolFanout) -> None:
        try:
            if self.first is not None:
                if self.holder.expired():
                    fanout.drop(self.ws, CLOSE_SESSION_ENDED, "session expired")
                    return
                await self.ws.send_text(self.first)
            while True:
                text = await self.queue.get()
                # the session may have run out since the last re-validation: never send
                # door codes to it, not even once
                if self.holder.expired():
                    fanout.drop(self.ws, CLOSE_SESSION_ENDED, "session expired")
                    return
                await self.ws.send_text(text)
        except asyncio.CancelledError:
            raise
        except Exception:  # gone; its socket handler ends too
            fanout.remove(self.ws)


class PatrolFanout:
    """Connected patrol clients on this node. Delivery is at least once: a client gets every
    active alert on connect, each new one at once, and unacknowledged ones again and again.

    A client too slow to take what is sent is dropped and closed, never silently skipped: its
    app reconnects and gets the snapshot of active alerts again."""

    def __init__(self, queue_limit: int = 1000) -> None:
        self._outboxes: dict[WebSocket, _Outbox] = {}
        self._limit = queue_limit
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def clients(self) -> set[WebSocket]:
        return set(self._outboxes)

    def session_ids(self) -> set[str]:
        """The sessions holding open sockets, for the re-validation job's one query."""
        return {outbox.holder.session_id for outbox in self._outboxes.values()}

    def reserve(self, ws: WebSocket, holder: Holder) -> None:
        """Register before reading the snapshot: an alert committed meanwhile is queued,
        not lost between the read and the registration."""
        self._outboxes[ws] = _Outbox(ws, holder, self._limit)

    async def add(self, ws: WebSocket, alerts: list[dict[str, Any]]) -> None:
        """Start sending: the snapshot first, then what was queued. Nothing if the socket
        was dropped since ``reserve`` (its session ended: it is being closed)."""
        outbox = self._outboxes.get(ws)
        if outbox is None:
            return
        outbox.first = json.dumps({"type": "snapshot", "alerts": alerts})
        outbox.task = asyncio.create_task(outbox.run(self), name="patrol-outbox")

    def remove(self, ws: WebSocket) -> None:
        outbox = self._outboxes.pop(ws, None)
        if outbox is not None and outbox.task is not None \
                and outbox.task is not asyncio.current_task():
            outbox.task.cancel()

    def drop(self, ws: WebSocket, code: int, reason: str) -> None:
        """Stop sending to ``ws`` now and close it with ``code`` (in the background: a
        socket that cannot take even a close frame must not hold up the caller)."""
        self.remove(ws)
        task = asyncio.create_task(self._close(ws, code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def end_session(self, session_id: str, reason: str = "signed out") -> int:
        """Close every socket held by this web session; how many."""
        return self._end(lambda h: h.session_id == session_id, reason)

    def end_user(self, user_id: int, reason: str = "user changed") -> int:
        """Close every socket held by any session of this user; how many."""
        return self._end(lambda h: h.user_id == user_id, reason)

    def keep_live(self, asked: Set[str],
                  live: Mapping[str, tuple[int, str, datetime]]) -> int:
        """``live`` is what the database says of the sessions ``asked`` about
        (``auth.live_sessions``: only those that exist, have not expired and whose user is
        active, as (user id, role, expires_at)). Close every socket of an asked session that
        is not live or whose user's role may no longer hold it; keep the others' expiry up to
        date. Sockets opened while the question was out are not judged (their session was
        checked as they opened). How many were closed."""
        closed = 0
        for ws, outbox in list(self._outboxes.items()):
            holder = outbox.holder
            if holder.session_id not in asked:
                continue
            found = live.get(holder.session_id)
            if found is None or found[0] != holder.user_id or found[1] not in holder.roles:
                self.drop(ws, CLOSE_SESSION_ENDED,
                          "session ended" if found is None else "role changed")
                closed += 1
            else:
                holder.expires = found[2].timestamp()
        if closed:
            log.info("closed %d patrol socket(s) whose session ended", closed)
        return closed

    def _end(self, matches: Callable[[Holder], bool], reason: str) -> int:
        gone = [ws for ws, outbox in self._outboxes.items() if matches(outbox.holder)]
        for ws in gone:
            self.drop(ws, CLOSE_SESSION_ENDED, reason)
        return len(gone)

    async def broadcast(self, message: dict[str, Any]) -> int:
        """Serialised once, queued for every client; returns how many clients it was queued for."""
        text = json.dumps(message)
        queued = 0
        for ws, outbox in list(self._outboxes.items()):
            try:
                outbox.queue.put_nowait(text)
                queued += 1
            except asyncio.QueueFull:
                log.warning("patrol client too slow: %d messages waiting; closing it",
                            outbox.queue.qsize())
                self.drop(ws, 1013, "too slow")
        return queued

    @staticmethod
    async def _close(ws: WebSocket, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(5):
                await ws.close(code=code, reason=reason)
        except Exception:  # uvicorn's keepalive ends a socket that cannot even take a close
            pass


# --- the night's list: what the patrol has done tonight ---------------------------------------

#: the night just ended stays on the list until this local time of the morning it ended
#: (with the default noon boundary the current night already spans the morning)
MORNING_ENDS = dt_time(12, 0)
#: at most this many alerts on the list
NIGHT_LIST_LIMIT = 200
_DAY = timedelta(days=1)


def nights_shown(now: datetime, tz: str = schedules.DEFAULT_TZ,
                 boundary: dt_time = dt_time(12, 0)) -> set[date]:
    """The nights (by evening date) whose alerts the list shows at ``now``, for a plan in
    zone ``tz`` with its night ``boundary``: the night going on (``schedules.night_of``,
    as planning names it), and, until ``MORNING_ENDS`` of the morning it ended, the night
    before."""
    current = schedules.night_of(now, tz, boundary)
    zi = zone(tz)
    ended = utc_to_local(local_to_utc(current, boundary, zi), zi).date()
    if now < local_to_utc(ended, MORNING_ENDS, zi):
        return {current, current - _DAY}
    return {current}


async def night_alerts(db: AsyncSession, now: datetime | None = None) -> list[dict[str, Any]]:
    """The resolved alerts of the checks of the night going on (and, in the morning, of the
    night just ended), each night in its recipient's plan zone and boundary as planning
    has it; newest first, without access information, contacts or care notes."""
    now = now or datetime.now(UTC)
    # a superset by date (no zone is more than a day from UTC), then each check's own night
    earliest = now.date() - 3 * _DAY
    rows = (await db.execute(
        select(Alert, Recipient, Check).join(Recipient, Recipient.id == Alert.recipient_id)
        .join(Check, Check.id == Alert.check_id)
        .where(Alert.state == AlertState.RESOLVED.value, Check.night >= earliest)
        .order_by(Alert.updated_at.desc(), Alert.id.desc()))).all()
    if not rows:
        return []
    shown = await _shown_nights(db, {(c.recipient_id, c.night) for _, _, c in rows}, now)
    return [alert_json(a, r, c, with_access=False) for a, r, c in rows
            if c.night in shown[(c.recipient_id, c.night)]][:NIGHT_LIST_LIMIT]


async def _shown_nights(db: AsyncSession, nights: set[tuple[int, date]], now: datetime
                        ) -> dict[tuple[int, date], set[date]]:
    """For each (recipient, night): the nights shown now by the zone and boundary of the
    plan version in force that night (as on the rounds board); the defaults without one."""
    versions = await plans.versions_of(db, sorted({rid for rid, _ in nights}))
    chosen = {key: plans.in_force(versions.get(key[0], []), key[1]) for key in nights}
    loaded = await plans.load_plans(db, {v.id for v in chosen.values() if v is not None},
                                    bulk=True)
    memo: dict[tuple[str, dt_time], set[date]] = {}
    out: dict[tuple[int, date], set[date]] = {}
    for key, version in chosen.items():
        plan = loaded.get(version.id) if version is not None else None
        shape = ((plan.timezone, plan.night_boundary) if plan is not None
                 else (schedules.DEFAULT_TZ, dt_time(12, 0)))
        if shape not in memo:
            memo[shape] = nights_shown(now, *shape)
        out[key] = memo[shape]
    return out
