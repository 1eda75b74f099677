"""The end-to-end harness: the real Dispatcher, over real HTTP, against the local emulator.

`Chat` is how a test talks to the bot as a simulated person; `Db` reads the database the bot
writes. Neither sleeps: both wait on conditions (an update handled, a message arrived).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import BotApp
from emulator import Emulator
from emulator.state import CallbackAnswer, ChatMessage, SimUser
from storage.models import Person

TOKEN = "424242:e2e-test-token-AAAAAAAAAAAAAAAAAAAAAAAAAAA"
# Saturday 28 November 2026, 10:00 in Shanghai: the frozen "now" of the end-to-end tests.
NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)

_TAG = re.compile(r"<[^>]+>")


@dataclass
class Reply:
    """What the bot did in answer to one update: the messages it sent, the ones it edited,
    and its answer to a pressed button."""

    sent: list[ChatMessage] = field(default_factory=list)
    edited: list[ChatMessage] = field(default_factory=list)
    answer: CallbackAnswer | None = None

    @property
    def message(self) -> ChatMessage | None:
        """The message to look at: the last one sent, else the last one edited."""
        if self.sent:
            return self.sent[-1]
        return self.edited[-1] if self.edited else None

    @property
    def text(self) -> str:
        m = self.message
        if m is None:
            return self.answer.text or "" if self.answer else ""
        return m.text or m.caption or ""

    @property
    def texts(self) -> list[str]:
        return [m.text or m.caption or "" for m in (*self.sent, *self.edited)]

    @property
    def all_text(self) -> str:
        parts = self.texts + ([self.answer.text] if self.answer and self.answer.text else [])
        return "\n".join(parts)

    @property
    def buttons(self) -> list[str]:
        m = self.message
        return [b["text"] for b in m.buttons] if m else []

    @property
    def alert(self) -> str | None:
        return self.answer.text if self.answer else None

    def __repr__(self) -> str:
        return f"Reply(texts={self.texts!r}, buttons={self.buttons!r}, alert={self.alert!r})"


class Chat:
    def __init__(self, emu: Emulator, app: BotApp, timeout: float = 10.0) -> None:
        self.emu = emu
        self.app = app
        self.timeout = timeout

    def user(
        self, first_name: str = "测试", *, language_code: str | None = "zh", id: int | None = None
    ) -> SimUser:
        return self.emu.add_user(first_name, language_code=language_code, id=id)

    def user_for(self, person: Person, language_code: str | None = "zh") -> SimUser:
        """The simulated Telegram account of a person created by tests/factories.py."""
        assert person.telegram_id is not None
        existing = self.emu.users.get(person.telegram_id)
        return existing or self.emu.add_user(person.name, language_code=language_code, id=person.telegram_id)

    def _snapshot(self, chat_id: int) -> tuple[int, dict[int, int]]:
        msgs = self.emu.chat(chat_id, bot=self.app.bot.id, include_deleted=True)
        top = max((m.message_id for m in msgs), default=0)
        return top, {m.message_id: len(m.history) for m in msgs}

    def _diff(self, chat_id: int, before: tuple[int, dict[int, int]]) -> Reply:
        top, versions = before
        msgs = self.emu.chat(chat_id, bot=self.app.bot.id)
        sent = [m for m in msgs if m.message_id > top]
        edited = [m for m in msgs if m.message_id <= top and len(m.history) > versions.get(m.message_id, 0)]
        return Reply(sent, edited)

    async def deliver(self, update: dict[str, Any]) -> None:
        await self.app.intake.wait_handled(update["update_id"], self.timeout)

    async def send(self, who: SimUser | Person, text: str) -> Reply:
        user = who if isinstance(who, SimUser) else self.user_for(who)
        before = self._snapshot(user.id)
        update = await self.emu.send_text(user, text, bot=self.app.bot.id)
        await self.deliver(update)
        return self._diff(user.id, before)

    async def send_photo(self, who: SimUser | Person, data: bytes, caption: str | None = None) -> Reply:
        user = who if isinstance(who, SimUser) else self.user_for(who)
        before = self._snapshot(user.id)
        update = await self.emu.send_photo(user, data, caption, bot=self.app.bot.id)
        await self.deliver(update)
        return self._diff(user.id, before)

    async def send_document(
        self, who: SimUser | Person, data: bytes, file_name: str, caption: str | None = None
    ) -> Reply:
        user = who if isinstance(who, SimUser) else self.user_for(who)
        before = self._snapshot(user.id)
        update = await self.emu.send_document(user, data, file_name, caption, bot=self.app.bot.id)
        await self.deliver(update)
        return self._diff(user.id, before)

    async def press(
        self,
        who: SimUser | Person,
        reply: Reply | ChatMessage,
        button: str | None = None,
        *,
        data: str | None = None,
    ) -> Reply:
        """Press a button (by its text, or a prefix of it, or its callback data) of a bot message."""
        user = who if isinstance(who, SimUser) else self.user_for(who)
        message = reply.message if isinstance(reply, Reply) else reply
        assert message is not None, "no message to press a button on"
        if button is not None and data is None:
            match = (
                [b for b in message.buttons if b["text"] == button]
                or [b for b in message.buttons if b["text"].startswith(button)]
                or [b for b in message.buttons if button in b["text"]]
            )
            assert match, f"no button {button!r} in {[b['text'] for b in message.buttons]}"
            data = match[0].get("callback_data")
            if data is None:
                button = match[0]["text"]
        before = self._snapshot(message.chat_id)
        update = await self.emu.press(user, message, text=None if data else button, data=data)
        await self.deliver(update)
        out = self._diff(message.chat_id, before)
        if "callback_query" in update:
            qid = update["callback_query"]["id"]
            out.answer = next((a for a in self.emu.callback_answers if a.query_id == qid), None)
        return out

    def messages(self, who: SimUser | Person) -> list[ChatMessage]:
        chat_id = who.id if isinstance(who, SimUser) else who.telegram_id
        assert chat_id is not None
        return self.emu.chat(chat_id, bot=self.app.bot.id)

    async def wait_message(
        self, who: SimUser | Person, contains: str, timeout: float | None = None
    ) -> ChatMessage:
        """A message (sent by anyone's action, e.g. the outbox) that mentions `contains`."""

        def found() -> ChatMessage | None:
            return next(
                (m for m in reversed(self.messages(who)) if contains in (m.text or m.caption or "")), None
            )

        return await self.emu.wait_for(found, timeout or self.timeout)


def plain(text: str) -> str:
    """Message text as a person reads it (the emulator stores the parsed text already)."""
    return html.unescape(_TAG.sub("", text))


class Db:
    """Reads the database the bot writes, each call in a fresh session."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def all(self, stmt: Any) -> Sequence[Any]:
        async with self.sessionmaker() as s:
            return list((await s.scalars(stmt)).all())

    async def one(self, stmt: Any) -> Any:
        async with self.sessionmaker() as s:
            return (await s.scalars(stmt)).one()

    async def scalar(self, stmt: Any) -> Any:
        async with self.sessionmaker() as s:
            return await s.scalar(stmt)

    async def count(self, model: Any, *where: Any) -> int:
        async with self.sessionmaker() as s:
            return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    async def session(self) -> AsyncSession:
        return self.sessionmaker()


async def poll_until(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Wait until an async predicate (typically over the database, which has no change
    notification) returns something truthy; fail after `timeout`."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if loop.time() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s (last: {result!r})")
        await asyncio.sleep(interval)
