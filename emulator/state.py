"""What the emulator remembers: bots, simulated people and groups, the messages of every
dialog (with their edit history), stored files, pending updates, webhook attempts and
callback queries. Plain dataclasses; the rules that change them live in methods.py (the Bot
API side) and core.py (the simulated people's side)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class Signal:
    """Wakes everyone waiting for a change; each waiter re-checks its own condition.

    `notify()` is synchronous so any code path can call it; waiting never sleeps in a loop."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        for f in self._waiters:
            if not f.done():
                f.set_result(None)
        self._waiters.clear()

    def next(self) -> asyncio.Future[None]:
        """A future done at the next notify(), registered now (no notify in between is missed);
        pass it to `forget` when done with it."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        return fut

    def forget(self, fut: asyncio.Future[None]) -> None:
        self._waiters.discard(fut)
        fut.cancel()

    async def wait(self, timeout: float | None) -> None:
        """Return at the next notify() or after `timeout` seconds, whichever comes first."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)

    async def wait_for(self, predicate: Callable[[], T], timeout: float) -> T:
        """The first truthy value of `predicate()`, re-checked after every notify().
        Raises TimeoutError after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"condition not met within {timeout} s")
            await self.wait(left)


@dataclass(eq=False)
class SimUser:
    """A simulated person. Their private chat with any bot has chat id == user id."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    # False: the person never pressed Start, so bots get 403 until they write first.
    started: bool = True

    @property
    def chat_id(self) -> int:
        return self.id

    def to_api(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for k in ("last_name", "username", "language_code"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        return d

    def chat_api(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            d["last_name"] = self.last_name
        if self.username:
            d["username"] = self.username
        return d


@dataclass(eq=False)
class SimGroup:
    """A basic group (negative chat id) with several simulated members."""

    id: int
    title: str
    members: list[SimUser] = field(default_factory=list)

    @property
    def chat_id(self) -> int:
        return self.id

    def chat_api(self) -> dict[str, Any]:
        return {"id": self.id, "type": "group", "title": self.title}


@dataclass(eq=False)
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    kind: str  # "photo" | "document"
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0

    def photo_sizes(self) -> list[dict[str, Any]]:
        return [
            {
                "file_id": self.file_id,
                "file_unique_id": self.file_unique_id,
                "width": self.width,
                "height": self.height,
                "file_size": len(self.data),
            }
        ]

    def document_api(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
        }
        if self.file_name:
            d["file_name"] = self.file_name
        if self.mime_type:
            d["mime_type"] = self.mime_type
        return d

    def file_api(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }


@dataclass(frozen=True)
class Version:
    """One earlier state of an edited message."""

    text: str | None
    entities: list[dict[str, Any]]
    caption: str | None
    reply_markup: dict[str, Any] | None
    at: float


@dataclass(eq=False)
class ChatMessage:
    """A message in a dialog, from the bot (`outgoing`) or from a simulated person."""

    message_id: int
    bot_id: int
    chat: dict[str, Any]
    sender: dict[str, Any]
    outgoing: bool
    date: int
    sent_at: float  # monotonic clock of the emulator
    text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    photo: StoredFile | None = None
    document: StoredFile | None = None
    reply_markup: dict[str, Any] | None = None  # as sent: inline, reply keyboard, remove, force reply
    reply_to: ChatMessage | None = None
    edit_date: int | None = None
    history: list[Version] = field(default_factory=list)  # earlier versions, oldest first
    deleted: bool = False
    method: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # what the bot sent (decoded)

    @property
    def chat_id(self) -> int:
        return int(self.chat["id"])

    @property
    def inline_keyboard(self) -> list[list[dict[str, Any]]]:
        return list((self.reply_markup or {}).get("inline_keyboard") or [])

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """Every button of the current keyboard (inline or reply), row by row."""
        rows = (
            (self.reply_markup or {}).get("inline_keyboard")
            or (self.reply_markup or {}).get("keyboard")
            or []
        )
        return [b for row in rows for b in row]

    @property
    def button_texts(self) -> list[str]:
        return [b["text"] for b in self.buttons]

    def button(self, text: str | None = None, data: str | None = None) -> dict[str, Any] | None:
        for b in self.buttons:
            if (text is None or b.get("text") == text) and (data is None or b.get("callback_data") == data):
                return b
        return None

    @property
    def photo_bytes(self) -> bytes | None:
        return self.photo.data if self.photo else None

    @property
    def document_bytes(self) -> bytes | None:
        return self.document.data if self.document else None

    @property
    def edits(self) -> int:
        return len(self.history)

    def snapshot(self, at: float) -> Version:
        return Version(self.text, list(self.entities), self.caption, self.reply_markup, at)

    def to_api(self, *, with_reply: bool = True) -> dict[str, Any]:
        """The Message object Telegram would return or deliver."""
        d: dict[str, Any] = {
            "message_id": self.message_id,
            "from": self.sender,
            "chat": self.chat,
            "date": self.date,
        }
        if self.edit_date is not None:
            d["edit_date"] = self.edit_date
        if with_reply and self.reply_to is not None:
            d["reply_to_message"] = self.reply_to.to_api(with_reply=False)
        if self.text is not None:
            d["text"] = self.text
            if self.entities:
                d["entities"] = self.entities
        if self.photo is not None:
            d["photo"] = self.photo.photo_sizes()
        if self.document is not None:
            d["document"] = self.document.document_api()
        if self.caption:
            d["caption"] = self.caption
            if self.caption_entities:
                d["caption_entities"] = self.caption_entities
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            d["reply_markup"] = self.reply_markup
        return d

    def __repr__(self) -> str:
        body = (
            self.text
            if self.text is not None
            else f"<{'photo' if self.photo else 'document'}> {self.caption}"
        )
        who = "bot" if self.outgoing else "user"
        return (
            f"ChatMessage({who} #{self.message_id} in {self.chat_id}: {body!r}, buttons={self.button_texts})"
        )


@dataclass(eq=False)
class Dialog:
    """One bot's side of one chat: message ids count up per dialog, shared by both sides."""

    bot_id: int
    chat_id: int
    messages: list[ChatMessage] = field(default_factory=list)
    actions: list[tuple[float, str]] = field(default_factory=list)  # sendChatAction calls
    next_id: int = 1
    # Read cursors of the simulated reader: next_message() and next_change().
    read_sent: int = 0
    changes: list[tuple[str, ChatMessage]] = field(default_factory=list)  # ("sent"|"edited"|"deleted", msg)
    read_changes: int = 0
    # Notified when this dialog changes, so a reader waits on its own chat: the engine-wide
    # signal woke every waiting reader at every change (hundreds of readers in a load test).
    changed: Signal = field(default_factory=Signal, repr=False, compare=False)

    def change(self, kind: str, msg: ChatMessage) -> None:
        """Record a change for the reader of changes, and wake whoever waits on this chat."""
        self.changes.append((kind, msg))
        self.changed.notify()

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def find(self, message_id: int) -> ChatMessage | None:
        for m in reversed(self.messages):
            if m.message_id == message_id:
                return m
        return None

    def bot_messages(self, include_deleted: bool = False) -> list[ChatMessage]:
        return [m for m in self.messages if m.outgoing and (include_deleted or not m.deleted)]


@dataclass(eq=False)
class QueuedUpdate:
    payload: dict[str, Any]
    forced: bool = False  # a redelivery: returned once even if its id is below the offset
    delivered: bool = False

    @property
    def update_id(self) -> int:
        return int(self.payload["update_id"])


@dataclass
class Webhook:
    url: str
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    ip_address: str | None = None
    has_custom_certificate: bool = False


@dataclass(frozen=True)
class WebhookAttempt:
    update_id: int
    at: float
    status: int | None  # HTTP status, None when the request failed
    error: str | None
    secret_token: str | None  # the header value sent


@dataclass
class CallbackAnswer:
    query_id: str
    user_id: int
    message_id: int | None
    data: str | None
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int
    at: float


@dataclass(eq=False)
class CallbackQuery:
    id: str
    user: SimUser
    message: ChatMessage
    data: str | None
    answer: CallbackAnswer | None = None
    at: float = 0.0  # the emulator's clock when the button was pressed


@dataclass(eq=False)
class SimBot:
    """A bot known to the emulator (by its token; the id is the number before the colon)."""

    token: str
    id: int
    username: str
    first_name: str
    next_update_id: int = 1000
    queue: list[QueuedUpdate] = field(default_factory=list)
    all_updates: dict[int, dict[str, Any]] = field(default_factory=dict)  # every update made, by id
    allowed_updates: list[str] | None = None
    webhook: Webhook | None = None
    webhook_attempts: list[WebhookAttempt] = field(default_factory=list)
    last_error_date: int | None = None
    last_error_message: str | None = None
    commands: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    short_description: dict[str, str] = field(default_factory=dict)
    description: dict[str, str] = field(default_factory=dict)
    poll_generation: int = 0
    waiting_polls: int = 0  # getUpdates calls waiting for an update right now
    updates_changed: Signal = field(default_factory=Signal)
    callbacks: dict[str, CallbackQuery] = field(default_factory=dict)
    closed: int = 0
    logged_out: int = 0

    def user_api(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": True, "first_name": self.first_name, "username": self.username}

    def me(self) -> dict[str, Any]:
        return {
            **self.user_api(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }


@dataclass(frozen=True)
class Violation:
    """A call that broke the Bot API contract: a bug in the bot."""

    bot_id: int | None
    method: str
    params: dict[str, Any]
    reason: str
    description: str  # what the bot was told


@dataclass(frozen=True)
class ErrorRecord:
    """An ordinary Telegram error answer (the bot must cope with these)."""

    bot_id: int | None
    method: str
    params: dict[str, Any]
    code: int
    description: str


def now_unix() -> int:
    return int(time.time())
