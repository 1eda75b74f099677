"""What every request of the admin web shares: the database, settings, clock, templates, the
sign-in limiter and the short-lived upload stash."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from admin.web.security import SignInLimiter
from config.clock import Clock
from config.settings import Settings
from content.pack import Pack
from storage.admin_sessions import Lifetimes

Notify = Callable[[], Awaitable[None] | None]


@dataclass
class Stashed:
    """An upload kept between its preview and the confirmation (or a file made for download)."""

    person_id: int
    org_id: int
    data: bytes
    filename: str
    expires_at: datetime
    result: bytes | None = None  # the invite sheet, once imported


class Stash:
    """Bounded, expiring, in memory: an unconfirmed upload is simply uploaded again after a restart."""

    def __init__(self, ttl: timedelta = timedelta(minutes=30), max_items: int = 20) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self._items: OrderedDict[str, Stashed] = OrderedDict()

    def put(self, person_id: int, org_id: int, data: bytes, filename: str, now: datetime) -> str:
        self._expire(now)
        while len(self._items) >= self.max_items:
            self._items.popitem(last=False)
        token = secrets.token_urlsafe(24)
        self._items[token] = Stashed(person_id, org_id, data, filename, now + self.ttl)
        return token

    def get(self, token: str, person_id: int, now: datetime) -> Stashed | None:
        """The item, only for the person who stashed it."""
        self._expire(now)
        item = self._items.get(token)
        return item if item is not None and item.person_id == person_id else None

    def _expire(self, now: datetime) -> None:
        for k in [k for k, v in self._items.items() if v.expires_at <= now]:
            del self._items[k]


@dataclass
class WebState:
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    clock: Clock
    pack: Pack
    env: Environment
    secure_cookies: bool
    notify: Notify | None = None
    limiter: SignInLimiter = field(default_factory=SignInLimiter)
    stash: Stash = field(default_factory=Stash)

    @property
    def session_life(self) -> Lifetimes:
        st = self.settings
        return Lifetimes(
            idle=timedelta(minutes=st.admin_session_idle_minutes),
            absolute=timedelta(hours=st.admin_session_hours),
        )

    async def wake_delivery(self) -> None:
        """Tell the delivery worker there is new mail in the outbox (after the commit)."""
        if self.notify is None:
            return
        result = self.notify()
        if result is not None:
            await result
