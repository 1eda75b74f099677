"""api.json as data: parameter decoding, structural checks, and the emulator's own results
conforming to the types they claim to be."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiogram.types import BufferedInputFile

from emulator import Emulator, SimBot, SimUser
from emulator.spec import DecodeError, Upload, load
from tests.emulator.conftest import GIF, PNG, close_bot, make_bot

spec = load()


ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "telegram-bot-api" / "api.json"


def test_the_copy_is_the_bot_api_specification(project_root: Path):
    data = json.loads((project_root / "emulator" / "api.json").read_text())
    assert data["version"] == "Bot API 10.1"
    assert {"getUpdates", "sendMessage", "editMessageText", "answerCallbackQuery"} <= set(data["methods"])
    assert (project_root / "emulator" / "api.LICENSE").read_text().startswith("MIT License")


# The team's shared copy sits next to a development checkout, not next to CI's clean one.
@pytest.mark.skipif(not SHARED.exists(), reason=f"no shared copy of the Bot API specification at {SHARED}")
def test_the_copy_is_the_shared_specification(project_root: Path):
    ours = project_root / "emulator" / "api.json"
    assert json.loads(ours.read_text()) == json.loads(SHARED.read_text())


def test_methods_are_case_insensitive():
    assert spec.method("SENDMESSAGE") is spec.method("sendMessage")
    assert spec.method("sendMessage").fields["text"].required


def test_form_strings_decode_by_declared_type():
    f = spec.method("sendMessage").fields
    assert spec.decode(f["chat_id"], "42", {}) == 42
    assert spec.decode(f["chat_id"], "@channel", {}) == "@channel"
    assert spec.decode(f["text"], "123", {}) == "123"  # a String stays a string
    assert spec.decode(f["disable_notification"], "true", {}) is True
    assert spec.decode(f["reply_markup"], '{"inline_keyboard": []}', {}) == {"inline_keyboard": []}
    with pytest.raises(DecodeError):
        spec.decode(f["disable_notification"], "maybe", {})


def test_attach_references_resolve_to_file_parts():
    photo = spec.method("sendPhoto").fields["photo"]
    upload = Upload(PNG, "a.png", "image/png")
    assert spec.decode(photo, "attach://x1", {"x1": upload}) is upload
    with pytest.raises(DecodeError):
        spec.decode(photo, "attach://missing", {})


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"inline_keyboard": [[{"text": "a", "callback_data": "x"}]]}, None),
        ({"inline_keyboard": [[{"text": "a", "bogus": 1}]]}, "unknown field 'bogus'"),
        ({"inline_keyboard": "no"}, "expected"),
        ({"keyboard": [[{"text": "a"}]], "resize_keyboard": True}, None),
        ({"remove_keyboard": True}, None),
    ],
)
def test_reply_markup_structure(value, problem):
    types = spec.method("sendMessage").fields["reply_markup"].types
    found = spec.problem(types, value, "reply_markup")
    assert (found is None) if problem is None else (problem in found)


def test_abstract_types_are_told_apart_by_their_type_field():
    types = spec.method("setMyCommands").fields["scope"].types
    assert spec.problem(types, {"type": "chat", "chat_id": 5}, "scope") is None
    assert "requires 'chat_id'" in spec.problem(types, {"type": "chat"}, "scope")
    assert "no BotCommandScope subtype" in spec.problem(types, {"type": "planet"}, "scope")


async def test_what_the_emulator_returns_conforms_to_the_specification(
    emu: Emulator, sim_bot: SimBot, user: SimUser
):
    bot = make_bot(emu)
    try:
        await emu.send_text(user, "/start x")
        await emu.send_photo(user, GIF, caption="看 #图")
        await emu.send_document(user, b"%PDF-1.4", "a.pdf")
        sent = await bot.send_message(
            user.id,
            "<b>hi</b>",
            parse_mode="HTML",
            reply_markup={"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]},
        )
        await bot.send_photo(user.id, photo=BufferedInputFile(PNG, "p.png"))
        await emu.press(user, sent.message_id, text="A")
        emu.block(user)
        bodies = {
            "getMe": ("User", {}),
            "getWebhookInfo": ("WebhookInfo", {}),
            "getUpdates": ("Array of Update", {}),
            "getMyCommands": ("Array of BotCommand", {}),
            "getChat": ("ChatFullInfo", {"chat_id": user.id}),
        }
        for method, (type_name, params) in bodies.items():
            status, body = await emu.execute(sim_bot.token, method, params)
            assert status == 200, body
            assert spec.problem((type_name,), body["result"], method) is None
        photo_id = emu.chat(user)[-1].photo.file_id
        _, body = await emu.execute(sim_bot.token, "getFile", {"file_id": photo_id})
        assert spec.problem(("File",), body["result"], "getFile") is None
        updates = emu.pending_updates()
        assert {next(k for k in u if k != "update_id") for u in updates} == {
            "message",
            "callback_query",
            "my_chat_member",
        }
        assert emu.violations == []
    finally:
        await close_bot(bot)
