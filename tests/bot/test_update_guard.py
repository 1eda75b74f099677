"""The update guard and a database outage: an update is handed back for a retry only while
nothing of it is committed; once its claim is stored (a commit by the gate's hook before a call
to Telegram, or by the handler itself), a retry would skip it, so the person is told instead."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiogram.types import InaccessibleMessage, InlineKeyboardButton, InlineKeyboardMarkup, Update
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.gate import Gate, LocalState, install
from bot.middlewares import UpdateGuard
from bot.transient import DatabaseUnavailable
from content.i18n import catalog
from storage.models import ProcessedUpdate
from tests.bot.outbox_world import make_tg_bot

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


async def test_an_alert_not_shown_goes_to_the_chat_even_of_a_message_too_old_to_read(
    emu, sessionmaker
) -> None:
    tg = make_tg_bot(emu)
    install(tg, Gate(LocalState()))
    try:
        # In a group, so the chat is not the presser's own: the text goes where the button was.
        u = emu.add_user("u", language_code="zh")
        group = emu.add_group("支部群", [u])
        keyboard = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="a", callback_data="a")]])
        sent = await tg.send_message(group.id, "pick", reply_markup=keyboard)
        press = await emu.press(u, emu.chat(group.id)[0], data="a")
        assert await tg.answer_callback_query(press["callback_query"]["id"])  # the handler's answer
        # Telegram gives a message it no longer lets the bot read as an InaccessibleMessage (date 0).
        old = {
            "chat": {"id": group.id, "type": "group", "title": "支部群"},
            "message_id": sent.message_id,
            "date": 0,
        }
        update = Update.model_validate(
            {**press, "callback_query": {**press["callback_query"], "message": old}}, context={"bot": tg}
        )
        assert isinstance(update.callback_query.message, InaccessibleMessage)

        await UpdateGuard(sessionmaker)._reply(update, {"bot": tg}, "error.internal", {})
        # The alert could not be shown (the press was answered): the text is in the chat instead.
        assert [m.text for m in emu.chat(group.id)] == ["pick", catalog("zh")["error.internal"]]
    finally:
        await tg.session.close()
