"""The Emulator object itself: restarts, several bots on one emulator, misuse by tests."""

from __future__ import annotations

import pytest
from aiogram.exceptions import TelegramForbiddenError

from emulator import Emulator, SimError
from tests.emulator.conftest import close_bot, make_bot

TOKEN_A = "111:aaa"
TOKEN_B = "222:bbb"


async def test_restart_serves_the_same_url_and_keeps_state():
    emu = await Emulator().start()
    try:
        url = emu.base_url
        emu.add_bot(TOKEN_A)
        user = emu.add_user()
        await emu.send_text(user, "before")
        await emu.stop()
        await emu.start()
        assert emu.base_url == url
        bot = make_bot(emu, TOKEN_A)
        try:
            assert [u.message.text for u in await bot.get_updates(timeout=0)] == ["before"]
        finally:
            await close_bot(bot)
    finally:
        await emu.stop()


async def test_several_bots_share_one_emulator(emu: Emulator):
    a, b = emu.add_bot(TOKEN_A), emu.add_bot(TOKEN_B)
    user = emu.add_user()
    with pytest.raises(SimError, match="say which one"):
        await emu.send_text(user, "hi")
    await emu.send_text(user, "to a", bot=a)
    await emu.send_text(user, "to b", bot=TOKEN_B)
    bot_a, bot_b = make_bot(emu, TOKEN_A), make_bot(emu, TOKEN_B)
    try:
        assert [u.message.text for u in await bot_a.get_updates(timeout=0)] == ["to a"]
        assert [u.message.text for u in await bot_b.get_updates(timeout=0)] == ["to b"]
        await bot_a.send_message(user.id, "from a")
        assert [m.text for m in emu.chat(user, bot=a)] == ["from a"]
        assert emu.chat(user, bot=b.id) == []
        emu.block(user, bot=b)
        await bot_a.send_message(user.id, "a still works")
        with pytest.raises(TelegramForbiddenError):
            await bot_b.send_message(user.id, "blocked")
        emu.block(user)  # no bot named: every bot
        with pytest.raises(TelegramForbiddenError):
            await bot_a.send_message(user.id, "blocked")
    finally:
        await close_bot(bot_a)
        await close_bot(bot_b)


async def test_a_registered_bot_refuses_another_secret(emu: Emulator, http):
    emu.add_bot(TOKEN_A)
    async with http.post(f"{emu.base_url}/bot111:other/getMe") as resp:
        assert resp.status == 401
    with pytest.raises(SimError):
        emu.add_bot("111:other")


def test_misuse_is_refused(emu: Emulator):
    emu.add_bot(TOKEN_A)
    user = emu.add_user(id=100001)
    with pytest.raises(SimError):
        emu.add_user(id=100001)
    with pytest.raises(SimError):
        emu.add_bot("not a token")
    with pytest.raises(SimError):
        emu.add_group("g", [user], id=5)
    with pytest.raises(SimError):
        emu.bot(999)


async def test_sending_in_a_group_the_person_is_not_in_is_refused(emu: Emulator):
    emu.add_bot(TOKEN_A)
    a, b = emu.add_user("a"), emu.add_user("b")
    group = emu.add_group("g", [a])
    with pytest.raises(SimError, match="not a member"):
        await emu.send_text(b, "hi", chat=group)


async def test_a_person_cannot_press_a_button_in_someone_elses_chat(emu: Emulator):
    emu.add_bot(TOKEN_A)
    a, b = emu.add_user("a"), emu.add_user("b")
    bot = make_bot(emu, TOKEN_A)
    try:
        sent = await bot.send_message(
            a.id, "x", reply_markup={"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
        )
        with pytest.raises(SimError):
            await emu.press(b, emu.chat(a)[0], text="A")
        with pytest.raises(SimError):
            await emu.press(b, sent.message_id, text="A")
    finally:
        await close_bot(bot)
