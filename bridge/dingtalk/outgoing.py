"""What the bot sends through the bridge, kept until DingTalk has it.

The bot gets its "ok" from the front as soon as the change is made in the chat; DingTalk hears
of it later, from the relay. A bridge killed in between must not lose it, so the front answers a
call only once the change it made is kept in the store (`dingtalk_outgoing`, through the hook
`Front.answering`). The relay passes the changes on in the order the bot made them and removes
a row once DingTalk accepted it; at start the rows left are passed on first.

What "once" costs: a kill after DingTalk accepted a robot message and before its row went sends
it again at the next start (at least once: batchSend takes no idempotency key). A card is created
with the outTrackId kept in its row, so a second create is refused by DingTalk and the card is
updated instead (once). A message sent in parts (a photo, then its caption) remembers in memory
which parts went, so a retry after a throttle does not send the photo twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bridge.dingtalk.openapi import DingTalkError
from emulator.server import Emulator
from emulator.spec import Upload
from emulator.state import ChatMessage, SimBot, SimUser
from storage import dingtalk as store
from storage.db import make_engine, make_sessionmaker

RETRY_FIRST = 1.0  # seconds before the first retry of a change DingTalk throttled or missed
RETRY_MAX = 300.0  # the longest wait between retries


@dataclass
class Outgoing:
    """One change of the bot's (sent, edited, deleted) on its way to DingTalk."""

    row_id: int | None  # its row in `dingtalk_outgoing` (None: the store was down, kept in memory only)
    kind: str
    msg: ChatMessage
    card_id: str  # the outTrackId a card made for it gets (kept in the row: a re-send is the same card)
    done: dict[str, Any] = field(default_factory=dict)  # parts DingTalk already has (retries skip them)
    tries: int = 0


def snapshot(msg: ChatMessage, card_id: str) -> tuple[dict[str, Any], bytes | None]:
    """The message as the bot made it, for its row; a photo's or document's bytes apart."""
    kept: dict[str, Any] = {
        "message_id": msg.message_id,
        "date": msg.date,
        "text": msg.text,
        "entities": msg.entities,
        "caption": msg.caption,
        "caption_entities": msg.caption_entities,
        "reply_markup": msg.reply_markup,
        "card_id": card_id,
    }
    media = msg.photo or msg.document
    if media is not None:
        kept["media"] = {"kind": media.kind, "file_name": media.file_name, "mime_type": media.mime_type}
    return kept, (media.data if media is not None else None)


def restore(
    front: Emulator, bot: SimBot, user: SimUser, kept: dict[str, Any], media: bytes | None = None
) -> ChatMessage:
    """A bot message of an earlier run, as the front holds messages (not yet in a dialog)."""
    msg = ChatMessage(
        message_id=int(kept["message_id"]),
        bot_id=bot.id,
        chat=user.chat_api(),
        sender=bot.user_api(),
        outgoing=True,
        date=int(kept.get("date") or 0),
        sent_at=front.clock(),
        text=kept.get("text"),
        entities=list(kept.get("entities") or []),
        caption=kept.get("caption"),
        caption_entities=list(kept.get("caption_entities") or []),
        reply_markup=kept.get("reply_markup"),
    )
    about = kept.get("media")
    if about and media is not None:
        stored = front.files.add(
            media, about["kind"], file_name=about.get("file_name"), mime_type=about.get("mime_type")
        )
        if stored.kind == "photo":
            msg.photo = stored
        else:
            msg.document = stored
    return msg


async def open_outbox(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> tuple[async_sessionmaker[AsyncSession], AsyncEngine | None]:
    """Where the bot's changes are kept, and the engine opened for it (None: the bot's own).
    PostgreSQL: the bot's database (the bot's open transaction locks rows, not the table).
    SQLite: a file of its own next to the bot's database, `<file>-dingtalk-outbox`: the bot
    holds SQLite's one write lock for a whole update (BEGIN IMMEDIATE), its Bot API calls
    included, so the bridge could not write there while the bot waits for its answer."""
    engine: AsyncEngine = sessionmaker.kw["bind"]
    if engine.dialect.name != "sqlite":
        return sessionmaker, None
    path = engine.url.database
    url = (
        f"sqlite+aiosqlite:///{path}-dingtalk-outbox"
        if path and path != ":memory:"
        else "sqlite+aiosqlite://"
    )
    apart = make_engine(url)
    await store.create_outbox_apart(apart)
    return make_sessionmaker(apart), apart


def retry_in(tries: int) -> float:
    """Seconds before the next try of a change that failed `tries` times (doubling, capped)."""
    return min(RETRY_FIRST * 2 ** max(tries - 1, 0), RETRY_MAX)


def passing(e: BaseException) -> bool:
    """A failure that passes (try the change again later): DingTalk throttled the person or the
    app, DingTalk or the network failed, the store was down. Anything else is DingTalk refusing
    the change for good (logged, not retried)."""
    if isinstance(e, DingTalkError):
        return e.status == 429 or e.status >= 500 or "QpsLimit" in e.code
    return isinstance(e, aiohttp.ClientError | TimeoutError | OSError | SQLAlchemyError)


class Front(Emulator):
    """The emulator's Bot API front with one hook: `answering` runs after each call and before
    its answer goes back, so what the call changed is kept before the bot has its "ok"."""

    def __init__(self, *args: Any, answering: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answering = answering

    async def execute(
        self, token: str, method: str, raw: dict[str, Any], files: dict[str, Upload] | None = None
    ) -> tuple[int, dict[str, Any] | str]:
        answer = await super().execute(token, method, raw, files)
        # Shielded: a bot that hangs up mid-call must not leave its change unkept.
        await asyncio.shield(self.answering())
        return answer
