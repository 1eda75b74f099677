"""Every call is checked against api.json: a violation answers Telegram's 400 and is
recorded in emu.violations; parameters arrive in every encoding clients use."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest

from emulator import Emulator, SimUser
from tests.emulator.conftest import PNG, TOKEN, raw_call


async def expect_violation(http, emu, method, description, **params):
    status, body = await raw_call(http, emu, method, **params)
    assert status == 400, body
    assert body == {"ok": False, "error_code": 400, "description": description}
    assert emu.violations[-1].method == method
    assert emu.violations[-1].description == description
    return emu.violations[-1]


def button(**fields):
    return {"inline_keyboard": [[fields]]}


async def test_unknown_method_is_404_as_telegram(http, emu: Emulator, sim_bot):
    status, body = await raw_call(http, emu, "sendTelepathy", chat_id=1)
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    assert emu.violations[-1].reason == "no Bot API method 'sendTelepathy'"


async def test_method_names_are_case_insensitive(http, emu: Emulator, sim_bot):
    status, body = await raw_call(http, emu, "GETME")
    assert status == 200 and body["result"]["id"] == sim_bot.id


async def test_known_but_not_emulated_method_is_a_violation(http, emu: Emulator, sim_bot, user):
    v = await expect_violation(
        http,
        emu,
        "sendDice",
        "Bad Request: method sendDice is not supported by the emulator",
        chat_id=user.id,
    )
    assert "not emulated" in v.reason


async def test_missing_required_parameter(http, emu: Emulator, sim_bot, user):
    v = await expect_violation(
        http, emu, "sendMessage", "Bad Request: message text is empty", chat_id=user.id
    )
    assert v.reason == "sendMessage requires 'text'"
    await expect_violation(http, emu, "sendMessage", "Bad Request: parameter chat_id is required", text="x")
    await expect_violation(
        http, emu, "editMessageText", "Bad Request: parameter message_id is required", chat_id=1, text="x"
    )


async def test_unknown_parameter(http, emu: Emulator, sim_bot, user):
    v = await expect_violation(
        http,
        emu,
        "sendMessage",
        'Bad Request: unknown parameter "colour"',
        chat_id=user.id,
        text="x",
        colour="red",
    )
    assert v.params == {"chat_id": user.id, "text": "x", "colour": "red"}


async def test_legacy_parameters_telegram_still_accepts(http, emu: Emulator, sim_bot, user):
    status, _ = await raw_call(
        http, emu, "sendMessage", chat_id=user.id, text="x", disable_web_page_preview=True
    )
    assert status == 200 and emu.violations == []


async def test_wrong_type_and_unknown_nested_field(http, emu: Emulator, sim_bot, user):
    await expect_violation(
        http, emu, "sendMessage", "Bad Request: can't parse parameter disable_notification",
        chat_id=user.id, text="x", disable_notification="loud",
    )  # fmt: skip
    v = await expect_violation(
        http, emu, "sendMessage", "Bad Request: wrong parameter disable_notification",
        chat_id=user.id, text="x", disable_notification=5,
    )  # fmt: skip
    assert "expected Boolean" in v.reason
    v = await expect_violation(
        http, emu, "setMyCommands", "Bad Request: wrong parameter commands",
        commands=[{"command": "log", "description": "x", "emoji": "✓"}],
    )  # fmt: skip
    assert "unknown field 'emoji'" in v.reason


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("字" * 4096, True),
        ("字" * 4097, False),
        ("<b>" + "字" * 4096 + "</b>", True),  # tags do not count
        ("&lt;" * 4096, True),  # an entity counts as one character
        ("&amp;" * 4097, False),
        ("   \n", False),  # empty after trimming
    ],
)
async def test_text_length_is_counted_after_entity_parsing(http, emu: Emulator, sim_bot, user, text, ok):
    status, body = await raw_call(http, emu, "sendMessage", chat_id=user.id, text=text, parse_mode="HTML")
    assert (status == 200) is ok, body
    if not ok:
        assert body["description"] in (
            "Bad Request: message is too long",
            "Bad Request: message text is empty",
        )
        assert len(emu.violations) == 1


async def test_caption_is_at_most_1024_characters_after_parsing(bot: Bot, emu: Emulator, user: SimUser):
    from aiogram.types import BufferedInputFile

    await bot.send_photo(
        user.id, BufferedInputFile(PNG, "a.png"), caption="<b>" + "x" * 1024 + "</b>", parse_mode="HTML"
    )
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(user.id, BufferedInputFile(PNG, "a.png"), caption="x" * 1025)
    assert len(emu.violations) == 1


@pytest.mark.parametrize(
    ("html", "detail"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
    ],
)
async def test_malformed_html_cannot_parse_entities(http, emu: Emulator, sim_bot, user, html, detail):
    await expect_violation(
        http, emu, "sendMessage", f"Bad Request: can't parse entities: {detail}",
        chat_id=user.id, text=html, parse_mode="HTML",
    )  # fmt: skip


async def test_unsupported_parse_mode(http, emu: Emulator, sim_bot, user):
    await expect_violation(
        http,
        emu,
        "sendMessage",
        "Bad Request: unsupported parse_mode",
        chat_id=user.id,
        text="x",
        parse_mode="bbcode",
    )


async def test_callback_data_is_1_to_64_bytes(http, emu: Emulator, sim_bot, user):
    ok = "数" * 21  # 63 bytes
    status, _ = await raw_call(
        http, emu, "sendMessage", chat_id=user.id, text="x", reply_markup=button(text="a", callback_data=ok)
    )
    assert status == 200
    v = await expect_violation(
        http, emu, "sendMessage", "Bad Request: BUTTON_DATA_INVALID",
        chat_id=user.id, text="x", reply_markup=button(text="a", callback_data=ok + "a" * 2),
    )  # fmt: skip
    assert "65 bytes" in v.reason
    await expect_violation(
        http, emu, "sendMessage", "Bad Request: BUTTON_DATA_INVALID",
        chat_id=user.id, text="x", reply_markup=button(text="a", callback_data=""),
    )  # fmt: skip


async def test_inline_button_needs_text_and_exactly_one_action(http, emu: Emulator, sim_bot, user):
    await expect_violation(
        http, emu, "sendMessage", "Bad Request: BUTTON_TEXT_INVALID",
        chat_id=user.id, text="x", reply_markup=button(text=" ", callback_data="a"),
    )  # fmt: skip
    await expect_violation(
        http, emu, "sendMessage",
        "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        chat_id=user.id, text="x", reply_markup=button(text="a"),
    )  # fmt: skip
    v = await expect_violation(
        http, emu, "sendMessage",
        "Bad Request: can't parse inline keyboard button: only one action field is allowed",
        chat_id=user.id, text="x", reply_markup=button(text="a", callback_data="a", url="https://e.org"),
    )  # fmt: skip
    assert "callback_data, url" in v.reason


async def test_edit_with_a_bad_keyboard_is_a_violation_too(bot: Bot, emu: Emulator, user: SimUser, http):
    sent = await bot.send_message(user.id, "x")
    await expect_violation(
        http, emu, "editMessageReplyMarkup", "Bad Request: BUTTON_DATA_INVALID",
        chat_id=user.id, message_id=sent.message_id, reply_markup=button(text="a", callback_data="x" * 65),
    )  # fmt: skip


async def test_value_rules(http, emu: Emulator, sim_bot, user):
    await expect_violation(
        http,
        emu,
        "sendChatAction",
        "Bad Request: wrong parameter action in request",
        chat_id=user.id,
        action="dancing",
    )
    await expect_violation(
        http,
        emu,
        "setMyCommands",
        "Bad Request: BOT_COMMAND_INVALID",
        commands=[{"command": "Log", "description": "x"}],
    )
    await expect_violation(
        http, emu, "setWebhook", "Bad Request: secret token contains unallowed characters",
        url="http://127.0.0.1:1/h", secret_token="no spaces",
    )  # fmt: skip


async def test_aiogram_raises_bad_request_for_a_violation(bot: Bot, emu: Emulator, user: SimUser):
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(user.id, "<b>x", parse_mode="HTML")


# -- encodings ----------------------------------------------------------------------------------


async def test_parameters_as_query_string_and_get(http, emu: Emulator, sim_bot, user):
    async with http.get(
        f"{emu.base_url}/bot{TOKEN}/sendMessage", params={"chat_id": user.id, "text": "123"}
    ) as r:
        body = await r.json()
    assert body["ok"] and body["result"]["text"] == "123"  # a String parameter stays a string


async def test_parameters_as_urlencoded_form(http, emu: Emulator, sim_bot, user):
    form = {
        "chat_id": str(user.id),
        "text": "表单",
        "reply_markup": json.dumps(button(text="a", callback_data="b")),
    }
    async with http.post(f"{emu.base_url}/bot{TOKEN}/sendMessage", data=form) as r:
        body = await r.json()
    assert body["ok"] and body["result"]["reply_markup"] == button(text="a", callback_data="b")


async def test_parameters_as_multipart_with_a_file_part_named_like_the_parameter(
    http, emu: Emulator, sim_bot, user
):
    form = aiohttp.FormData()
    form.add_field("chat_id", str(user.id))
    form.add_field("caption", "直接上传")
    form.add_field("photo", PNG, filename="p.png", content_type="image/png")
    async with http.post(f"{emu.base_url}/bot{TOKEN}/sendPhoto", data=form) as r:
        body = await r.json()
    assert body["ok"], body
    assert emu.chat(user)[0].photo_bytes == PNG


async def test_malformed_json_body_is_a_violation(http, emu: Emulator, sim_bot):
    async with http.post(
        f"{emu.base_url}/bot{TOKEN}/getMe", data=b"{nope", headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400
    assert "JSON" in emu.violations[-1].reason


async def test_limits_stated_in_descriptions_apply_to_plain_strings(http, emu: Emulator, sim_bot):
    v = await expect_violation(
        http,
        emu,
        "answerCallbackQuery",
        "Bad Request: wrong parameter text",
        callback_query_id="1",
        text="长" * 201,
    )
    assert v.reason == "text: 201 characters, must be 0-200"
    v = await expect_violation(
        http, emu, "setMyCommands", "Bad Request: wrong parameter commands",
        commands=[{"command": "log", "description": ""}],
    )  # fmt: skip
    assert v.reason == "commands[0].description: 0 characters, must be 1-256"
