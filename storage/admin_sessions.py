"""Admin web sessions kept on the server, so that they can end.

The browser holds a random token (256 bits) and nothing else that grants access; the table holds
its SHA-256. A session ends when it has been idle longer than `idle`, when its absolute lifetime
is over, at logout, when the person gets a new password, when they no longer hold a role that may
use the web, and when they choose "sign out everywhere". Ending one is deleting its row: a copy of
the cookie taken before then opens nothing.

The lifetimes are the caller's (settings); this module reads no settings and takes the clock.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AdminSession

TOKEN_BYTES = 32
# last_seen_at is written at most this often: a page view need not be a write (SQLite has one
# writer), and a minute is nothing against an idle timeout of many minutes.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Lifetimes:
    idle: timedelta
    absolute: timedelta


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def start(s: AsyncSession, person_id: int, now: datetime, life: Lifetimes) -> str:
    """A new session for the person; returns the token for the cookie."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    s.add(
        AdminSession(
            token_hash=_hash(token),
            person_id=person_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + life.absolute,
        )
    )
    await s.flush()
    return token


async def resume(s: AsyncSession, token: str, now: datetime, life: Lifetimes) -> int | None:
    """The person id of a live session, or None (unknown, ended, idle too long, too old).

    A session found expired is deleted on the way."""
    if not token or len(token) > 100:
        return None
    row = await s.scalar(select(AdminSession).where(AdminSession.token_hash == _hash(token)))
    if row is None:
        return None
    if now >= row.expires_at or now - row.last_seen_at >= life.idle or now < row.created_at:
        await s.execute(delete(AdminSession).where(AdminSession.id == row.id))
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        await s.execute(update(AdminSession).where(AdminSession.id == row.id).values(last_seen_at=now))
    return row.person_id


async def end(s: AsyncSession, token: str) -> None:
    """Logout: this session only."""
    if token:
        await s.execute(delete(AdminSession).where(AdminSession.token_hash == _hash(token)))


async def end_all(s: AsyncSession, person_id: int) -> int:
    """Every session of the person (sign out everywhere, a new password, a role taken away,
    erasure). Returns how many ended."""
    res = await s.execute(delete(AdminSession).where(AdminSession.person_id == person_id))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


async def purge_expired(s: AsyncSession, now: datetime, life: Lifetimes) -> int:
    """Delete sessions past either lifetime (housekeeping; `resume` refuses them anyway)."""
    res = await s.execute(
        delete(AdminSession).where(
            (AdminSession.expires_at <= now) | (AdminSession.last_seen_at <= now - life.idle)
        )
    )
    return int(res.rowcount or 0)  # type: ignore[attr-defined]
