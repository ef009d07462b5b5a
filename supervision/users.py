"""People as admins manage them: add, change role and shift-lead flag, disable, reset a
password; and everyone's own password.

A new user, and one whose password an admin reset, gets a one-time link (valid
``LINK_HOURS``) to choose a password; the admin never knows it, and until the link is used
no password works (the stored hash is of a random secret nobody holds). Only the link
token's SHA-256 is kept. Passwords follow ``supervision.passwords``. A change of role,
disabling and a reset end the user's sessions in the same transaction and then close their
sockets on every node (``rt.end_sockets``), so what they may do changes at once. Every
change is audited; the last active admin cannot be demoted or disabled, so the service always has
someone who can manage people.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from supervision import audit, passwords
from supervision.auth import check_password, hash_password
from supervision.errors import BadInput, ServiceError
from supervision.models import PasswordLink, User, WebSession
from supervision.runtime import Runtime

LINK_HOURS = 72
Role = Literal["staff", "patrol", "manager", "admin"]
_PLAIN = r"^[^\x00-\x1f\x7f]*$"


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    shift_lead: bool
    active: bool
    link_pending: bool = Field(description="a password link was issued and not yet used")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    username: str = Field(min_length=2, max_length=64, pattern=r"^[a-zA-Z0-9._@-]+$")
    display_name: str = Field(min_length=1, max_length=128, pattern=_PLAIN)
    role: Role
    shift_lead: bool = False


class UserChange(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    display_name: str | None = Field(None, min_length=1, max_length=128, pattern=_PLAIN)
    role: Role | None = None
    shift_lead: bool | None = None
    active: bool | None = None


class PasswordLinkOut(BaseModel):
    user: UserOut
    token: str = Field(description="shown once; the link is /account/password/<token>")
    expires_at: datetime


class OwnPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current: str = Field(max_length=256)
    new: str = Field(max_length=256)


class NewPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(max_length=256)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _view(user: User, pending: bool) -> UserOut:
    return UserOut(id=user.id, username=user.username, display_name=user.display_name,
                   role=user.role, shift_lead=user.shift_lead, active=user.active,
                   link_pending=pending)


def check_rules(password: str, user: User, field: str = "password") -> None:
    """422 in the validation shape, one item per broken rule (``users.password.<code>``)."""
    found = passwords.problems(password, username=user.username, name=user.display_name)
    if found:
        raise BadInput([{"loc": ["body", field], "type": "password", "code": code,
                         "msg": f"password rule: {code}", "min": passwords.MIN_LENGTH}
                        for code in found])


async def _pending(db: AsyncSession, now: datetime) -> set[int]:
    return set((await db.execute(select(PasswordLink.user_id).where(
        PasswordLink.used_at.is_(None), PasswordLink.expires_at > now))).scalars())


async def listing(rt: Runtime) -> list[UserOut]:
    async with rt.read() as db:
        pending = await _pending(db, datetime.now(UTC))
        rows = (await db.execute(select(User).order_by(User.username))).scalars().all()
    return [_view(u, u.id in pending) for u in rows]


async def _user(db: AsyncSession, user_id: int) -> User:
    user = await db.get(User, user_id)
    if user is None:
        raise ServiceError(404, "admin.users.error.no_user")
    return user


async def _end_sessions(db: AsyncSession, user_id: int, keep: str | None = None) -> list[str]:
    """Delete the user's sessions (but ``keep``); their ids, for closing their sockets."""
    query = select(WebSession.id).where(WebSession.user_id == user_id)
    if keep is not None:
        query = query.where(WebSession.id != keep)
    ids = list((await db.execute(query)).scalars())
    if ids:
        await db.execute(delete(WebSession).where(WebSession.id.in_(ids)))
    return ids


async def _issue_link(db: AsyncSession, user: User, actor: str,
                      now: datetime) -> tuple[str, datetime]:
    """A fresh one-time link; earlier unused ones are spent, and no password works now."""
    await db.execute(update(PasswordLink).where(
        PasswordLink.user_id == user.id, PasswordLink.used_at.is_(None)).values(used_at=now))
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(hours=LINK_HOURS)
    db.add(PasswordLink(token_hash=_digest(token), user_id=user.id, created_by=actor,
                        created_at=now, expires_at=expires))
    user.password_hash = await hash_password(secrets.token_urlsafe(32))
    return token, expires


async def add(rt: Runtime, body: UserCreate, actor: str) -> PasswordLinkOut:
    """A new user, with a one-time link to choose their password."""
    now = datetime.now(UTC)
    async with rt.write() as db:
        taken = (await db.execute(select(User.id).where(
            func.lower(User.username) == body.username.lower()))).scalar()
        if taken is not None:
            raise ServiceError(409, "admin.users.error.taken", username=body.username)
        user = User(username=body.username, display_name=body.display_name, role=body.role,
                    shift_lead=body.shift_lead, active=True, password_hash="!")
        db.add(user)
        await db.flush()
        token, expires = await _issue_link(db, user, actor, now)
        await audit.append(db, actor, "user.added", f"user:{user.username}", {
            "role": user.role, "shift_lead": user.shift_lead, "password_link": True})
        out = _view(user, True)
    return PasswordLinkOut(user=out, token=token, expires_at=expires)


async def _admins_left(db: AsyncSession, but: int) -> int:
    return int((await db.execute(select(func.count(User.id)).where(
        User.role == "admin", User.active.is_(True), User.id != but))).scalar_one())


async def change(rt: Runtime, user_id: int, body: UserChange, actor: str) -> UserOut:
    """Name, role, shift-lead flag, active. A new role or disabling ends their sessions."""
    async with rt.write() as db:
        user = await _user(db, user_id)
        before = {"display_name": user.display_name, "role": user.role,
                  "shift_lead": user.shift_lead, "active": user.active}
        after = dict(before)
        after.update({k: v for k, v in body.model_dump().items() if v is not None})
        if before["role"] == "admin" and before["active"] and (
                after["role"] != "admin" or not after["active"]) \
                and await _admins_left(db, user.id) == 0:
            raise ServiceError(409, "admin.users.error.last_admin")
        if after == before:
            return _view(user, user.id in await _pending(db, datetime.now(UTC)))
        user.display_name, user.role = str(after["display_name"]), str(after["role"])
        user.shift_lead, user.active = bool(after["shift_lead"]), bool(after["active"])
        ends = after["role"] != before["role"] or (before["active"] and not after["active"])
        ended = await _end_sessions(db, user.id) if ends else []
        await audit.append(db, actor, "user.changed", f"user:{user.username}", {
            "before": before, "after": after, "sessions_ended": len(ended)})
        out = _view(user, user.id in await _pending(db, datetime.now(UTC)))
    if ends:  # after the commit: their sockets close now, not at their next check
        await rt.end_sockets(user_id=user_id,
                             reason="role changed" if user.active else "user disabled")
    return out


async def reset(rt: Runtime, user_id: int, actor: str) -> PasswordLinkOut:
    """The old password stops working at once; a one-time link sets a new one."""
    now = datetime.now(UTC)
    async with rt.write() as db:
        user = await _user(db, user_id)
        token, expires = await _issue_link(db, user, actor, now)
        ended = await _end_sessions(db, user.id)
        await audit.append(db, actor, "user.password_reset", f"user:{user.username}",
                           {"sessions_ended": len(ended)})
        out = _view(user, True)
    await rt.end_sockets(user_id=user_id, reason="password reset")
    return PasswordLinkOut(user=out, token=token, expires_at=expires)


async def _valid_link(db: AsyncSession, token: str, now: datetime) -> tuple[PasswordLink, User]:
    link = (await db.execute(select(PasswordLink).where(
        PasswordLink.token_hash == _digest(token[:128])))).scalar()
    if link is None or link.used_at is not None or link.expires_at <= now:
        raise ServiceError(404, "users.error.link")
    user = await db.get(User, link.user_id)
    if user is None or not user.active:
        raise ServiceError(404, "users.error.link")
    return link, user


async def link_user(rt: Runtime, token: str) -> UserOut:
    """Whose link this is, if it is still good (the page greets them by name)."""
    async with rt.read() as db:
        _, user = await _valid_link(db, token, datetime.now(UTC))
        return _view(user, True)


async def set_by_link(rt: Runtime, token: str, password: str) -> UserOut:
    """Spend the link and set the password it was issued for."""
    now = datetime.now(UTC)
    async with rt.write() as db:
        link, user = await _valid_link(db, token, now)
        check_rules(password, user)
        link.used_at = now
        user.password_hash = await hash_password(password)
        await _end_sessions(db, user.id)
        await audit.append(db, user.username, "user.password_set", f"user:{user.username}",
                           {"link_by": link.created_by})
        out = _view(user, False)
    await rt.end_sockets(user_id=out.id, reason="password set")
    return out


async def change_own(rt: Runtime, user_id: int, session_id: str, body: OwnPassword) -> None:
    """Anyone's own password, given the current one; their other sessions end."""
    async with rt.write() as db:
        user = await _user(db, user_id)
        if not await check_password(user.password_hash, body.current):
            raise BadInput([{"loc": ["body", "current"], "type": "password", "code": "wrong",
                             "msg": "the current password is wrong"}])
        check_rules(body.new, user, "new")
        if body.new == body.current:
            raise BadInput([{"loc": ["body", "new"], "type": "password", "code": "same",
                             "msg": "the new password is the current one"}])
        user.password_hash = await hash_password(body.new)
        ended = await _end_sessions(db, user.id, keep=session_id)
        await audit.append(db, user.username, "user.password_changed",
                           f"user:{user.username}", {"other_sessions_ended": len(ended)})
    for sid in ended:
        await rt.end_sockets(session_id=sid, reason="password changed")
