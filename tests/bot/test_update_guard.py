"""The update guard and a database outage: an update is handed back for a retry only while
nothing of it is committed; once its claim is stored (a commit by the gate's hook before a call
to Telegram, or by the handler itself), a retry would skip it, so the person is told instead."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiogram.types import Update
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.middlewares import UpdateGuard
from bot.transient import DatabaseUnavailable
from storage.models import ProcessedUpdate

BOT = SimpleNamespace(id=424242)  # the guard needs only the bot's id (no call is made here)


def _outage() -> OperationalError:
    return OperationalError("UPDATE ...", {}, Exception("database is locked"))


@pytest.fixture
def replies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    said: list[str] = []

    async def reply(self: UpdateGuard, update: Update, data: dict[str, Any], key: str, params: dict) -> None:
        said.append(key)

    monkeypatch.setattr(UpdateGuard, "_reply", reply)
    return said


async def _claimed(sessionmaker: async_sessionmaker[AsyncSession], update_id: int) -> bool:
    async with sessionmaker() as s:
        found = await s.scalar(select(ProcessedUpdate).where(ProcessedUpdate.update_id == update_id))
    return found is not None


async def test_an_outage_before_any_commit_is_retried(clean_db, sessionmaker, replies) -> None:
    async def handler(event: Update, data: dict[str, Any]) -> None:
        raise _outage()

    with pytest.raises(DatabaseUnavailable):
        await UpdateGuard(sessionmaker)(handler, Update(update_id=71), {"bot": BOT})
    assert replies == [] and not await _claimed(sessionmaker, 71)  # the retry will handle it


async def test_an_outage_after_the_handler_committed_is_told_not_retried(
    clean_db, sessionmaker, replies
) -> None:
    async def handler(event: Update, data: dict[str, Any]) -> None:
        await data["session"].commit()  # as handlers/packet.on_rate does before it talks
        raise _outage()

    # Regression: only the gate's hook counted as "committed", so this went back for a retry,
    # which found the claim stored and skipped the update: nothing told the person.
    assert await UpdateGuard(sessionmaker)(handler, Update(update_id=72), {"bot": BOT}) is None
    assert replies == ["error.unavailable"] and await _claimed(sessionmaker, 72)
