"""Inline keyboards shared by the member handlers, and the one way a button answer is shown."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aiogram import Bot
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message


def button(text: str, data: str) -> InlineKeyboardButton:
    # Telegram refuses callback data over 64 bytes: catch it here, not as an API error later.
    if len(data.encode()) > 64:
        raise ValueError(f"callback data over 64 bytes: {data!r}")
    return InlineKeyboardButton(text=text, callback_data=data)


def rows(*lines: Sequence[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[list(line) for line in lines if line])


def column(buttons: Iterable[InlineKeyboardButton]) -> list[list[InlineKeyboardButton]]:
    return [[b] for b in buttons]


async def show(query: CallbackQuery, bot: Bot, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Turn the pressed message into `text` (and `markup`, or no buttons).

    A message too old for Telegram to hand back (inaccessible) cannot be edited: the answer
    then comes as a new message.
    """
    if isinstance(query.message, Message):
        await query.message.edit_text(text, reply_markup=markup)
    else:
        await bot.send_message(query.from_user.id, text, reply_markup=markup)
