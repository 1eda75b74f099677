"""The first router: a message holding a control character (NUL among them) gets a clear answer
and goes no further. No person types one; PostgreSQL refuses NUL in text, and the others garble
chat, print and spreadsheets, so no handler has to think about them."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from content.i18n import Texts
from storage.validation import control_chars

router = Router(name=__name__)


def has_control_chars(message: Message) -> bool:
    return any(control_chars(t) for t in (message.text, message.caption) if t)


@router.message(F.func(has_control_chars))
async def refuse_control_chars(message: Message, _: Texts) -> None:
    await message.answer(_("error.control_chars"))
