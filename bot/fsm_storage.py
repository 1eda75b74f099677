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
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import utcnow
from storage.models import ConversationState

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

    async def _row(self, s: AsyncSession, key: StorageKey) -> ConversationState | None:
        return await s.get(ConversationState, self._keys.build(key))

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        async with self._session() as (s, own):
            row = await self._row(s, key)
            if row is None:
                if value is None:
                    return
                row = ConversationState(key=self._keys.build(key), state=value, data={})
                s.add(row)
            else:
                row.state = value
                row.updated_at = utcnow()
            await self._tidy(s, row)
            if own:
                await s.commit()

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._session() as (s, _own):
            row = await self._row(s, key)
            return row.state if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        async with self._session() as (s, own):
            row = await self._row(s, key)
            if row is None:
                if not data:
                    return
                row = ConversationState(key=self._keys.build(key), state=None, data=dict(data))
                s.add(row)
            else:
                row.data = dict(data)  # a new object, so SQLAlchemy sees the JSON change
                row.updated_at = utcnow()
            await self._tidy(s, row)
            if own:
                await s.commit()

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._session() as (s, _own):
            row = await self._row(s, key)
            return dict(row.data) if row and row.data else {}

    async def _tidy(self, s: AsyncSession, row: ConversationState) -> None:
        # A finished conversation leaves no row behind (and no personal data in it).
        await s.flush()
        if row.state is None and not row.data:
            await s.execute(delete(ConversationState).where(ConversationState.key == row.key))

    async def close(self) -> None:
        return None
