"""getMe and getUpdates: long polling, offset confirmation, limits, conflicts, redelivery."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.exceptions import TelegramConflictError
from aiogram.types import Message

from emulator import Emulator, SimBot, SimUser
from tests.emulator.conftest import TOKEN, close_bot, make_bot


async def test_get_me_names_the_bot_of_the_token(bot: Bot, emu: Emulator):
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, "emu123456_bot")


async def test_unknown_token_is_registered_unless_the_emulator_is_strict(http_emu_strict):
    emu, http = http_emu_strict
    async with http.post(f"{emu.base_url}/bot999:nope/getMe") as resp:
        assert resp.status == 401
        assert await resp.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    async with http.post(f"{emu.base_url}/botnot-a-token/getMe") as resp:
        assert resp.status == 404


@pytest.fixture
async def http_emu_strict(http):
    async with Emulator(auto_register_bots=False) as emu:
        yield emu, http


async def test_long_poll_returns_as_soon_as_an_update_arrives(
    bot: Bot, emu: Emulator, sim_bot: SimBot, user: SimUser
):
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await emu.wait_for(lambda: sim_bot.waiting_polls == 1)
    assert not poll.done()
    sent = await emu.send_text(user, "/start")
    updates = await asyncio.wait_for(poll, timeout=5)  # far below the 30 s poll
    assert [u.update_id for u in updates] == [sent["update_id"]]
    assert updates[0].message.text == "/start"


async def test_offset_confirms_and_drops_earlier_updates(bot: Bot, emu: Emulator, user: SimUser):
    ids = [(await emu.send_text(user, f"m{i}"))["update_id"] for i in range(3)]
    first = await bot.get_updates(timeout=0)
    again = await bot.get_updates(timeout=0)  # nothing confirmed yet: the same three
    assert [u.update_id for u in first] == [u.update_id for u in again] == ids
    assert [u.update_id for u in await bot.get_updates(offset=ids[1] + 1, timeout=0)] == ids[2:]
    assert await bot.get_updates(offset=ids[2] + 1, timeout=0) == []
    assert (await bot.get_webhook_info()).pending_update_count == 0


async def test_limit_and_negative_offset(bot: Bot, emu: Emulator, user: SimUser):
    ids = [(await emu.send_text(user, f"m{i}"))["update_id"] for i in range(5)]
    assert [u.update_id for u in await bot.get_updates(limit=2, timeout=0)] == ids[:2]
    assert [u.update_id for u in await bot.get_updates(offset=-1, timeout=0)] == ids[-1:]
    assert len(emu.pending_updates()) == 1  # "-1" forgot the others


async def test_empty_poll_waits_for_its_timeout_only(bot: Bot, emu: Emulator):
    assert await asyncio.wait_for(bot.get_updates(timeout=0), timeout=2) == []


async def test_a_second_poller_ends_the_first_with_409(bot: Bot, emu: Emulator, user: SimUser):
    other = make_bot(emu)
    try:
        first = asyncio.create_task(bot.get_updates(timeout=30))
        await emu.wait_for(lambda: emu.bot().waiting_polls == 1)
        second = asyncio.create_task(other.get_updates(timeout=30))
        with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
            await asyncio.wait_for(first, 5)
        await emu.send_text(user, "hi")
        assert len(await asyncio.wait_for(second, 5)) == 1
    finally:
        await close_bot(other)


async def test_allowed_updates_filter_what_is_queued(bot: Bot, emu: Emulator, user: SimUser):
    await bot.get_updates(timeout=0, allowed_updates=["callback_query"])
    await emu.send_text(user, "ignored")
    assert emu.pending_updates() == []
    await bot.get_updates(timeout=0, allowed_updates=[])  # empty list: back to the default
    await emu.send_text(user, "kept")
    assert len(emu.pending_updates()) == 1


async def test_redeliver_gives_the_same_update_id_again_after_confirmation(
    bot: Bot, emu: Emulator, user: SimUser
):
    sent = await emu.send_text(user, "/log 2 今天 清扫")
    [got] = await bot.get_updates(timeout=0)
    assert await bot.get_updates(offset=got.update_id + 1, timeout=0) == []
    emu.redeliver(sent)
    [dup] = await bot.get_updates(offset=got.update_id + 1, timeout=0)
    assert dup.update_id == got.update_id
    assert dup.message.message_id == got.message.message_id
    assert await bot.get_updates(offset=dup.update_id + 1, timeout=0) == []


async def test_stopping_the_emulator_ends_a_waiting_poll(user_less_emu):
    emu = user_less_emu
    emu.add_bot(TOKEN)
    b = make_bot(emu)
    try:
        poll = asyncio.create_task(b.get_updates(timeout=30))
        await emu.wait_for(lambda: emu.bot().waiting_polls == 1)
        await asyncio.wait_for(emu.stop(), timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(poll, 5)
        assert poll.done()
    finally:
        await close_bot(b)


@pytest.fixture
async def user_less_emu():
    emu = await Emulator().start()
    yield emu
    await emu.stop()


async def test_aiogram_dispatcher_polls_and_answers(bot: Bot, emu: Emulator, user: SimUser):
    dp = Dispatcher()

    @dp.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"你说：{message.text}")

    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, close_bot_session=False))
    try:
        await emu.send_text(user, "你好")
        reply = await emu.next_message(user, timeout=5)
        assert reply.text == "你说：你好"
        assert emu.violations == []
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(polling, 5)
