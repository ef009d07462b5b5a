"""People: argon2 passwords, server-side sessions, CSRF tokens, roles, login rate limits."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import defaultdict, deque
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


class RateLimiter:
    """Login attempts a minute, in memory: N per username, 5N per address (an office or a
    care unit shares one address behind NAT, so the address limit is the looser one)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: defaultdict[str, deque[float]] = defaultdict(deque)

    def _hit(self, key: str, limit: int, now: float) -> bool:
        hits = self._hits[key]
        while hits and hits[0] < now - 60:
            hits.popleft()
        hits.append(now)
        return len(hits) <= limit

    def allow(self, username: str, address: str) -> bool:
        now = time.monotonic()
        user_ok = self._hit("user:" + username.lower(), self.per_minute, now)
        address_ok = self._hit("addr:" + address, self.per_minute * 5, now)
        return user_ok and address_ok


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


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(expected, given or "")
