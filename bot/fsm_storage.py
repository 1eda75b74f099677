"""Conversation state (aiogram FSM) in our database, so a wizard survives a restart.

Within an update the storage uses that update's session (set in a context variable by the
update guard): state changes then commit together with the rows the step wrote, and a
redelivered update cannot advance a wizard twice. SQLite also needs this: a second connection
writing while the update's transaction holds the write lock would wait on itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import utcnow
from storage.models import ConversationState

_KEEP = object()

current_session: ContextVar[AsyncSession | None] = ContextVar("current_session", default=None)


class DbStorage(BaseStorage):
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._keys = DefaultKeyBuilder(with_bot_id=True, with_destiny=True)

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[tuple[AsyncSession, bool]]:
        s = current_session.get()
        if s is not None:
            yield s, False
            return
        async with self._sessionmaker() as own:
            yield own, True

    async def _row(self, s: AsyncSession, key: str) -> ConversationState | None:
        # One conversation is read many times per update (the FSM middleware, then each
        # get/set in the handler); remember it for the session, absence included.
        cache: dict[str, ConversationState | None] = s.info.setdefault("fsm_rows", {})
        if key not in cache:
            cache[key] = await s.get(ConversationState, key)
        return cache[key]

    async def _write(self, key: StorageKey, state: str | object | None, data: dict[str, Any] | None) -> None:
        """Set the state and/or the data (`_KEEP` leaves one as it is); no row for an empty conversation."""
        k = self._keys.build(key)
        async with self._session() as (s, own):
            row = await self._row(s, k)
            new_state = (row.state if row else None) if state is _KEEP else state
            new_data = (dict(row.data or {}) if row else {}) if data is None else data
            if new_state is None and not new_data:
                # A finished conversation leaves no row behind (and no personal data in it).
                if row is not None:
                    await s.delete(row)
                    s.info["fsm_rows"][k] = None
            elif row is None:
                row = ConversationState(key=k, state=new_state, data=new_data, updated_at=utcnow())
                s.add(row)
                s.info["fsm_rows"][k] = row
            else:
                row.state = new_state  # type: ignore[assignment]
                row.data = new_data  # a new object, so SQLAlchemy sees the JSON change
                row.updated_at = utcnow()
            if own:
                await s.commit()

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._write(key, state.state if isinstance(state, State) else state, None)

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._session() as (s, _own):
            row = await self._row(s, self._keys.build(key))
            return row.state if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, _KEEP, dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._session() as (s, _own):
            row = await self._row(s, self._keys.build(key))
            return dict(row.data) if row and row.data else {}

    async def close(self) -> None:
        return None
