"""Checks every call against the Bot API contract (emulator/api.json) before it runs.

What is checked, in order (the first failure answers 400 and is recorded as a violation):
1. every parameter is known to the method (Telegram ignores unknown ones; we refuse them,
   since an ignored parameter is a silent bug), and decodes to its declared type;
2. every required parameter is present (plus the "one of" rules api.json states in prose:
   edits need chat_id + message_id or inline_message_id; editMessageText needs text);
3. inline keyboards: each button has non-empty text and exactly one action field,
   callback_data is 1-64 bytes (Telegram: BUTTON_DATA_INVALID);
4. every value matches its declared type recursively: required fields of objects present, no
   unknown fields, "a-b characters|bytes" limits from the descriptions;
5. formatted text (text/caption with parse_mode or entities) parses, and its length after
   parsing and trimming is within the limit: text 1-4096, caption 0-1024 characters;
6. a few value rules Telegram enforces: chat actions, command names, webhook secret tokens.

"chat not found", "message is not modified" and the like depend on state, so the methods
raise them, as ordinary errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from emulator.entities import Formatted, ParseError, UnsupportedParseMode, format_text
from emulator.errors import violation
from emulator.spec import DecodeError, Field, MethodSpec, Spec, Upload, length_problem

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_LANGUAGE = re.compile(r"(?:[a-z]{2})?")
# Fields of InlineKeyboardButton that are not its action.
_BUTTON_DECOR = frozenset({"text", "icon_custom_emoji_id", "style"})
MAX_BUTTONS = 100
# Parameters dropped from the documentation that Telegram still accepts (aiogram still offers
# them), allowed where their successor exists.
_LEGACY = {
    "reply_to_message_id": ("reply_parameters", Field("reply_to_message_id", ("Integer",), False, "")),
    "allow_sending_without_reply": (
        "reply_parameters",
        Field("allow_sending_without_reply", ("Boolean",), False, ""),
    ),
    "disable_web_page_preview": (
        "link_preview_options",
        Field("disable_web_page_preview", ("Boolean",), False, ""),
    ),
}


@dataclass
class Checked:
    """A call that passed validation: typed parameters and its parsed texts."""

    method: MethodSpec
    params: dict[str, Any]
    formatted: dict[str, Formatted] = field(default_factory=dict)


def check_call(spec: Spec, method: MethodSpec, raw: dict[str, Any], files: dict[str, Upload]) -> Checked:
    params: dict[str, Any] = {}
    for name, value in raw.items():
        f = method.fields.get(name)
        if f is None and name in _LEGACY and _LEGACY[name][0] in method.fields:
            f = _LEGACY[name][1]
        if f is None:
            raise violation(f'unknown parameter "{name}"', f"{method.name} has no parameter {name!r}")
        try:
            params[name] = spec.decode(f, value, files)
        except DecodeError as e:
            raise violation(f"can't parse parameter {name}", str(e)) from None
    _check_required(method, params)
    markup = params.get("reply_markup")
    if isinstance(markup, dict):
        _check_keyboard(markup)
    for name, value in params.items():
        f = method.fields.get(name) or _LEGACY[name][1]
        problem = spec.problem(f.types, value, name) or length_problem(f, value, name)
        if problem:
            raise violation(f"wrong parameter {name}", problem)
    checked = Checked(method, params)
    _check_formatted(method, checked)
    _check_values(method, params)
    return checked


def _check_required(method: MethodSpec, params: dict[str, Any]) -> None:
    for f in method.fields.values():
        if f.required and f.name not in params:
            if f.name in ("text", "caption"):
                raise violation("message text is empty", f"{method.name} requires {f.name!r}")
            raise violation(f"parameter {f.name} is required", f"{method.name} requires {f.name!r}")
    if method.name.startswith("editMessage") and "inline_message_id" not in params:
        for name in ("chat_id", "message_id"):
            if name not in params:
                raise violation(
                    f"parameter {name} is required",
                    f"{method.name} needs chat_id and message_id, or inline_message_id",
                )
    if method.name == "editMessageText" and "text" not in params:
        raise violation("message text is empty", "editMessageText requires 'text'")


def _check_keyboard(markup: dict[str, Any]) -> None:
    rows = markup.get("inline_keyboard", markup.get("keyboard"))
    if not isinstance(rows, list):
        return
    inline = "inline_keyboard" in markup
    count = 0
    for r, row in enumerate(rows):
        if not isinstance(row, list):
            continue
        for c, button in enumerate(row):
            count += 1
            where = f"reply_markup row {r} button {c}"
            if isinstance(button, str) and not inline:
                button = {"text": button}  # a reply keyboard button may be a bare string
            if not isinstance(button, dict):
                continue
            text = button.get("text")
            if not isinstance(text, str) or not text.strip():
                raise violation("BUTTON_TEXT_INVALID", f"{where}: a button needs non-empty text")
            if not inline:
                continue
            actions = [k for k in button if k not in _BUTTON_DECOR]
            if not actions:
                raise violation(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
                    f"{where} ({text!r}) has no action field",
                )
            if len(actions) > 1:
                raise violation(
                    "can't parse inline keyboard button: only one action field is allowed",
                    f"{where} ({text!r}) has several action fields: {', '.join(sorted(actions))}",
                )
            if "callback_data" in button:
                data = button["callback_data"]
                size = len(data.encode()) if isinstance(data, str) else -1
                if not 1 <= size <= 64:
                    raise violation(
                        "BUTTON_DATA_INVALID",
                        f"{where} ({text!r}): callback_data is {size} bytes, must be 1-64",
                    )
    if count > MAX_BUTTONS:
        raise violation("reply markup is too long", f"{count} buttons, at most {MAX_BUTTONS}")


# (text field, entities field, what Telegram calls it when too long)
_FORMATTED = (
    ("text", "entities", "message is too long"),
    ("caption", "caption_entities", "message caption is too long"),
)


def _check_formatted(method: MethodSpec, checked: Checked) -> None:
    if "parse_mode" not in method.fields:
        return
    params = checked.params
    for text_field, entities_field, too_long in _FORMATTED:
        if text_field not in params or text_field not in method.fields:
            continue
        try:
            formatted = format_text(params[text_field], params.get("parse_mode"), params.get(entities_field))
        except UnsupportedParseMode as e:
            raise violation(
                "unsupported parse_mode", f"parse_mode {e} is not HTML, MarkdownV2 or Markdown"
            ) from None
        except ParseError as e:
            raise violation(f"can't parse entities: {e}", f"{text_field}: {e}") from None
        limit = method.fields[text_field].length_limit
        if limit:
            lo, hi, _ = limit
            if formatted.length < lo:
                raise violation("message text is empty", f"{text_field} is empty after entity parsing")
            if formatted.length > hi:
                raise violation(
                    too_long,
                    f"{text_field} is {formatted.length} characters after entity parsing, at most {hi}",
                )
        checked.formatted[text_field] = formatted


def _check_values(method: MethodSpec, params: dict[str, Any]) -> None:
    if method.name == "sendChatAction" and params["action"] not in CHAT_ACTIONS:
        raise violation("wrong parameter action in request", f"unknown chat action {params['action']!r}")
    if method.name == "setMyCommands":
        for i, cmd in enumerate(params["commands"]):
            if not _COMMAND.fullmatch(cmd["command"]):
                raise violation(
                    "BOT_COMMAND_INVALID",
                    f"commands[{i}].command {cmd['command']!r}: 1-32 lowercase letters, digits, underscores",
                )
        if len(params["commands"]) > 100:
            raise violation("too many commands", "at most 100 commands")
    if "language_code" in params and method.name.endswith("MyCommands"):
        if not _LANGUAGE.fullmatch(params["language_code"]):
            raise violation(
                "LANGUAGE_CODE_INVALID", "language_code must be empty or a two-letter ISO 639-1 code"
            )
    if method.name == "setWebhook" and "secret_token" in params:
        if not _SECRET.fullmatch(params["secret_token"]):
            raise violation(
                "secret token contains unallowed characters", "secret_token: 1-256 of A-Z a-z 0-9 _ -"
            )
