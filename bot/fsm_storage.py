"""Conversation state (aiogram FSM) in our database, so a wizard survives a restart.

Within an update the storage uses that update's session (set in a context variable by the
update guard): state changes then commit together with the rows the step wrote, and a
redelivered update cannot advance a wizard twice. SQLite also needs this: a second connection
writing while the update's transaction holds the write lock would wait on itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import cache
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey
from sqlalchemy import Insert, bindparam, delete, event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from storage.db import BEFORE_COMMIT, TRANSACTION_INFO, dialect_insert, utcnow
from storage.direct import Direct, fetch
from storage.models import ConversationState

_KEEP = object()
_T = ConversationState.__table__
_SELECT = select(_T.c.state, _T.c.data).where(_T.c.key == bindparam("key"))
_DELETE = delete(_T).where(_T.c.key == bindparam("key"))


@cache
def _upsert(dialect: str) -> Insert:
    """Insert or replace one conversation; built once, so each use is a compiled-cache hit."""
    stmt = dialect_insert(dialect)(_T).values(
        key=bindparam("key"),
        state=bindparam("state"),
        data=bindparam("data"),
        updated_at=bindparam("updated_at"),
    )
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[_T.c.key],
        set_={"state": excluded.state, "data": excluded.data, "updated_at": excluded.updated_at},
    )


_DIRECT_DELETE = Direct(_DELETE)


@cache
def _direct_upsert(dialect: str) -> Direct:
    return Direct(_upsert(dialect))


# The update's session, for the conversations it reads and writes. The context variable holds a
# list that `update_session` empties when the update ends: a timer or task started while the
# update ran (aiohttp's timeouts, a task a handler starts) copies the context and keeps its
# values until it fires or is dropped, and with the session itself in it each finished update's
# session and what it held lived on that long.
_current: ContextVar[list[AsyncSession] | None] = ContextVar("current_session", default=None)


@contextmanager
def update_session(s: AsyncSession) -> Iterator[None]:
    """`s` is the update's session until the block ends, and no longer, wherever the context went."""
    held = [s]
    token = _current.set(held)
    try:
        yield
    finally:
        held.clear()
        _current.reset(token)


def current_session() -> AsyncSession | None:
    held = _current.get()
    return held[0] if held else None


# Per session (in `Session.info`): the conversations as the update sees them, whether each has a
# row in the database, and which changed. A form's step sets the state and then the data (and
# /log clears both first): written as they come that is two or four statements, written at
# commit it is one upsert per conversation, or none when nothing ends up changed.
_ROWS = "fsm_rows"
_STORED = "fsm_stored"
_DIRTY = "fsm_dirty"
# A rollback voids them (`StoreSession.rollback`), wherever it is called: the guard's after a
# failure, a handler's after a refused answer.
TRANSACTION_INFO.update((_ROWS, _STORED, _DIRTY))

_Row = tuple[str | None, dict[str, Any]]


def _changes(info: dict[str, Any]) -> list[tuple[str, _Row | None]]:
    """The conversations changed in this transaction (now marked written), in a fixed order so
    two sessions never lock them in opposite orders; a deleted one only if it had a row."""
    dirty: set[str] | None = info.pop(_DIRTY, None)
    if not dirty:
        return []
    rows: dict[str, _Row | None] = info[_ROWS]
    stored: dict[str, bool] = info[_STORED]
    changes = []
    for key in sorted(dirty):
        row = rows[key]
        # A finished conversation leaves no row behind (and no personal data in it).
        if row is not None or stored[key]:
            changes.append((key, row))
        stored[key] = row is not None
    return changes


def _params(key: str, row: _Row | None, now: datetime) -> dict[str, Any]:
    return {"key": key} if row is None else {"key": key, "state": row[0], "data": row[1], "updated_at": now}


async def _write_changed_direct(s: AsyncSession) -> None:
    """The step `StoreSession.commit` runs first: each changed conversation written once,
    straight on the driver (this is a statement of nearly every update)."""
    now = utcnow()
    dialect = s.sync_session.get_bind().dialect.name
    for key, row in _changes(s.info):
        await fetch(s, _DIRECT_DELETE if row is None else _direct_upsert(dialect), _params(key, row, now))


@event.listens_for(Session, "before_commit")
def _write_changed(session: Session) -> None:
    """What is still unwritten when a session commits without `StoreSession.commit` (a plain
    session, a sync commit): written here, in SQLAlchemy's synchronous event."""
    now = utcnow()
    for key, row in _changes(session.info):
        if row is None:
            session.execute(_DELETE, {"key": key})
        else:
            session.execute(_upsert(session.get_bind().dialect.name), _params(key, row, now))


class DbStorage(BaseStorage):
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._keys = DefaultKeyBuilder(with_bot_id=True, with_destiny=True)

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[tuple[AsyncSession, bool]]:
        s = current_session()
        if s is not None:
            yield s, False
            return
        async with self._sessionmaker() as own:
            yield own, True

    def key_of(self, key: StorageKey) -> str:
        return self._keys.build(key)

    @staticmethod
    def remember(s: AsyncSession, key: str, row: _Row | None) -> None:
        """A conversation read along with something else (the person, `bot/middlewares.py`):
        the FSM middleware and the handler then find it without a query of their own."""
        rows: dict[str, _Row | None] = s.info.setdefault(_ROWS, {})
        if key not in rows:
            rows[key] = row
            s.info.setdefault(_STORED, {})[key] = row is not None

    async def _row(self, s: AsyncSession, key: str) -> _Row | None:
        # One conversation is read many times per update (the FSM middleware, then each
        # get/set in the handler); remember it for the session, absence included. Plain rows
        # through Core: this runs on every update, and ORM objects (identity map, change
        # tracking, a flush at commit) cost more than the statements themselves.
        rows: dict[str, _Row | None] = s.info.setdefault(_ROWS, {})
        if key not in rows:
            found = (await s.execute(_SELECT, {"key": key})).first()
            rows[key] = (found[0], found[1] or {}) if found is not None else None
            s.info.setdefault(_STORED, {})[key] = found is not None
        return rows[key]

    async def _write(self, key: StorageKey, state: str | object | None, data: dict[str, Any] | None) -> None:
        """Set the state and/or the data (`_KEEP` leaves one as it is); written at commit."""
        k = self._keys.build(key)
        async with self._session() as (s, own):
            row = await self._row(s, k)
            new_state = (row[0] if row else None) if state is _KEEP else state
            new_data = (dict(row[1]) if row else {}) if data is None else data
            assert new_state is None or isinstance(new_state, str)
            new = None if new_state is None and not new_data else (new_state, new_data)
            if new != row:
                s.info[_ROWS][k] = new
                s.info.setdefault(_DIRTY, set()).add(k)
                s.info.setdefault(BEFORE_COMMIT, {})["conversations"] = _write_changed_direct
            if own:
                await s.commit()

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._write(key, state.state if isinstance(state, State) else state, None)

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._session() as (s, _own):
            row = await self._row(s, self._keys.build(key))
            return row[0] if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, _KEEP, dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._session() as (s, _own):
            row = await self._row(s, self._keys.build(key))
            return dict(row[1]) if row else {}

    async def close(self) -> None:
        return None
