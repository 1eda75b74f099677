"""Admin web sign-in: one-time links the bot sends on /web, and passwords for admins and staff.

A link token is 256 random bits; only its SHA-256 is stored (WebSignIn.token_hash), so the table
cannot be replayed from a backup. A link lives 10 minutes and works once: redeeming it is one
conditional UPDATE, so two clicks racing each other cannot both sign in.

Passwords are hashed with Argon2 (argon2-cffi's defaults, rehashed on sign-in when those change).
An unknown username costs the same hashing work as a known one, so timing does not tell them apart.
The web rate-limits attempts; this module only answers yes or no.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import admin_sessions, audit
from storage.access import Actor, load_actor
from storage.errors import Forbidden, NotFound, Refused
from storage.models import Membership, Org, Person, Role, WebSignIn
from storage.validation import parse

if TYPE_CHECKING:
    from argon2 import PasswordHasher

LINK_TTL = timedelta(minutes=10)
TOKEN_BYTES = 32
# Who may open the admin web through a link from the bot, and who may have a password.
LINK_ROLES = (Role.SECRETARY, Role.STAFF, Role.ADMIN)
PASSWORD_ROLES = (Role.STAFF, Role.ADMIN)

# Made on first use: the bot imports this module for its sign-in links, which need no hashing,
# and a bot process does not load argon2 (issue 11, memory). Tests may set a cheaper one.
HASHER: PasswordHasher | None = None


def _hasher() -> PasswordHasher:
    global HASHER
    if HASHER is None:
        from argon2 import PasswordHasher

        HASHER = PasswordHasher()
    return HASHER


_dummy: dict[str, str] = {}


def _dummy_hash() -> str:
    """Verified against when the username is unknown, so both paths do the same work."""
    if "hash" not in _dummy:
        _dummy["hash"] = _hasher().hash("branchbot: no such user")
    return _dummy["hash"]


def _verify(stored: str | None, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def create_sign_in_link(s: AsyncSession, actor: Actor, now: datetime) -> str:
    """A one-time sign-in token for the actor (secretary, staff or admin); the caller builds the URL.

    Valid `LINK_TTL` from `now`, single use. Members are refused (`Forbidden("web.no_access")`).
    """
    if not actor.roles() & set(LINK_ROLES):
        raise Forbidden("web.no_access")
    person = await s.get(Person, actor.person_id)
    if person is None or person.erased_at is not None:
        raise NotFound()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    s.add(
        WebSignIn(
            token_hash=token_hash(token), person_id=person.id, expires_at=now + LINK_TTL, created_at=now
        )
    )
    await s.flush()
    return token


async def _link(s: AsyncSession, token: str) -> WebSignIn | None:
    if not token or len(token) > 200:
        return None
    return await s.scalar(select(WebSignIn).where(WebSignIn.token_hash == token_hash(token)))


def _check_link(row: WebSignIn | None, now: datetime) -> WebSignIn:
    if row is None:
        raise Refused("web.link_unknown")
    if row.used_at is not None:
        raise Refused("web.link_used")
    if row.expires_at <= now:
        raise Refused("web.link_expired")
    return row


async def peek_sign_in_link(s: AsyncSession, token: str, now: datetime) -> Person:
    """Whose link this is, if it is still usable; nothing is changed (the link stays unused)."""
    row = _check_link(await _link(s, token), now)
    person = await s.get(Person, row.person_id)
    if person is None or person.erased_at is not None:
        raise Refused("web.link_unknown")
    return person


async def redeem_sign_in_link(s: AsyncSession, token: str, now: datetime) -> Actor:
    """Use the link: marks it used and returns the person's Actor (via="web").

    Refused with "web.link_unknown", "web.link_used" or "web.link_expired"; Forbidden if the
    person no longer holds a role that may use the web.
    """
    row = _check_link(await _link(s, token), now)
    res = await s.execute(
        update(WebSignIn)
        .where(WebSignIn.id == row.id, WebSignIn.used_at.is_(None), WebSignIn.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if not res.rowcount:  # type: ignore[attr-defined]
        raise Refused("web.link_used")  # another click got there first
    person = await s.get(Person, row.person_id)
    if person is None or person.erased_at is not None:
        raise Refused("web.link_unknown")
    actor = await load_actor(s, person.id, via="web")
    if not actor.roles() & set(LINK_ROLES):
        raise Forbidden("web.no_access")
    await audit.record(
        s, actor, "web.sign_in", subject_person_id=person.id, detail={"method": "link"}, now=now
    )
    return actor


# ---- passwords ------------------------------------------------------------------------------


class NewPassword(BaseModel):
    model_config = ConfigDict(frozen=True)

    username: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{2,63}$", json_schema_extra={"error_key": "web.bad_username"}
    )
    password: str = Field(min_length=10, max_length=200, json_schema_extra={"error_key": "web.weak_password"})


async def set_password(s: AsyncSession, actor: Actor, person_id: int, username: str, password: str) -> Person:
    """Give an admin or staff person a username and password (an admin, or the CLI, does this)."""
    if not actor.is_admin:
        raise Forbidden()
    data = parse(NewPassword, username=username.strip().lower(), password=password)
    person = await s.get(Person, person_id)
    if person is None or person.erased_at is not None:
        raise NotFound()
    target = await load_actor(s, person.id)
    if not target.roles() & set(PASSWORD_ROLES):
        raise Refused("web.password_role")
    taken = await s.scalar(select(Person.id).where(Person.username == data.username, Person.id != person.id))
    if taken is not None:
        raise Refused("web.username_taken", username=data.username)
    person.username = data.username
    # Argon2 takes a good part of a second on purpose: off the event loop the bot shares.
    person.password_hash = await asyncio.to_thread(_hasher().hash, data.password)
    # Whoever signed in with the old password (or holds a stolen cookie) is signed out.
    await admin_sessions.end_all(s, person.id)
    await s.flush()
    await audit.record(s, actor, "web.password_set", subject_person_id=person.id)
    return person


async def create_first_admin(
    s: AsyncSession, actor: Actor, username: str, password: str, *, now: datetime
) -> Person:
    """A fresh install's first administrator, made from the command line without Telegram: a
    person with the admin role at the root organization, a username and a password.

    Refused when an admin already exists (give that person a password with `set_password`
    instead) or when there is no organization yet to hold the role.
    """
    if not actor.is_admin:
        raise Forbidden()
    data = parse(NewPassword, username=username.strip().lower(), password=password)
    existing = await s.scalar(
        select(Person.id)
        .join(Membership, Membership.person_id == Person.id)
        .where(Membership.role == Role.ADMIN, Person.erased_at.is_(None))
        .order_by(Person.id)
        .limit(1)
    )
    if existing is not None:
        raise Refused("web.admin_exists", person=existing)
    root = await s.scalar(select(Org).where(Org.parent_id.is_(None)).order_by(Org.id).limit(1))
    if root is None:
        raise Refused("web.admin_no_org")
    if await s.scalar(select(Person.id).where(Person.username == data.username)) is not None:
        raise Refused("web.username_taken", username=data.username)
    person = Person(
        name=data.username,
        username=data.username,
        password_hash=await asyncio.to_thread(_hasher().hash, data.password),
        created_at=now,
    )
    s.add(person)
    await s.flush()
    s.add(Membership(person_id=person.id, org_id=root.id, role=Role.ADMIN, created_at=now))
    await s.flush()
    await audit.record(s, actor, "web.admin_created", subject_person_id=person.id, org_id=root.id, now=now)
    return person


async def check_password(s: AsyncSession, username: str, password: str, now: datetime) -> Actor | None:
    """The Actor (via="web") if the username and password match an admin or staff person; else None."""
    name = (username or "").strip().lower()
    person = None
    if 0 < len(name) <= 64 and len(password) <= 200:
        person = await s.scalar(select(Person).where(Person.username == name, Person.erased_at.is_(None)))
    stored = person.password_hash if person is not None else None
    # With no such user (or no password) the dummy hash is checked: the same work, the same time.
    ok = await asyncio.to_thread(_verify, stored, password)
    if not ok or person is None or stored is None:
        return None
    actor = await load_actor(s, person.id, via="web")
    if not actor.roles() & set(PASSWORD_ROLES):
        return None
    if _hasher().check_needs_rehash(stored):
        person.password_hash = await asyncio.to_thread(_hasher().hash, password)
    await audit.record(
        s, actor, "web.sign_in", subject_person_id=person.id, detail={"method": "password"}, now=now
    )
    return actor
