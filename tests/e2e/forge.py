"""A button a person should never have been shown (forged, or forwarded from someone else):
the bot sends it to them, as-is, so a test can press it and see the store refuse it."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from emulator.state import ChatMessage
from storage.models import Person
from tests.e2e.harness import Chat


async def forged_button(chat: Chat, person: Person, data: str) -> ChatMessage:
    user = chat.user_for(person)
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="forged", callback_data=data)]])
    sent = await chat.app.bot.send_message(user.id, "forged", reply_markup=markup)
    found = next(m for m in chat.messages(person) if m.message_id == sent.message_id)
    return found
