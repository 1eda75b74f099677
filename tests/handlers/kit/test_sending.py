"""A long summary goes out in several messages with its buttons under the last; files follow in order."""

from __future__ import annotations

from typing import Any

from aiogram.types import InlineKeyboardMarkup

from handlers.kit.forms import pack_messages
from handlers.kit.keyboards import button, rows
from handlers.kit.sending import File, send_files, send_texts


class Chat:
    """Stands in for the message answered: records what is sent, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    async def answer(self, text: str, reply_markup: InlineKeyboardMarkup | None = None) -> None:
        self.sent.append((text, reply_markup))

    async def answer_document(self, document: Any, caption: str) -> None:
        self.sent.append((caption, (document.filename, document.data)))


async def test_the_buttons_go_under_the_last_message_only() -> None:
    chat = Chat()
    markup = rows([button("ok", "x:1")])
    texts = pack_messages(["head", *(f"line {n}" for n in range(30))], limit=60, sep="\n")
    assert len(texts) > 2
    await send_texts(chat, texts, markup)  # type: ignore[arg-type]
    assert [t for t, _ in chat.sent] == texts
    assert [m for _, m in chat.sent] == [None] * (len(texts) - 1) + [markup]


async def test_one_text_carries_the_buttons_and_none_sends_nothing() -> None:
    chat = Chat()
    await send_texts(chat, ["only"], None)  # type: ignore[arg-type]
    await send_texts(chat, [], rows([button("ok", "x:1")]))  # type: ignore[arg-type]
    assert chat.sent == [("only", None)]


async def test_files_go_as_documents_in_order() -> None:
    chat = Chat()
    await send_files(chat, File("a.docx", b"A", "draft"), File("b.xlsx", b"B", "annex"))  # type: ignore[arg-type]
    assert chat.sent == [("draft", ("a.docx", b"A")), ("annex", ("b.xlsx", b"B"))]
