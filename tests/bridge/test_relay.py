"""The bridge between a Bot API client (aiogram, as the bot uses it) and DingTalk (the stand-in,
reached through the real `dingtalk-stream` SDK)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bridge.dingtalk import outgoing
from bridge.dingtalk.openapi import DingTalkApi
from bridge.dingtalk.relay import DingTalkBridge, stable_id
from bridge.dingtalk.standin import Card, DingTalkStandIn, Sent, button_texts
from storage import dingtalk
from storage.db import utcnow

TOKEN = "123456:BRIDGE"


def png(color: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, "PNG")
    return out.getvalue()


def new_bridge(standin: DingTalkStandIn, sessionmaker: async_sessionmaker[AsyncSession]) -> DingTalkBridge:
    api = DingTalkApi(standin.app_key, standin.app_secret, endpoint=standin.endpoint, oapi=standin.endpoint)
    return DingTalkBridge(api, sessionmaker, bot_token=TOKEN)


@pytest.fixture
async def bridge(
    standin: DingTalkStandIn, clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[DingTalkBridge]:
    async with new_bridge(standin, sessionmaker) as b:
        b._stream.RECONNECT_BASE_DELAY_SECONDS = 0.05  # type: ignore[union-attr]
        b._stream.RECONNECT_JITTER_SECONDS = 0.05  # type: ignore[union-attr]
        await standin.wait_for(lambda: standin.connected)
        yield b


@pytest.fixture
async def bot(bridge: DingTalkBridge) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(bridge.base_url))
    b = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    yield b
    await b.session.close()


async def poll(bot: Bot, offset: int = 0) -> list:
    return list(await bot.get_updates(offset=offset, timeout=1))


async def test_a_dingtalk_message_becomes_a_bot_api_update(
    standin: DingTalkStandIn, bridge: DingTalkBridge, bot: Bot
) -> None:
    me = await bot.get_me()
    assert me.id == 123456
    user = standin.add_user("张三")
    await standin.send_text(user, "/start ABC123")
    await standin.wait_for(lambda: not standin.pending())
    updates = await poll(bot)
    assert len(updates) == 1
    msg = updates[0].message
    assert msg.text == "/start ABC123"
    assert msg.entities[0].type == "bot_command"  # the front adds entities as Telegram does
    assert msg.from_user.id == stable_id(user.user_id) and msg.from_user.first_name == "张三"
    assert msg.chat.id == msg.from_user.id


async def test_html_goes_out_as_escaped_markdown(
    standin: DingTalkStandIn, bridge: DingTalkBridge, bot: Bot
) -> None:
    user = standin.add_user("李四")
    await standin.send_text(user, "hi")
    await standin.wait_for(lambda: not standin.pending())
    chat_id = stable_id(user.user_id)
    await bot.send_message(chat_id, "<b>通知</b>：明天 9:00 开会 *不是粗体*")
    sent = await standin.wait_for(lambda: standin.inbox(user))
    assert isinstance(sent[0], Sent) and sent[0].msg_key == "sampleMarkdown"
    assert sent[0].param["text"] == "**通知**：明天 9:00 开会 \\*不是粗体\\*"


async def test_a_keyboard_becomes_a_card_its_press_a_callback_query_and_the_edit_a_card_update(
    standin: DingTalkStandIn, bridge: DingTalkBridge, bot: Bot
) -> None:
    user = standin.add_user("王五")
    await standin.send_text(user, "hi")
    await standin.wait_for(lambda: not standin.pending())
    offset = (await poll(bot))[-1].update_id + 1
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="批准", callback_data="approve:17")]]
    )
    sent = await bot.send_message(stable_id(user.user_id), "申请 2 小时", reply_markup=keyboard)
    card = await standin.wait_for(lambda: next((i for i in standin.inbox(user) if isinstance(i, Card)), None))
    button_id = f"m{sent.message_id}b0"
    await standin.press(user, card, button_id)
    await standin.wait_for(lambda: not standin.pending())
    updates = await poll(bot, offset)
    assert updates[0].callback_query.data == "approve:17"
    assert updates[0].callback_query.message.message_id == sent.message_id
    await bot.answer_callback_query(updates[0].callback_query.id, text="已批准")
    await bot.edit_message_text("申请 2 小时：已批准", chat_id=sent.chat.id, message_id=sent.message_id)
    # The toast shows as the card's tips line; the edit keeps it.
    await standin.wait_for(lambda: card.data["markdown"] == "申请 2 小时：已批准" and card.data["tips"])
    assert card.data["tips"] == "已批准"


async def test_a_photo_goes_through_media_upload_and_a_sent_photo_comes_back_through_get_file(
    standin: DingTalkStandIn, bridge: DingTalkBridge, bot: Bot
) -> None:
    user = standin.add_user("赵六")
    photo, chart = png("red"), png("blue")
    await standin.send_picture(user, photo)
    await standin.wait_for(lambda: not standin.pending())
    update = (await poll(bot))[-1]
    file = await bot.get_file(update.message.photo[-1].file_id)
    got = await bot.download_file(file.file_path)
    assert got is not None and got.read() == photo
    await bot.send_photo(update.message.chat.id, BufferedInputFile(chart, "chart.png"), caption="统计")
    shown = await standin.wait_for(lambda: len(standin.inbox(user)) == 2 and standin.inbox(user))
    assert [s.msg_key for s in shown if isinstance(s, Sent)] == ["sampleImageMsg", "sampleMarkdown"]
    assert standin.media[shown[0].param["photoURL"]][2] == chart


async def test_the_same_text_twice_a_day_still_reaches_the_person(
    standin: DingTalkStandIn, bridge: DingTalkBridge, bot: Bot
) -> None:
    user = standin.add_user("钱七")
    await standin.send_text(user, "hi")
    await standin.wait_for(lambda: not standin.pending())
    for _ in range(2):
        await bot.send_message(stable_id(user.user_id), "请提交本月服务记录")
    shown = await standin.wait_for(
        lambda: len(standin.inbox(user, include_dropped=True)) == 2 and standin.inbox(user)
    )
    assert len(shown) == 2  # none silently dropped


async def test_a_stream_drop_loses_no_message_and_doubles_none(
    standin: DingTalkStandIn, bridge: DingTalkBridge, bot: Bot
) -> None:
    user = standin.add_user("孙八")
    await standin.drop_stream()
    await standin.send_text(user, "断线时发的")
    message_id = await standin.send_text(user, "第二条")
    await standin.wait_for(lambda: standin.connections_opened == 2 and not standin.pending())
    await standin.redeliver(message_id)  # DingTalk missed the ack and sends it again
    await standin.wait_for(lambda: not standin.pending())
    texts = [u.message.text for u in await poll(bot)]
    assert texts == ["断线时发的", "第二条"]


@asynccontextmanager
async def running(
    standin: DingTalkStandIn, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[DingTalkBridge, Bot]]:
    """One run of the bridge (a start, a stop) and a Bot API client on it."""
    async with new_bridge(standin, sessionmaker) as b:
        await standin.wait_for(lambda: standin.connected)
        session = AiohttpSession(api=TelegramAPIServer.from_base(b.base_url))
        client = Bot(TOKEN, session=session)
        try:
            yield b, client
        finally:
            await client.session.close()
    await standin.wait_for(lambda: not standin.connected)


async def test_a_restart_keeps_each_person_their_id_and_the_bot_can_write_to_them_at_once(
    standin: DingTalkStandIn, clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    zhang = standin.add_user("张三")
    # 老王 is in the store with an id that is not today's derivation (an earlier run's, say):
    # the store, not the formula, decides.
    wang = standin.add_user("老王")
    async with sessionmaker() as s:
        await dingtalk.remember(s, wang.user_id, "老王", "zh", utcnow(), lambda _d, _n: 4242)
        await s.commit()

    async with running(standin, sessionmaker) as (_b, client):
        await standin.send_text(zhang, "hi")
        [update] = await poll(client)
        first_id = update.message.from_user.id
        await poll(client, update.update_id + 1)

    zhang.nick = "张三丰"  # renamed in DingTalk meanwhile
    async with running(standin, sessionmaker) as (_b, client):
        # Neither has written since the start, and the bot reaches both (no "chat not found").
        await client.send_message(first_id, "通知一")
        await client.send_message(4242, "通知二")
        await standin.wait_for(lambda: standin.inbox(zhang) and standin.inbox(wang))
        await standin.send_text(zhang, "again")
        await standin.send_text(wang, "我也在")
        await standin.wait_for(lambda: not standin.pending())
        updates = await poll(client)
        assert [(u.message.from_user.id, u.message.from_user.first_name) for u in updates] == [
            (first_id, "张三丰"),
            (4242, "老王"),
        ]
    async with sessionmaker() as s:
        kept = {p.dingtalk_id: (p.user_id, p.name, p.language_code) for p in await dingtalk.people(s)}
    assert kept == {zhang.user_id: (first_id, "张三丰", "zh"), wang.user_id: (4242, "老王", "zh")}


async def test_updates_queued_when_the_bridge_stops_reach_the_bot_after_the_restart_once(
    standin: DingTalkStandIn, clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = standin.add_user("周九")
    async with running(standin, sessionmaker) as (b, client):
        await standin.send_text(user, "第一条")
        [first] = await poll(client)
        await poll(client, first.update_id + 1)  # the bot confirms it
        await b.front.wait_for(lambda: not b._unconfirmed)
        await standin.send_text(user, "第二条")
        await standin.send_text(user, "第三条")
        # DingTalk has the acks; the bot has not fetched these two when the bridge stops.
        await standin.wait_for(lambda: not standin.pending())
        assert len(standin.acks) == 3

    async with running(standin, sessionmaker) as (b, client):
        updates = await poll(client, first.update_id + 1)  # the bot's offset goes on
        assert [u.message.text for u in updates] == ["第二条", "第三条"]
        assert updates[0].update_id > first.update_id  # ids count on: the offset skips nothing
        await poll(client, updates[-1].update_id + 1)
        await b.front.wait_for(lambda: not b._unconfirmed)
        last = updates[-1].update_id

    async with running(standin, sessionmaker) as (_b, client):
        await standin.send_text(user, "第四条")
        updates = await poll(client, last + 1)
        assert [u.message.text for u in updates] == ["第四条"]  # nothing replayed twice
        assert updates[0].update_id == last + 1


async def test_an_alert_becomes_a_message_and_a_reply_keyboard_a_card_whose_press_types_the_text(
    standin: DingTalkStandIn, bridge: DingTalkBridge, bot: Bot
) -> None:
    user = standin.add_user("吴十")
    await standin.send_text(user, "hi")
    await standin.wait_for(lambda: not standin.pending())
    offset = (await poll(bot))[-1].update_id + 1
    chat_id = stable_id(user.user_id)
    keyboard = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="今天"), KeyboardButton(text="昨天")]])
    await bot.send_message(chat_id, "哪一天？", reply_markup=keyboard)
    card = await standin.wait_for(lambda: next((i for i in standin.inbox(user) if isinstance(i, Card)), None))
    assert button_texts(card) == ["今天", "昨天"]
    await standin.press_text(user, card, "昨天")
    await standin.wait_for(lambda: not standin.pending())
    [update] = await poll(bot, offset)
    assert update.message.text == "昨天" and update.message.from_user.id == chat_id

    inline = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="撤回", callback_data="x")]])
    sent = await bot.send_message(chat_id, "已登记", reply_markup=inline)
    second = await standin.wait_for(
        lambda: next((i for i in standin.inbox(user) if isinstance(i, Card) and i is not card), None)
    )
    await standin.press(user, second, f"m{sent.message_id}b0")
    await standin.wait_for(lambda: not standin.pending())
    [update] = await poll(bot, update.update_id + 1)
    await bot.answer_callback_query(update.callback_query.id, text="这条已审核，不能撤回", show_alert=True)
    alert = await standin.wait_for(lambda: [i for i in standin.inbox(user) if isinstance(i, Sent)])
    assert alert[-1].param["text"] == "这条已审核，不能撤回"
    assert second.data["tips"] == ""  # an alert is not a toast


async def test_the_command_menu_comes_as_a_card_once_per_change_and_its_buttons_type_the_command(
    standin: DingTalkStandIn, bridge: DingTalkBridge, bot: Bot
) -> None:
    user = standin.add_user("郑十一")
    await standin.send_text(user, "hi")
    await standin.wait_for(lambda: not standin.pending())
    offset = (await poll(bot))[-1].update_id + 1
    commands = [
        BotCommand(command="log", description="登记服务"),
        BotCommand(command="my", description="我的记录"),
    ]
    await bot.set_my_commands(commands, scope=BotCommandScopeAllPrivateChats())
    menu = await standin.wait_for(lambda: next((i for i in standin.inbox(user) if isinstance(i, Card)), None))
    assert button_texts(menu) == ["/log", "/my"]
    assert menu.data["markdown"] == "/log — 登记服务  \n/my — 我的记录"
    await bot.set_my_commands(commands, scope=BotCommandScopeAllPrivateChats())  # the same again
    await bot.set_my_commands(commands[:1], scope=BotCommandScopeChat(chat_id=stable_id(user.user_id)))
    await standin.wait_for(lambda: len([i for i in standin.inbox(user) if isinstance(i, Card)]) == 2)
    await standin.press_text(user, menu, "/my")
    await standin.wait_for(lambda: not standin.pending())
    [update] = await poll(bot, offset)
    assert update.message.text == "/my" and update.message.entities[0].type == "bot_command"
    cards = [i for i in standin.inbox(user) if isinstance(i, Card)]
    assert [button_texts(c) for c in cards] == [["/log", "/my"], ["/log"]]  # not sent twice


async def test_after_a_restart_an_old_card_still_presses_and_edits_and_no_message_id_is_reused(
    standin: DingTalkStandIn, clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = standin.add_user("冯十二")
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="✅ 已阅", callback_data="ack:7")]]
    )
    async with running(standin, sessionmaker) as (_b, client):
        await standin.send_text(user, "hi")
        [update] = await poll(client)
        chat_id = update.message.chat.id
        old = await client.send_message(chat_id, "周五开会", reply_markup=keyboard)
        card = await standin.wait_for(
            lambda: next((i for i in standin.inbox(user) if isinstance(i, Card)), None)
        )
        plain = await client.send_message(chat_id, "会议地点另行通知")  # a plain message; the bot kept its id
        await poll(client, update.update_id + 1)

    async with running(standin, sessionmaker) as (_b, client):
        await standin.press_text(user, card, "✅ 已阅")  # the 已阅 of a notice sent before the restart
        await standin.wait_for(lambda: not standin.pending())
        [press] = await poll(client, update.update_id + 1)
        assert press.callback_query.data == "ack:7"
        assert press.callback_query.message.message_id == old.message_id
        assert press.callback_query.message.text == "周五开会"
        await client.edit_message_text("周五开会（已阅）", chat_id=chat_id, message_id=old.message_id)
        await standin.wait_for(lambda: card.data["markdown"] == "周五开会（已阅）")
        new = await client.send_message(chat_id, "新的消息")
        assert new.message_id > plain.message_id > old.message_id  # numbered on above the earlier run's ids


async def test_what_the_bot_sent_just_before_a_stop_still_reaches_dingtalk(
    standin: DingTalkStandIn, clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = standin.add_user("陈十三")
    async with running(standin, sessionmaker) as (b, client):
        await standin.send_text(user, "hi")
        [update] = await poll(client)
        standin.gate = asyncio.Event()  # DingTalk is slow: the relay is behind the bot
        for n in range(3):  # the bot has its "ok" for each: the stop must not lose them
            await client.send_message(update.message.chat.id, f"第 {n + 1} 条")
        stopping = asyncio.create_task(b.stop())
        await standin.wait_for(lambda: ("POST", "/v1.0/robot/oToMessages/batchSend") in standin.calls)
        await b.front.wait_for(lambda: b.draining)  # the bot can no longer call; DingTalk answers now
        standin.gate.set()
        await stopping
    assert [s.param["text"] for s in standin.inbox(user) if isinstance(s, Sent)] == [
        f"第 {n + 1} 条" for n in range(3)
    ]


async def test_the_bridges_own_words_are_in_the_language_it_keeps_for_the_person(
    standin: DingTalkStandIn, clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    zh, en = standin.add_user("褚十三"), standin.add_user("Ann")
    async with sessionmaker() as s:  # kept before: Ann's language is English
        await dingtalk.remember(s, en.user_id, "Ann", "en", utcnow(), lambda d, n: stable_id(d))
        await s.commit()
    keyboard = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="OK", callback_data="ok")]])
    async with running(standin, sessionmaker) as (b, client):
        await standin.send_text(zh, "hi")
        await standin.wait_for(lambda: not standin.pending())
        for user in (zh, en):
            chat_id = stable_id(user.user_id)
            plain = await client.send_message(chat_id, "周五开会")
            await client.edit_message_text("周六开会", chat_id=chat_id, message_id=plain.message_id)
            card = await client.send_message(chat_id, "请确认", reply_markup=keyboard)
            await client.delete_message(chat_id, card.message_id)

        def shown(user) -> list[str]:
            return [
                i.param["text"] if isinstance(i, Sent) else i.data["markdown"] for i in standin.inbox(user)
            ]

        await standin.wait_for(lambda: len(shown(zh)) == len(shown(en)) == 3)
        await b.settled(5)
        assert shown(zh) == ["周五开会", "更正：周六开会", "（已撤回）"]
        assert shown(en) == ["周五开会", "Correction: 周六开会", "(withdrawn)"]


async def test_an_invite_card_of_an_earlier_run_still_types_the_code_for_whoever_presses_it(
    standin: DingTalkStandIn, clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    secretary, colleague = standin.add_user("卫十四"), standin.add_user("蒋十五")
    code = "Zx9_yW-8vUt7sRq6"
    async with running(standin, sessionmaker) as (b, client):
        for user in (secretary, colleague):
            await standin.send_text(user, "hi")
        await standin.wait_for(lambda: not standin.pending())
        first = (await poll(client))[-1].update_id
        await poll(client, first + 1)  # confirmed: not replayed after the restart
        link = f"https://t.me/{b.bot.username}?start={code}"
        await client.send_message(
            stable_id(secretary.user_id), f"<b>邀请</b>\n{link}\n请转发", parse_mode="HTML"
        )
        card = await standin.wait_for(
            lambda: next((i for i in standin.inbox(secretary) if isinstance(i, Card)), None)
        )
        await b.settled(5)
    assert "t.me" not in card.data["markdown"] and button_texts(card) == [f"发送 /start {code}"]
    standin.forward(secretary, card, colleague)

    async with running(standin, sessionmaker) as (_b, client):
        await standin.press_text(colleague, card, f"发送 /start {code}")
        await standin.wait_for(lambda: not standin.pending())
        [update] = await poll(client, first + 1)
    assert update.message.text == f"/start {code}"
    assert update.message.from_user.id == stable_id(colleague.user_id)  # the presser, not the card's owner


async def kill(b: DingTalkBridge) -> None:
    """The bridge process dies (not a stop): its tasks end where they are, nothing is drained."""
    # One at a time: a task's end wakes the others, and 3.11's wait_for can swallow a cancel
    # that meets a wake-up.
    for task in b._tasks:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await b.front.stop()
    await b.api.close()
    if b._outbox_engine is not None:
        await b._outbox_engine.dispose()


def texts(standin: DingTalkStandIn, user) -> list[str]:
    shown = standin.inbox(user, include_dropped=True)
    return [s.param["text"] for s in shown if isinstance(s, Sent) and s.msg_key == "sampleMarkdown"]


async def test_a_kill_after_the_bots_ok_still_delivers_after_the_restart_once_and_in_order(
    standin: DingTalkStandIn, clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = standin.add_user("褚十四")
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="✅ 已阅", callback_data="a")]]
    )
    b = await new_bridge(standin, sessionmaker).start()
    await standin.wait_for(lambda: standin.connected)
    client = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(b.base_url)))
    try:
        await standin.send_text(user, "hi")
        [update] = await poll(client)
        chat_id = update.message.chat.id
        standin.gate = asyncio.Event()  # DingTalk is slow: the relay is behind the bot
        await client.send_message(chat_id, "第 1 条")
        await client.send_message(chat_id, "第 2 条", reply_markup=keyboard)
        await client.send_photo(chat_id, BufferedInputFile(png("green"), "p.png"), caption="第 3 条")
        # The bot has its three "ok"s: each change is kept by now.
        assert b.outbox is not None
        async with b.outbox() as s:
            assert [
                (o.kind, o.message["text"] or o.message["caption"]) for o in await dingtalk.outgoing(s)
            ] == [
                ("sent", "第 1 条"),
                ("sent", "第 2 条"),
                ("sent", "第 3 条"),
            ]
        await standin.wait_for(lambda: ("POST", "/v1.0/robot/oToMessages/batchSend") in standin.calls)
        await kill(b)  # while DingTalk still holds the first message: it never takes it
    finally:
        await client.session.close()
    await standin.wait_for(lambda: not standin.connected)
    assert standin.inbox(user, include_dropped=True) == []  # the kill did lose them, for now
    standin.gate = None

    async with running(standin, sessionmaker) as (b, _client):
        await b.settled(5)
        shown = standin.inbox(user, include_dropped=True)
        assert [
            (type(i).__name__, i.msg_key if isinstance(i, Sent) else i.data["markdown"]) for i in shown
        ] == [
            ("Sent", "sampleMarkdown"),
            ("Card", "第 2 条"),
            ("Sent", "sampleImageMsg"),
            ("Sent", "sampleMarkdown"),
        ]
        assert texts(standin, user) == ["第 1 条", "第 3 条"]
        assert b.outbox is not None
        async with b.outbox() as s:
            assert await dingtalk.outgoing(s) == []  # passed on: not sent a third time


async def test_a_card_sent_again_after_a_kill_is_not_doubled(
    standin: DingTalkStandIn, clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = standin.add_user("卫十五")
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="✅ 已阅", callback_data="a")]]
    )
    async with running(standin, sessionmaker) as (b, client):
        await standin.send_text(user, "hi")
        [update] = await poll(client)
        await client.send_message(update.message.chat.id, "周五开会", reply_markup=keyboard)
        await b.settled(5)
        [card] = [i for i in standin.inbox(user) if isinstance(i, Card)]
        assert b.outbox is not None
        # The row of the card as it was before DingTalk accepted it: a kill between DingTalk's
        # acceptance and the row's removal leaves it so.
        message = {"message_id": 2, "text": "周五开会", "entities": [], "caption": None}
        message |= {"caption_entities": [], "reply_markup": keyboard.model_dump(exclude_none=True)}
        message |= {"date": 0, "card_id": card.out_track_id}
        async with b.outbox() as s:
            await dingtalk.keep_outgoing(s, [(user.user_id, "sent", message, None)], utcnow())
            await s.commit()

    async with running(standin, sessionmaker) as (b, _client):
        await b.settled(5)
        assert b.outbox is not None
        async with b.outbox() as s:
            assert await dingtalk.outgoing(s) == []  # the kept change was passed on again
        assert [i for i in standin.inbox(user) if isinstance(i, Card)] == [card]  # one card, not two
        assert card.updates == 1 and card.data["markdown"] == "周五开会"


async def test_a_plain_message_of_an_earlier_run_can_be_edited_and_deleted_after_the_restart(
    standin: DingTalkStandIn, clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = standin.add_user("蒋十六")
    async with running(standin, sessionmaker) as (b, client):
        await standin.send_text(user, "hi")
        [update] = await poll(client)
        chat_id = update.message.chat.id
        plain = await client.send_message(chat_id, "会议地点另行通知")
        other = await client.send_message(chat_id, "请带党员证")
        await b.settled(5)

    async with running(standin, sessionmaker) as (b, client):
        await client.edit_message_text("会议地点：三楼", chat_id=chat_id, message_id=plain.message_id)
        await client.delete_message(chat_id, other.message_id)
        await b.settled(5)
        assert texts(standin, user) == ["会议地点另行通知", "请带党员证", "更正：会议地点：三楼"]
        recalled = [s.param["text"] for s in standin.inbox(user) if isinstance(s, Sent) and s.recalled]
        assert recalled == ["请带党员证"]
        assert b.relay_errors == []

    async with running(standin, sessionmaker) as (b, client):  # the edit is kept too
        await client.edit_message_text("会议地点：四楼", chat_id=chat_id, message_id=plain.message_id)
        await b.settled(5)
        assert texts(standin, user)[-1] == "更正：会议地点：四楼"


async def test_a_press_on_a_command_menu_card_of_an_earlier_run_types_the_command(
    standin: DingTalkStandIn, clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = standin.add_user("沈十七")
    commands = [
        BotCommand(command="log", description="登记服务"),
        BotCommand(command="my", description="我的记录"),
    ]
    async with running(standin, sessionmaker) as (_b, client):
        await standin.send_text(user, "hi")
        [update] = await poll(client)
        await client.set_my_commands(commands, scope=BotCommandScopeAllPrivateChats())
        menu = await standin.wait_for(
            lambda: next((i for i in standin.inbox(user) if isinstance(i, Card)), None)
        )
        await poll(client, update.update_id + 1)

    async with running(standin, sessionmaker) as (_b, client):
        await standin.press_text(user, menu, "/my")
        await standin.wait_for(lambda: not standin.pending())
        [press] = await poll(client, update.update_id + 1)
        assert press.message.text == "/my" and press.message.entities[0].type == "bot_command"


async def test_a_message_dingtalk_throttled_is_sent_again_later_and_the_next_waits_behind_it(
    standin: DingTalkStandIn, bridge: DingTalkBridge, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outgoing, "RETRY_FIRST", 0.05)
    user, other = standin.add_user("韩十八"), standin.add_user("杨十九")
    for who in (user, other):
        await standin.send_text(who, "hi")
    await standin.wait_for(lambda: not standin.pending())
    standin.throttle[user.user_id] = 2  # DingTalk throttles the next two messages to them
    await bot.send_message(stable_id(user.user_id), "第 1 条")
    await bot.send_message(stable_id(user.user_id), "第 2 条")
    await bot.send_message(stable_id(other.user_id), "别人的")
    await standin.wait_for(lambda: len(texts(standin, user)) == 2)
    assert standin.throttled == 2  # the throttle did happen
    assert texts(standin, user) == ["第 1 条", "第 2 条"]  # once each, in order
    assert texts(standin, other) == ["别人的"]  # the other person did not wait
    assert sum("flowControlled" in e for e in bridge.relay_errors) == 2
    bridge.relay_errors.clear()
