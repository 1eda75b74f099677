"""Inline keyboards shared by the member handlers, and the one way a button answer is shown."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters.callback_data import MAX_CALLBACK_LENGTH, CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

T = TypeVar("T")
# A button is a copy of this one with its text and data: the same model pydantic would build
# from two strings, at a third of the CPU (validating runs aiogram's Python hooks each time).
_BUTTON = InlineKeyboardButton(text="", callback_data="")


def button(text: str, data: str) -> InlineKeyboardButton:
    # Telegram refuses callback data over 64 bytes: catch it here, not as an API error later.
    if len(data.encode()) > 64:
        raise ValueError(f"callback data over 64 bytes: {data!r}")
    if type(text) is not str or type(data) is not str:  # anything else: pydantic decides
        return InlineKeyboardButton(text=text, callback_data=data)
    return _BUTTON.model_copy(update={"text": text, "callback_data": data})


# What would make pydantic or aiogram change or refuse a plain value.
_STR_RULES = ("str_strip_whitespace", "str_to_lower", "str_to_upper", "str_min_length", "str_max_length")


@cache
def _plain_fields(cls: type[CallbackData]) -> tuple[tuple[str, type], ...] | None:
    """The fields in order if packing a plain int or str value of each is only `str(value)`:
    no constraint, validator, serializer or string rule, and aiogram's own packing."""
    decorators = cls.__pydantic_decorators__
    if (
        cls.pack is not CallbackData.pack
        or cls._encode_value is not CallbackData._encode_value
        or any(getattr(decorators, f.name) for f in dataclasses.fields(decorators))
        or any(cls.model_config.get(rule) for rule in _STR_RULES)  # type: ignore[misc]
    ):
        return None
    fields = cls.model_fields.items()
    if all((f.annotation is int or f.annotation is str) and not f.metadata for _, f in fields):
        return tuple((name, f.annotation) for name, f in fields)  # type: ignore[misc]
    return None


def _packed_plain(cls: type[CallbackData], values: dict[str, Any]) -> str | None:
    """The packed string when every value is plain (`_plain_fields`) and aiogram would accept it;
    else None."""
    fields = _plain_fields(cls)
    if fields is None or len(values) != len(fields):
        return None
    sep = cls.__separator__
    parts = [cls.__prefix__]
    for name, kind in fields:
        value = values.get(name)
        if type(value) is not kind or sep in (text := str(value)):
            return None
        parts.append(text)
    data = sep.join(parts)
    return data if len(data.encode()) <= MAX_CALLBACK_LENGTH else None


def packed(cls: type[CallbackData], **values: Any) -> str:
    """`cls(**values).pack()`, the same string, without building and dumping the model when each
    value is exactly of its field's type, `int` or `str` (a keyboard packs one per button, and
    the model cost more than the string). Anything else, a separator inside a value, or data
    over 64 bytes goes through aiogram, which packs or refuses it as it always has."""
    data = _packed_plain(cls, values)
    return data if data is not None else cls(**values).pack()


def rows(*lines: Sequence[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[list(line) for line in lines if line])


def column(buttons: Iterable[InlineKeyboardButton]) -> list[list[InlineKeyboardButton]]:
    return [[b] for b in buttons]


def picker(
    header: str,
    items: Sequence[T],
    line: Callable[[int, T], str],
    pick: Callable[[int, T], InlineKeyboardButton | None],
    *,
    per_row: int = 1,
    gap: str = "\n",
) -> tuple[str, list[list[InlineKeyboardButton]]]:
    """A numbered list and its buttons: item n is line n of the text and (if `pick` gives one) a
    button that names n, so a long text stays readable and the buttons stay short."""
    lines = [header]
    buttons: list[InlineKeyboardButton] = []
    for n, item in enumerate(items, start=1):
        lines.append(line(n, item))
        b = pick(n, item)
        if b is not None:
            buttons.append(b)
    return gap.join(lines), [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]


async def show(query: CallbackQuery, bot: Bot, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Turn the pressed message into `text` (and `markup`, or no buttons).

    A double tap asks for the same edit twice: Telegram answers "message is not modified", which
    changes nothing and is ignored. A message that cannot be edited (too old, deleted, not text)
    gets the answer as a new message instead.
    """
    if isinstance(query.message, Message):
        try:
            await query.message.edit_text(text, reply_markup=markup)
            return
        except TelegramBadRequest as e:
            if not_modified(e):
                return
    await bot.send_message(query.from_user.id, text, reply_markup=markup)


async def edit_markup(message: Message, markup: InlineKeyboardMarkup | None) -> None:
    """Change only the buttons of `message`; the same buttons again is not an error."""
    try:
        await message.edit_reply_markup(reply_markup=markup)
    except TelegramBadRequest as e:
        if not not_modified(e):
            raise


def not_modified(e: TelegramBadRequest) -> bool:
    return "message is not modified" in str(e.message)
