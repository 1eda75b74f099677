"""BotSession sends the fields aiogram's form would carry, the same strings, as one JSON object."""

from __future__ import annotations

import types
import typing
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.enums import ParseMode
from aiogram.exceptions import ClientDecodeError, TelegramBadRequest
from aiogram.methods import (
    AnswerCallbackQuery,
    CreateChatInviteLink,
    DeleteMessage,
    EditMessageReplyMarkup,
    EditMessageText,
    SendDocument,
    SendMessage,
    SetMyCommands,
)
from aiogram.methods.base import TelegramMethod
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    CallbackGame,
    CopyTextButton,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LoginUrl,
    ReplyParameters,
    SwitchInlineQueryChosenChat,
    TelegramObject,
    WebAppInfo,
)
from aiohttp import FormData
from pydantic import BaseModel

from bot.app import make_bot
from bot.session import BotSession, _dumps
from config.settings import Settings

TOKEN = "123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
DEFAULTS = DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True)

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[
        [InlineKeyboardButton(text="党员志愿服务行动", callback_data="lq:77:volunteer")],
        [InlineKeyboardButton(text='a "quoted" <b>', url="https://example.org/?a=1&b=ü")],
        [
            InlineKeyboardButton(text="app", web_app=WebAppInfo(url="https://example.org/app")),
            InlineKeyboardButton(
                text="login", login_url=LoginUrl(url="https://example.org/l", request_write_access=True)
            ),
        ],
        [
            InlineKeyboardButton(
                text="inline", switch_inline_query_chosen_chat=SwitchInlineQueryChosenChat(query="q")
            )
        ],
        [InlineKeyboardButton(text="copy", copy_text=CopyTextButton(text="复制"))],
        [
            InlineKeyboardButton(text="game", callback_game=CallbackGame()),
            InlineKeyboardButton(text="", pay=False),
        ],
    ]
)

METHODS: list[TelegramMethod[Any]] = [
    SendMessage(chat_id=5, text="你好 <b>x</b>", reply_markup=KEYBOARD),
    SendMessage(chat_id=-100123, text="no buttons", disable_notification=True, parse_mode=None),
    SendMessage(
        chat_id=5,
        text="t",
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[]),
        reply_parameters=ReplyParameters(message_id=3),
    ),
    EditMessageText(chat_id=5, message_id=9, text="改了", reply_markup=KEYBOARD),
    EditMessageReplyMarkup(chat_id=5, message_id=9, reply_markup=None),
    AnswerCallbackQuery(callback_query_id="abc", text="已过期", show_alert=True),
    AnswerCallbackQuery(callback_query_id="abc", text=""),  # an empty field is left out
    DeleteMessage(chat_id=5, message_id=9),
    SetMyCommands(
        commands=[BotCommand(command="log", description="记录")], scope=BotCommandScopeChat(chat_id=5)
    ),
    # A date (aiogram's serializer truncates where `prepare_value` rounds) and a field the
    # method does not declare (kept as an extra, as Telegram's newer parameters would be).
    CreateChatInviteLink(chat_id=5, expire_date=datetime(2026, 12, 7, 8, 0, 0, 600_000, tzinfo=UTC)),
    SendMessage(chat_id=5, text="x", reply_to_message_id=3, some_newer_parameter="v"),  # type: ignore[call-arg]
]


def _form_fields(form: FormData) -> dict[str, Any]:
    return {f[0]["name"]: f[2] for f in form._fields}


@pytest.mark.parametrize("method", METHODS, ids=lambda m: type(m).__name__)
def test_the_json_body_carries_the_form_fields_of_aiogram(method: TelegramMethod[Any]) -> None:
    ours = BotSession()
    theirs = AiohttpSession(json_dumps=_dumps)
    bot = Bot(TOKEN, session=ours, default=DEFAULTS)
    body = ours.build_form_data(bot, method)
    assert body.content_type == "application/json"
    expected = _form_fields(theirs.build_form_data(bot, method))
    assert all(isinstance(v, str) for v in expected.values())  # what a form holds: text
    assert orjson.loads(body._value) == expected


def test_answers_and_edits_are_read_without_dumping_the_method() -> None:
    # The fields of every update's answer are plain: read off the method, not dumped first.
    session = BotSession()
    bot = Bot(TOKEN, session=session, default=DEFAULTS)
    plain = [m for m in METHODS if session._plain_fields(bot, m) is not None]
    assert {type(m).__name__ for m in plain} >= {
        "SendMessage",
        "EditMessageText",
        "EditMessageReplyMarkup",
        "AnswerCallbackQuery",
        "DeleteMessage",
    }
    # A model, a list or a date inside: the dumping path, which the test above compares too.
    assert session._plain_fields(bot, METHODS[2]) is None  # reply_parameters
    assert session._plain_fields(bot, METHODS[-3]) is None  # commands
    assert session._plain_fields(bot, METHODS[-2]) is None  # expire_date


def test_a_call_with_a_file_goes_as_aiogram_sends_it() -> None:
    ours = BotSession()
    bot = Bot(TOKEN, session=ours, default=DEFAULTS)
    method = SendDocument(
        chat_id=5, document=BufferedInputFile(b"x" * 10, "a.xlsx"), caption="表", reply_markup=KEYBOARD
    )
    form = ours.build_form_data(bot, method)
    assert isinstance(form, FormData)
    fields = _form_fields(form)
    assert fields["caption"] == "表" and fields["reply_markup"] == KEYBOARD.model_dump_json(exclude_none=True)
    assert fields["document"].startswith("attach://") and fields["document"][9:] in fields  # the file's part


def _leaf_types(model: type[BaseModel], seen: set[type]) -> set[Any]:
    """Every type a model's fields can hold, models opened."""
    out: set[Any] = set()
    seen.add(model)
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            t = stack.pop()
            args = typing.get_args(t)
            if args:
                stack.extend(args)
                continue
            if isinstance(t, type) and issubclass(t, BaseModel):
                if t not in seen:
                    out |= _leaf_types(t, seen)
            elif t is not list:
                out.add(t)
    return out


def test_a_keyboard_holds_nothing_aiogram_would_write_its_own_way() -> None:
    # aiogram's prepare_value turns dates, enums, files and bot defaults into something else than
    # their JSON; pydantic would not. A keyboard has none of them.
    assert _leaf_types(InlineKeyboardMarkup, set()) <= {str, int, bool, float, type(None), types.NoneType}
    assert issubclass(InlineKeyboardMarkup, TelegramObject)


def test_the_bot_uses_it() -> None:
    bot = make_bot(Settings(bot_token=TOKEN, telegram_api_url="http://127.0.0.1:1"), gate=False)
    assert isinstance(bot.session, BotSession)


def _answer(markup: dict[str, Any] | None, *, ok: bool = True) -> str:
    result: dict[str, Any] = {
        "message_id": 9,
        "date": 1_700_000_000,
        "chat": {"id": 5, "type": "private", "first_name": "党员"},
        "from": {"id": 123456, "is_bot": True, "first_name": "b"},
        "text": "你好 x",
    }
    if markup is not None:
        result["reply_markup"] = markup
    if not ok:
        return orjson.dumps({"ok": False, "error_code": 400, "description": "Bad Request: no"}).decode()
    return orjson.dumps({"ok": True, "result": result}).decode()


@pytest.mark.parametrize("method", [METHODS[0], METHODS[3]], ids=lambda m: type(m).__name__)
def test_an_answer_echoing_the_sent_keyboard_holds_the_keyboard_sent(method: TelegramMethod[Any]) -> None:
    ours, theirs = BotSession(), AiohttpSession(json_loads=orjson.loads)
    bot = Bot(TOKEN, session=ours, default=DEFAULTS)
    echo = _answer(orjson.loads(KEYBOARD.model_dump_json(exclude_none=True)))  # as Telegram sends it
    message = ours.check_response(bot, method, 200, echo).result
    assert message.reply_markup is KEYBOARD  # not read again from the echo
    # The same fields; only the bot the read one is bound to differs (a keyboard has no method
    # that would use it).
    assert message.model_dump() == theirs.check_response(bot, method, 200, echo).result.model_dump()


def test_an_answer_whose_keyboard_differs_from_the_one_sent_is_read_as_telegram_sent_it() -> None:
    ours = BotSession()
    bot = Bot(TOKEN, session=ours, default=DEFAULTS)
    echoed = orjson.loads(KEYBOARD.model_dump_json(exclude_none=True))
    echoed["inline_keyboard"][0][0]["text"] = "别的"
    message = ours.check_response(bot, METHODS[0], 200, _answer(echoed)).result
    assert message.reply_markup is not KEYBOARD
    assert message.reply_markup.inline_keyboard[0][0].text == "别的"
    # No keyboard in the answer: none in the message (what Telegram said, not what was sent).
    assert ours.check_response(bot, METHODS[0], 200, _answer(None)).result.reply_markup is None


def test_an_error_or_unreadable_answer_to_a_call_with_a_keyboard_fails_as_in_aiogram() -> None:
    ours = BotSession()
    bot = Bot(TOKEN, session=ours, default=DEFAULTS)
    with pytest.raises(TelegramBadRequest, match="no"):
        ours.check_response(bot, METHODS[0], 400, _answer(None, ok=False))
    with pytest.raises(ClientDecodeError):
        ours.check_response(bot, METHODS[0], 200, "<html>502</html>")
