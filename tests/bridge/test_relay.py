"""The bridge between a Bot API client (aiogram, as the bot uses it) and DingTalk (the stand-in,
reached through the real `dingtalk-stream` SDK)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bridge.dingtalk.openapi import DingTalkApi
from bridge.dingtalk.relay import DingTalkBridge, stable_id
from bridge.dingtalk.standin import Card, DingTalkStandIn, Sent

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
    await standin.wait_for(lambda: card.updates == 1)
    assert card.data["markdown"] == "申请 2 小时：已批准"


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
