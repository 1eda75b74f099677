"""Conversation state in the database (bot/fsm_storage.py): within an update's session the
changes are written once, at commit, and vanish with a rollback."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.fsm_storage import DbStorage, current_session, update_session
from storage.models import ConversationState

KEY = StorageKey(bot_id=1, chat_id=42, user_id=42)


@contextmanager
def statements_on_states(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements sent to the database that touch the conversation_states table."""
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:
        if "conversation_states" in statement:
            seen.append(statement.split()[0].upper())

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


async def stored(sessionmaker: async_sessionmaker[AsyncSession]) -> list[tuple[str | None, dict]]:
    async with sessionmaker() as s:
        return [tuple(r) for r in await s.execute(select(ConversationState.state, ConversationState.data))]


async def test_a_step_is_one_write_at_commit(clean_db: AsyncEngine, sessionmaker) -> None:
    storage = DbStorage(sessionmaker)
    async with sessionmaker() as s:
        with update_session(s):
            with statements_on_states(clean_db) as seen:
                # What /log's quick form does: clear, then the state and the answers.
                await storage.set_state(KEY, None)
                await storage.set_data(KEY, {})
                await storage.set_state(KEY, "LogQuick:action")
                await storage.set_data(KEY, {"wid": 7, "minutes": 60})
                assert await storage.get_state(KEY) == "LogQuick:action"  # seen before commit
                assert await storage.get_data(KEY) == {"wid": 7, "minutes": 60}
                await s.commit()
    assert seen == ["SELECT", "INSERT"]  # the one read, then one upsert
    assert await stored(sessionmaker) == [("LogQuick:action", {"wid": 7, "minutes": 60})]


async def test_nothing_is_written_when_nothing_changes(clean_db: AsyncEngine, sessionmaker) -> None:
    storage = DbStorage(sessionmaker)
    async with sessionmaker() as s:
        with update_session(s):
            with statements_on_states(clean_db) as seen:
                await storage.set_state(KEY, None)
                await storage.set_data(KEY, {})
                await s.commit()
    assert seen == ["SELECT"]
    assert await stored(sessionmaker) == []


async def test_a_finished_conversation_leaves_no_row(clean_db: AsyncEngine, sessionmaker) -> None:
    storage = DbStorage(sessionmaker)
    await storage.set_state(KEY, "LogWizard:day")  # outside an update: its own session, committed
    assert await stored(sessionmaker) == [("LogWizard:day", {})]
    async with sessionmaker() as s:
        with update_session(s):
            await storage.set_state(KEY, None)
            await s.commit()
    assert await stored(sessionmaker) == []


async def test_a_rollback_drops_the_changes(clean_db: AsyncEngine, sessionmaker) -> None:
    storage = DbStorage(sessionmaker)
    async with sessionmaker() as s:
        with update_session(s):
            await storage.set_state(KEY, "LogWizard:day")
            await s.rollback()  # a handler's own (a refused answer), or the guard's
            assert await storage.get_state(KEY) is None
            await s.commit()
    assert await stored(sessionmaker) == []


async def test_after_a_rollback_the_conversation_is_read_again_as_stored(
    clean_db: AsyncEngine, sessionmaker
) -> None:
    """Regression: a rollback other than the guard's (a refused form answer's, once) left the
    update's copy of the conversation as the handler had changed it, where only the guard's own
    rollback forgot it; a later write in the update then stored the rolled-back step's data."""
    storage = DbStorage(sessionmaker)
    await storage.set_state(KEY, "LogWizard:day")
    async with sessionmaker() as s:
        with update_session(s):
            await storage.set_data(KEY, {"day": "2026-11-28"})
            await s.rollback()
            assert await storage.get_data(KEY) == {}
            await storage.set_state(KEY, "LogWizard:minutes")
            await s.commit()
    assert await stored(sessionmaker) == [("LogWizard:minutes", {})]


async def test_a_context_copied_during_the_update_lets_go_of_its_session(sessionmaker) -> None:
    """Regression: a timer or task started during an update copies the context and kept the
    update's session alive through it until it fired (aiohttp's timeouts: a minute)."""
    async with sessionmaker() as s:
        with update_session(s):
            copied = contextvars.copy_context()  # what `call_later` and `create_task` take
            assert current_session() is s and copied.run(current_session) is s
        assert current_session() is None
    assert copied.run(current_session) is None
    # Nothing in the copied context reaches the session any more.
    assert not any(v is s or (isinstance(v, list) and any(x is s for x in v)) for v in copied.values())
