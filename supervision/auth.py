"""People: argon2 passwords, server-side sessions, CSRF tokens, roles, login rate limits."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from supervision.models import User, WebSession

ROLES = ("staff", "patrol", "manager", "admin")
COOKIE = "nt_session"
_hasher = PasswordHasher()
# verified against when the user does not exist, so timing does not reveal usernames
_DUMMY_HASH = _hasher.hash("not-a-real-password")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def check_password(password_hash: str, password: str) -> bool:
    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
    return await asyncio.to_thread(_verify)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login_keys(username: str, address: str) -> tuple[str, str, str]:
    """What failures are counted by: the address, the address with the user, the user."""
    user = username.lower()
    return f"a {address}", f"p {address} {user}", f"u {user}"


def judge(by_address: int, by_pair: int, by_user: int, per_minute: int,
          delay: float) -> float | None:
    """``RateLimiter``'s rule on the failures of the last minute: None refuses the attempt,
    else the seconds to wait before its password is checked."""
    if by_address >= 5 * per_minute or by_pair >= per_minute:
        return None
    under_attack = by_user >= per_minute
    if under_attack and by_pair:
        return None
    return delay if under_attack else 0.0


class RateLimiter:
    """Failed logins in a sliding minute, in memory, such that guessing stays slow and
    nobody can lock a person out of their own account by failing in their name.

    With N = ``per_minute``:
    - an address gets at most 5N failures (a care unit or an office shares one address
      behind NAT, so this is the loose limit);
    - a user from one address gets at most N;
    - a user with N failures from anywhere is "under attack": an address that has itself
      failed for that user is then refused until its failures age out, and every other
      attempt for that user waits ``delay`` seconds before the password is checked.

    So a guesser on one address gets N guesses a minute; a distributed guesser, one guess
    per address a minute once the user is under attack, each held for the delay; and the
    real person, from an address that has not failed for them, always gets in (a second
    later while the attack lasts). A per-user limit that refused every address would hand
    any stranger a way to lock a night nurse out at the start of a shift; this one cannot,
    because failures from elsewhere never refuse a clean address.

    Every attempt counts as a failure from the moment it is let through, so a burst of
    parallel guesses cannot all pass the check before the first is judged; a success takes
    its own attempt back and clears that user's failures from that address. The address is
    the peer's, or what a trusted proxy forwarded (``Settings.trusted_proxies``): a client
    cannot choose it. Keys with nothing in the window are dropped, so the memory held is
    bounded by the attempts of the last minute.
    """

    WINDOW = 60.0

    def __init__(self, per_minute: int, delay: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.delay = delay
        self._clock = clock
        self._fails: dict[str, deque[float]] = {}
        self._pruned = clock()

    def attempt(self, username: str, address: str) -> float | None:
        """None: refuse this attempt. Else the seconds to wait before checking it."""
        now = self._clock()
        self._prune(now)
        keys = login_keys(username, address)
        by_address, by_pair, by_user = (self._count(key, now) for key in keys)
        wait = judge(by_address, by_pair, by_user, self.per_minute, self.delay)
        if wait is not None:
            for key in keys:
                self._fails.setdefault(key, deque()).append(now)
        return wait

    def succeeded(self, username: str, address: str) -> None:
        """The attempt let through last was right: it was no failure."""
        by_address, by_pair, by_user = login_keys(username, address)
        for key in (by_address, by_user):
            hits = self._fails.get(key)
            if hits:
                hits.pop()
        self._fails.pop(by_pair, None)

    def _count(self, key: str, now: float) -> int:
        hits = self._fails.get(key)
        if hits is None:
            return 0
        while hits and hits[0] <= now - self.WINDOW:
            hits.popleft()
        if not hits:
            del self._fails[key]
        return len(hits)

    def _prune(self, now: float) -> None:
        if now - self._pruned < self.WINDOW:
            return
        self._pruned = now
        for key in list(self._fails):
            self._count(key, now)


async def authenticate(db: AsyncSession, username: str, password: str) -> User | None:
    user = (await db.execute(select(User).where(User.username == username))).scalar()
    if user is None or not user.active:
        await check_password(_DUMMY_HASH, password)
        return None
    return user if await check_password(user.password_hash, password) else None


async def start_session(db: AsyncSession, user: User, hours: float) -> str:
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    db.add(WebSession(id=_digest(token), user_id=user.id, csrf=secrets.token_urlsafe(24),
                      created_at=now, expires_at=now + timedelta(hours=hours)))
    return token


async def load_session(db: AsyncSession, token: str | None) -> tuple[User, WebSession] | None:
    if not token or len(token) > 128:
        return None
    row = (await db.execute(
        select(WebSession, User).join(User, User.id == WebSession.user_id)
        .where(WebSession.id == _digest(token)))).first()
    if row is None:
        return None
    web_session, user = row
    if web_session.expires_at < datetime.now(UTC) or not user.active:
        return None
    return user, web_session


async def end_session(db: AsyncSession, token: str) -> None:
    await db.execute(delete(WebSession).where(WebSession.id == _digest(token)))


async def live_sessions(db: AsyncSession,
                        session_ids: set[str]) -> dict[str, tuple[int, str, datetime]]:
    """Of these session ids (``web_sessions.id``), those valid now: the row exists, it has
    not expired and its user is active; each as (user id, role, expires_at). One query per
    900 ids (SQLite's bound on parameters), so one for the open patrol sockets of a node."""
    now = datetime.now(UTC)
    ids = sorted(session_ids)
    found: dict[str, tuple[int, str, datetime]] = {}
    for start in range(0, len(ids), 900):
        rows = await db.execute(
            select(WebSession.id, WebSession.user_id, User.role, WebSession.expires_at)
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.id.in_(ids[start:start + 900]), WebSession.expires_at > now,
                   User.active.is_(True)))
        for session_id, user_id, role, expires_at in rows.all():
            found[session_id] = (user_id, role, expires_at)
    return found


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(expected, given or "")
