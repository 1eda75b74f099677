"""What bots send and people see: messages with keyboards, button presses, edits, deletes,
photos and documents, chat actions, command menus, blocked people, groups."""

from __future__ import annotations

import asyncio
import io

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyParameters,
)

from emulator import Emulator, SimError, SimUser
from emulator.methods import CALLBACK_ANSWER_SECONDS
from tests.emulator.clock import FakeClock
from tests.emulator.conftest import GIF, PNG, TOKEN, close_bot, make_bot


def keyboard(*labels: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=t, callback_data=f"pick:{i}") for i, t in enumerate(labels)]
        ]
    )


async def test_round_trip_with_inline_keyboard_and_a_press(bot: Bot, emu: Emulator, user: SimUser):
    sent = await bot.send_message(
        user.id, "选一个：", reply_markup=keyboard("党员志愿服务行动", "党员公益日")
    )
    [shown] = emu.chat(user)
    assert (shown.message_id, shown.text) == (sent.message_id, "选一个：")
    assert shown.button_texts == ["党员志愿服务行动", "党员公益日"]

    update = await emu.press(user, shown, text="党员公益日")
    [got] = await bot.get_updates(timeout=0)
    assert got.update_id == update["update_id"]
    query = got.callback_query
    assert (query.data, query.from_user.id, query.message.message_id) == ("pick:1", user.id, sent.message_id)

    await bot.answer_callback_query(query.id, text="已选")
    answer = await emu.wait_callback_answer(update, timeout=2)
    assert (answer.text, answer.data, answer.user_id) == ("已选", "pick:1", user.id)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)
    assert emu.violations == []


async def test_pressing_a_button_that_is_not_there_is_refused(bot: Bot, emu: Emulator, user: SimUser):
    sent = await bot.send_message(user.id, "x", reply_markup=keyboard("A"))
    with pytest.raises(SimError, match="has no button"):
        await emu.press(user, sent.message_id, text="B")
    await bot.edit_message_reply_markup(chat_id=user.id, message_id=sent.message_id, reply_markup=None)
    with pytest.raises(SimError, match="has no button"):
        await emu.press(user, sent.message_id, text="A")  # a stale button after the edit


async def test_reply_keyboard_button_sends_its_text(bot: Bot, emu: Emulator, user: SimUser):
    markup = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="今天")]], resize_keyboard=True)
    sent = await bot.send_message(user.id, "哪天？", reply_markup=markup)
    update = await emu.press(user, sent.message_id, text="今天")
    assert update["message"]["text"] == "今天"
    assert "reply_markup" not in (await bot.get_updates(timeout=0))[0].message.model_dump(exclude_none=True)


async def test_message_ids_increase_per_chat_and_count_both_sides(bot: Bot, emu: Emulator, user: SimUser):
    other = emu.add_user("李四")
    a1 = await bot.send_message(user.id, "1")
    await emu.send_text(user, "hi")
    a2 = await bot.send_message(user.id, "2")
    b1 = await bot.send_message(other.id, "1")
    assert (a1.message_id, a2.message_id, b1.message_id) == (1, 3, 1)


async def test_edit_text_keeps_history_and_refuses_identical_content(bot: Bot, emu: Emulator, user: SimUser):
    sent = await bot.send_message(user.id, "待审核", reply_markup=keyboard("批准"))
    edited = await bot.edit_message_text(
        "<b>已批准</b>", chat_id=user.id, message_id=sent.message_id, parse_mode="HTML"
    )
    assert edited.text == "已批准" and edited.edit_date is not None
    [msg] = emu.chat(user)
    assert (msg.text, msg.buttons, msg.entities[0]["type"]) == ("已批准", [], "bold")
    assert [v.text for v in msg.history] == ["待审核"]
    assert msg.history[0].reply_markup["inline_keyboard"][0][0]["text"] == "批准"

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "<b>已批准</b>", chat_id=user.id, message_id=sent.message_id, parse_mode="HTML"
        )
    assert [e.description for e in emu.errors][-1].startswith("Bad Request: message is not modified")
    assert emu.violations == []  # an ordinary Telegram error, not a violation


async def test_edit_of_a_missing_message_is_refused_and_recorded(bot: Bot, emu: Emulator, user: SimUser):
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=user.id, message_id=99)
    assert [v.method for v in emu.violations] == ["editMessageText"]


async def test_next_message_and_next_change_follow_the_chat(bot: Bot, emu: Emulator, user: SimUser):
    sent = await bot.send_message(user.id, "one")
    assert (await emu.next_message(user, timeout=1)).text == "one"
    await bot.edit_message_text("one!", chat_id=user.id, message_id=sent.message_id)
    await bot.delete_message(user.id, sent.message_id)
    changes = [(await emu.next_change(user, timeout=1))[0] for _ in range(3)]
    assert changes == ["sent", "edited", "deleted"]
    assert emu.chat(user) == [] and len(emu.chat(user, include_deleted=True)) == 1
    with pytest.raises(TimeoutError, match="no new message"):
        await emu.next_message(user, timeout=0.05)


async def reader_waiting(emu: Emulator, user: SimUser) -> None:
    """Returns once a reader of this chat waits on the chat's own signal (the reader's task
    registers at its first step, so a few passes of the loop are enough)."""
    dialog = emu.dialog(emu.bot().id, user.id)
    for _ in range(100):
        if dialog.changed._waiters:
            return
        await asyncio.sleep(0)  # one pass of the loop, not a wait for time
    raise AssertionError("the reader does not wait on its chat's signal")


async def test_a_reader_waits_on_its_own_chat_not_on_every_change(bot: Bot, emu: Emulator, user: SimUser):
    # Regression: every reader waited on the engine-wide signal, so each change anywhere woke all
    # of them; with 300 members waiting in bench/throughput.py the emulator's process spent a core
    # on wake-ups, more per update the slower the bot, and took that CPU from the bot measured.
    other = emu.add_user("李四", language_code="zh")
    waiting = asyncio.create_task(emu.next_change(user, timeout=2))
    await reader_waiting(emu, user)
    assert not emu.changed._waiters  # the reader is not woken by other chats' changes
    await bot.send_message(other.id, "not yours")
    assert not waiting.done()
    sent = await bot.send_message(user.id, "yours")
    assert (await waiting)[1].message_id == sent.message_id
    # An edit and a delete wake a reader of changes as a send does.
    for change in (
        lambda: bot.edit_message_text("yours!", chat_id=user.id, message_id=sent.message_id),
        lambda: bot.delete_message(user.id, sent.message_id),
    ):
        waiting = asyncio.create_task(emu.next_change(user, timeout=2))
        await reader_waiting(emu, user)
        await change()
        assert (await waiting)[1].message_id == sent.message_id


async def test_delete_twice_is_an_ordinary_error(bot: Bot, emu: Emulator, user: SimUser):
    sent = await bot.send_message(user.id, "x")
    assert await bot.delete_message(user.id, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(user.id, sent.message_id)
    assert emu.violations == []


async def test_reply_parameters(bot: Bot, emu: Emulator, user: SimUser):
    update = await emu.send_text(user, "问题")
    asked = update["message"]["message_id"]
    reply = await bot.send_message(user.id, "回答", reply_parameters=ReplyParameters(message_id=asked))
    assert reply.reply_to_message.text == "问题"
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(user.id, "x", reply_parameters=ReplyParameters(message_id=999))


async def test_photo_upload_then_get_file_and_download_the_same_bytes(bot: Bot, emu: Emulator, user: SimUser):
    sent = await bot.send_photo(
        user.id, BufferedInputFile(PNG, "qr.png"), caption="<i>二维码</i>", parse_mode="HTML"
    )
    assert (sent.photo[-1].width, sent.photo[-1].height, sent.caption) == (1, 1, "二维码")
    file = await bot.get_file(sent.photo[-1].file_id)
    buf = io.BytesIO()
    await bot.download_file(file.file_path, buf)
    assert buf.getvalue() == PNG == emu.chat(user)[0].photo_bytes

    again = await bot.send_photo(user.id, sent.photo[-1].file_id)  # resend by file_id
    assert again.photo[-1].file_id == sent.photo[-1].file_id


async def test_a_person_sends_a_photo_the_bot_downloads(bot: Bot, emu: Emulator, user: SimUser):
    await emu.send_photo(user, GIF, caption="活动照片")
    [update] = await bot.get_updates(timeout=0)
    assert update.message.caption == "活动照片"
    file = await bot.get_file(update.message.photo[-1].file_id)
    buf = io.BytesIO()
    await bot.download_file(file.file_path, buf)
    assert buf.getvalue() == GIF


async def test_document_upload_and_resend_by_file_id(bot: Bot, emu: Emulator, user: SimUser):
    data = "姓名,时长\n张三,2\n".encode()
    sent = await bot.send_document(user.id, BufferedInputFile(data, "报表.csv"))
    assert (sent.document.file_name, sent.document.file_size) == ("报表.csv", len(data))
    other = emu.add_user("李四")
    await bot.send_document(other.id, sent.document.file_id)
    assert emu.chat(other)[0].document_bytes == data


async def test_a_photo_that_is_not_an_image_is_a_violation(bot: Bot, emu: Emulator, user: SimUser):
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(user.id, BufferedInputFile(b"not an image", "x.png"))
    assert emu.violations[-1].method == "sendPhoto"


async def test_unknown_file_id_is_a_violation(bot: Bot, emu: Emulator, user: SimUser):
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_document(user.id, "BQACnotarealid")
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("nope")
    assert [v.method for v in emu.violations] == ["sendDocument", "getFile"]


async def test_file_download_of_an_unknown_path_is_404(bot: Bot, emu: Emulator, http):
    async with http.get(f"{emu.base_url}/file/bot{bot.token}/photos/none.png") as resp:
        assert resp.status == 404


async def test_chat_actions_are_recorded(bot: Bot, emu: Emulator, user: SimUser):
    assert await bot.send_chat_action(user.id, "typing")
    assert emu.actions(user) == ["typing"]


async def test_commands_per_scope_and_language_and_the_menu_a_person_sees(
    bot: Bot, emu: Emulator, user: SimUser
):
    en_user = emu.add_user("Ann", language_code="en")
    member = [BotCommand(command="log", description="记录服务")]
    await bot.set_my_commands(member, scope=BotCommandScopeAllPrivateChats(), language_code="zh")
    await bot.set_my_commands([BotCommand(command="log", description="Log service")])
    secretary = [*member, BotCommand(command="pending", description="待审核")]
    await bot.set_my_commands(secretary, scope=BotCommandScopeChat(chat_id=user.id))

    got = await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats(), language_code="zh")
    assert [c.command for c in got] == ["log"]
    assert await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats()) == []  # exact scope only
    assert [c["command"] for c in emu.menu(user)] == ["log", "pending"]
    assert [c["description"] for c in emu.menu(en_user)] == ["Log service"]

    await bot.delete_my_commands(scope=BotCommandScopeChat(chat_id=user.id))
    assert [c["description"] for c in emu.menu(user)] == ["记录服务"]
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.set_my_commands(member, scope=BotCommandScopeChat(chat_id=42))


async def test_blocked_person_gives_403_and_the_bot_hears_about_it(bot: Bot, emu: Emulator, user: SimUser):
    emu.block(user)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(user.id, "hi")
    [update] = await bot.get_updates(timeout=0)
    assert update.my_chat_member.new_chat_member.status == "kicked"
    emu.unblock(user)
    assert (await bot.send_message(user.id, "hi again")).text == "hi again"
    assert [e.code for e in emu.errors] == [403]


async def test_person_who_never_started_the_bot_cannot_be_messaged_first(bot: Bot, emu: Emulator):
    shy = emu.add_user("王五", started=False)
    with pytest.raises(TelegramForbiddenError, match="can't initiate conversation"):
        await bot.send_message(shy.id, "hi")
    await emu.send_text(shy, "/start")
    assert (await bot.send_message(shy.id, "欢迎")).text == "欢迎"


async def test_unknown_chat_is_an_ordinary_error(bot: Bot, emu: Emulator):
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(42, "hi")
    assert emu.violations == [] and emu.errors[-1].description == "Bad Request: chat not found"


async def test_group_chat_messages(bot: Bot, emu: Emulator, user: SimUser):
    other = emu.add_user("李四")
    group = emu.add_group("第一支部", [user, other])
    update = await emu.send_text(other, "/report", chat=group)
    assert update["message"]["chat"] == {"id": group.id, "type": "group", "title": "第一支部"}
    await bot.send_message(group.id, "收到")
    assert [m.text for m in emu.chat(group)] == ["收到"]
    assert emu.stats.per_chat()[group.id] == 1


async def test_counters_per_bot_and_chat(bot: Bot, emu: Emulator, user: SimUser):
    for i in range(3):
        await bot.send_message(user.id, str(i))
    assert emu.stats.sent(bot.id) == 3 and emu.stats.per_chat(bot.id) == {user.id: 3}
    times = [s.at for s in emu.stats.sends]
    assert times == sorted(times)


async def test_a_callback_answer_later_than_telegram_allows_is_refused() -> None:
    """Telegram takes an answer for about 15 s after the press (CALLBACK_ANSWER_SECONDS)."""
    clock = FakeClock()
    async with Emulator(clock=clock) as emu:
        emu.add_bot(TOKEN)
        bot = make_bot(emu)
        try:
            person = emu.add_user("张三")
            sent = await bot.send_message(person.id, "选一个：", reply_markup=keyboard("A", "B"))
            early = await emu.press(person, sent.message_id, text="A")
            late = await emu.press(person, sent.message_id, text="B")
            clock.advance(CALLBACK_ANSWER_SECONDS - 1)
            assert await bot.answer_callback_query(early["callback_query"]["id"])
            clock.advance(2)
            with pytest.raises(TelegramBadRequest, match="query is too old"):
                await bot.answer_callback_query(late["callback_query"]["id"])
            assert emu.violations == []  # an ordinary error answer, not a spec violation
        finally:
            await close_bot(bot)
