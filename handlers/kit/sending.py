"""What a handler sends that is more than one reply: a long text in several messages, and files.

A report or a sheet is a summary (split under Telegram's length limit by `forms.pack_messages`,
its buttons under the last message, where the reader ends up) followed by its files as documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message


@dataclass(frozen=True, slots=True)
class File:
    """A file to send as a document."""

    name: str
    data: bytes
    caption: str


async def send_texts(
    message: Message, texts: Sequence[str], markup: InlineKeyboardMarkup | None = None
) -> None:
    """Each text as a message, in order; `markup` goes under the last one."""
    for i, text in enumerate(texts):
        await message.answer(text, reply_markup=markup if i == len(texts) - 1 else None)


async def send_files(message: Message, *files: File) -> None:
    """Each file as a document with its caption, in order."""
    for f in files:
        await message.answer_document(BufferedInputFile(f.data, filename=f.name), caption=f.caption)
