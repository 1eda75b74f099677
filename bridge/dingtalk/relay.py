"""The DingTalk bridge: the emulator's Bot API front (request parsing, validation against the
spec, update queue, message ids, files; `emulator.server.Emulator`) with DingTalk people in it.

In: a DingTalk 1:1 message (Stream mode, the real `dingtalk-stream` client) becomes what the
person "does" in the front (`send_text`, `send_photo`, `press`), which queues the Bot API update
the bot polls for. The frame is acked only after it is kept in the store (`storage.dingtalk`)
and made an update; it stays kept until the bot confirms the update (getUpdates offset), so a
bridge restart in between replays it. A frame lost with the connection comes again; the SDK
drops a repeated messageId, and so do `_seen` and the store here. The people are kept in the
store too: a person has the same Bot API id on every start, and the bot can write to everyone
the bridge has ever seen.

Out: every change the bot makes in a DingTalk person's chat (sent, edited, deleted) is kept in
the store before the bot gets its "ok" (`outgoing.py`) and relayed to DingTalk in order: a
message with an inline keyboard becomes a card whose buttons call back, its edits update the
card; other text goes as a robot markdown message; photos and documents go through media
upload. A change DingTalk throttled (or missed) is tried again later, the person's next changes
waiting behind it. README "Where DingTalk cannot..." lists the choices.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dingtalk_stream
from dingtalk_stream import AckMessage, CallbackHandler, CallbackMessage, ChatbotMessage, Credential
from dingtalk_stream.card_callback import CardCallbackMessage
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bridge.dingtalk import invites
from bridge.dingtalk.markdown import escape, to_markdown
from bridge.dingtalk.openapi import Button, DingTalkApi, DingTalkError, new_card_id
from bridge.dingtalk.outgoing import (
    Front,
    Outgoing,
    open_outbox,
    passing,
    restore,
    retry_in,
    snapshot,
)
from content.i18n import Texts, texts
from emulator.state import CallbackAnswer, ChatMessage, SimUser
from storage import dingtalk as store
from storage.db import utcnow

log = logging.getLogger(__name__)

BOT_MESSAGE_TOPIC = ChatbotMessage.TOPIC
CARD_CALLBACK_TOPIC = CallbackHandler.TOPIC_CARD_CALLBACK
SEEN_KEEP = 10_000  # recent DingTalk message ids remembered against redelivery
ID_BLOCK = 10_000  # message ids reserved in the store at a time, per chat
STOP_DRAIN = 10.0  # seconds a stop waits for the relay to pass on what the bot sent
# DingTalk's answer to a second card with an outTrackId it has (the stand-in's code; DingTalk's
# page on it was not found: README §7).
CARD_EXISTS = "param.outTrackIdDuplicate"
CARD_KEEP = timedelta(days=90)  # cards and plain messages older than this are forgotten


def stable_id(dingtalk_user_id: str) -> int:
    """A positive Bot API user id for a DingTalk userId: the same on every start, far from the
    emulator's own ids, below 2**52 as Telegram promises."""
    digest = int(hashlib.sha256(dingtalk_user_id.encode()).hexdigest()[:12], 16)  # < 2**48
    return 2**50 + digest


def _new_id(dingtalk_id: str, attempt: int) -> int:
    # The stable id; in the unlikely case it is taken, the next candidate.
    return stable_id(dingtalk_id if attempt == 0 else f"{dingtalk_id}#{attempt}")


@dataclass
class Person:
    dingtalk_id: str
    user: SimUser
    cards: dict[int, str] = field(default_factory=dict)  # Bot API message id -> card outTrackId
    plain: dict[int, str] = field(default_factory=dict)  # Bot API message id -> processQueryKey
    tips: dict[int, str] = field(default_factory=dict)  # message id -> the card's last toast
    menu: str | None = None  # digest of the command menu last sent (kept in the store)
    ids_until: int = 0  # message ids of the chat are reserved in the store below this
    outbox: deque[Outgoing] = field(default_factory=deque)  # the bot's changes, kept, not yet relayed
    not_before: float = 0.0  # loop time: the first change of the outbox waits until then (a retry)


class _Inbound(CallbackHandler):
    """Acks a frame only once it is kept in the store (then a restart replays it) or known to
    be a repeat; a failure leaves it unacked, so DingTalk sends it again."""

    def __init__(self, take: Callable[[str, str, dict[str, Any]], Awaitable[None]], topic: str) -> None:
        super().__init__()
        self._take, self._topic = take, topic

    async def process(self, message: CallbackMessage) -> tuple[int, str]:
        try:
            await self._take(self._topic, message.headers.message_id, message.data)
        except Exception:  # no ack: DingTalk sends the frame again
            log.exception("DingTalk frame %s not taken", message.headers.message_id)
            return AckMessage.STATUS_SYSTEM_EXCEPTION, "not taken"
        return AckMessage.STATUS_OK, "OK"


class DingTalkBridge:
    """`branchbot bridge dingtalk`: a local Bot API (the front) whose people are on DingTalk.

    The store (`storage.dingtalk`) keeps the people, so ids and the chats the bot may write to
    survive a restart, and every frame acked to DingTalk until the bot confirmed its update."""

    def __init__(
        self,
        api: DingTalkApi,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        bot_token: str,
        bot_username: str = "branchbot_bot",
        bot_name: str = "支部助手",
        host: str = "127.0.0.1",
        port: int = 0,
        outbox: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.api = api
        self.sessionmaker = sessionmaker
        # Where the bot's changes are kept until DingTalk has them (None: `open_outbox` decides).
        self.outbox = outbox
        self._outbox_engine: AsyncEngine | None = None
        self.front = Front(host=host, port=port, auto_register_bots=False, answering=self._keep_outgoing)
        self.bot = self.front.add_bot(bot_token, username=bot_username, first_name=bot_name)
        self.people: dict[str, Person] = {}  # DingTalk userId -> person
        self._by_user: dict[int, Person] = {}
        self._cards: dict[str, tuple[Person, int]] = {}  # outTrackId -> (person, message id)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._inbound = asyncio.Lock()
        self._unconfirmed: set[int] = set()  # update ids of kept frames the bot has not confirmed
        self._menus: dict[str, tuple[Person, list[str]]] = {}  # menu card outTrackId -> commands
        self._commands_seen: dict[tuple[str, str], list[dict[str, Any]]] = {}  # bot.commands, relayed
        self._relaying = False  # the relay is telling DingTalk something now
        self._keeping = asyncio.Lock()  # one writer of the bot's changes to the store at a time
        self.draining = False  # stopping: what the bot sent is passed on, then the relay ends
        self._stream: dingtalk_stream.DingTalkStreamClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.relay_errors: list[str] = []

    @property
    def base_url(self) -> str:
        """TELEGRAM_API_URL for the bot."""
        return self.front.base_url

    async def start(self) -> DingTalkBridge:
        now = utcnow()
        async with self.sessionmaker() as s:
            for row in await store.people(s):
                who = self._add_person(row.dingtalk_id, row.user_id, row.name, row.language_code)
                who.menu = row.menu
                await self._reserve_ids(s, who)
            await store.forget_cards(s, now - CARD_KEEP)
            await store.forget_plain_before(s, now - CARD_KEEP)
            for card in await store.cards(s, now - CARD_KEEP):
                if card.kind == "menu":
                    self._restore_menu(card.out_track_id, card.dingtalk_id, list(card.message["commands"]))
                else:
                    self._restore_card(
                        card.out_track_id, card.dingtalk_id, card.message_id, dict(card.message)
                    )
            for plain in await store.plain(s, now - CARD_KEEP):
                self._restore_plain(plain.process_query_key, plain.dingtalk_id, dict(plain.message))
            last = await store.last_update_id(s)
            waiting = [(f.topic, f.message_id, dict(f.data)) for f in await store.waiting(s)]
            await s.commit()
        if self.outbox is None:
            self.outbox, self._outbox_engine = await open_outbox(self.sessionmaker)
        async with self.outbox() as s:
            for row in await store.outgoing(s):  # the bot had its "ok"; DingTalk has not had them
                if not self._restore_outgoing(
                    row.id, row.dingtalk_id, row.kind, dict(row.message), row.media
                ):
                    await store.passed_on(s, row.id)  # their record was erased meanwhile
            await s.commit()
        if last is not None:  # count on, so the bot's getUpdates offset skips nothing new
            self.bot.next_update_id = max(self.bot.next_update_id, last + 1)
        for topic, message_id, data in waiting:  # kept and acked before a restart: not lost
            self._first_time(message_id)
            await self._translate_kept(topic, message_id, data)
        await self.front.start()
        client = dingtalk_stream.DingTalkStreamClient(Credential(self.api.app_key, self.api.app_secret))
        client.register_callback_handler(BOT_MESSAGE_TOPIC, _Inbound(self._take, BOT_MESSAGE_TOPIC))
        client.register_callback_handler(CARD_CALLBACK_TOPIC, _Inbound(self._take, CARD_CALLBACK_TOPIC))
        self._stream = client
        # The stream's task first: stop() cancels it and lets the others end on their own.
        self._tasks = [
            asyncio.create_task(client.start()),
            asyncio.create_task(self._relay()),
            asyncio.create_task(self._confirm()),
        ]
        return self

    async def stop(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
        # No new calls from the bot. What it already sent (it has its "ok") still goes to
        # DingTalk: the relay passes on everything left, then ends, as does the confirmer. They
        # end on their own: a task cancelled in the middle of a database call would keep the
        # SQLite connection, and Python 3.11's wait_for can swallow a cancel that meets a
        # wake-up. Only the stream's task (done by now) is cancelled.
        await self.front.stop()
        self.draining = True
        self.front.changed.notify()
        if self._tasks:
            self._tasks[0].cancel()
            _done, left = await asyncio.wait(self._tasks[1:], timeout=STOP_DRAIN)
            if left:
                log.warning("stopping with bot messages not yet relayed to DingTalk")
            for task in left:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.api.close()
        if self._outbox_engine is not None:
            await self._outbox_engine.dispose()
            self._outbox_engine, self.outbox = None, None

    async def __aenter__(self) -> DingTalkBridge:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- people ----
    async def _reserve_ids(self, s: AsyncSession, who: Person) -> None:
        """The next block of message ids for the person's chat (kept in the store): a restart
        numbers on above every id of an earlier run, so no id the bot kept names another
        message."""
        dialog = self.front.dialog(self.bot.id, who.user.id)
        first = await store.reserve_message_ids(s, who.dingtalk_id, ID_BLOCK)
        if first is None:  # their record was erased (privacy): number on, in memory only
            first = max(dialog.next_id, who.ids_until)
        dialog.next_id = max(dialog.next_id, first)
        who.ids_until = first + ID_BLOCK

    async def _top_up_ids(self, who: Person) -> None:
        if self.front.dialog(self.bot.id, who.user.id).next_id + ID_BLOCK // 2 < who.ids_until:
            return
        async with self.sessionmaker() as s:
            await self._reserve_ids(s, who)
            await s.commit()

    def _restore_card(
        self, out_track_id: str, dingtalk_id: str, message_id: int, kept: dict[str, Any]
    ) -> None:
        """A card of an earlier run, back in the front as the bot's message it shows: a press
        on it reaches the bot, and the bot can edit it."""
        who = self.people.get(dingtalk_id)
        if who is None:
            return
        self._restore_message(who, {**kept, "message_id": message_id})
        who.cards[message_id] = out_track_id
        self._cards[out_track_id] = (who, message_id)

    def _restore_menu(self, out_track_id: str, dingtalk_id: str, commands: list[str]) -> None:
        """A command-menu card of an earlier run: its buttons still type their commands."""
        who = self.people.get(dingtalk_id)
        if who is not None:
            self._menus[out_track_id] = (who, commands)

    def _restore_plain(self, process_query_key: str, dingtalk_id: str, kept: dict[str, Any]) -> None:
        """A plain robot message of an earlier run, back in the front: the bot can edit it (a
        correction follows) and delete it (recalled)."""
        who = self.people.get(dingtalk_id)
        if who is None:
            return
        message_id = int(kept["message_id"])
        if self.front.dialog(self.bot.id, who.user.id).find(message_id) is None:  # not a card since
            self._restore_message(who, kept)
        who.plain[message_id] = process_query_key

    def _restore_message(self, who: Person, kept: dict[str, Any]) -> ChatMessage:
        dialog = self.front.dialog(self.bot.id, who.user.id)
        msg = restore(self.front, self.bot, who.user, kept)
        dialog.messages.append(msg)
        dialog.next_id = max(dialog.next_id, msg.message_id + 1)
        return msg

    def _restore_outgoing(
        self, row_id: int, dingtalk_id: str, kind: str, kept: dict[str, Any], media: bytes | None
    ) -> bool:
        """A change the bot made before a restart that DingTalk has not had: back in the person's
        outbox, in order, and in the front's chat as the bot last made it. False: the person is
        not kept any more."""
        who = self.people.get(dingtalk_id)
        if who is None:
            return False
        msg = restore(self.front, self.bot, who.user, kept, media)
        dialog = self.front.dialog(self.bot.id, who.user.id)
        shown = dialog.find(msg.message_id)
        if shown is None:
            shown = msg
            dialog.messages.append(shown)
            dialog.next_id = max(dialog.next_id, msg.message_id + 1)
        else:
            for name in ("text", "entities", "caption", "caption_entities", "reply_markup"):
                setattr(shown, name, getattr(msg, name))
        shown.deleted = kind == "deleted"
        who.outbox.append(Outgoing(row_id, kind, msg, str(kept.get("card_id") or new_card_id())))
        return True

    async def _keep_card(self, who: Person, msg: ChatMessage) -> None:
        card = who.cards[msg.message_id]
        async with self.sessionmaker() as s:
            await store.keep_card(s, card, who.dingtalk_id, msg.message_id, _shown(msg), utcnow())
            await s.commit()

    async def _keep_plain(self, who: Person, msg: ChatMessage) -> None:
        async with self.sessionmaker() as s:
            await store.keep_plain(
                s, who.plain[msg.message_id], who.dingtalk_id, msg.message_id, _shown(msg), utcnow()
            )
            await s.commit()

    def _add_person(self, dingtalk_id: str, user_id: int, name: str, language_code: str) -> Person:
        user = self.front.add_user(name, id=user_id, language_code=language_code)
        found = Person(dingtalk_id, user)
        self.people[dingtalk_id] = found
        self._by_user[user.id] = found
        return found

    async def person(self, dingtalk_id: str, nick: str) -> Person:
        """The person for a DingTalk userId, from the store (a new one is kept there first)."""
        found = self.people.get(dingtalk_id)
        if found is not None and found.user.first_name == nick:
            return found
        # DingTalk tells no language; the branches' members read Chinese (the bot lets a
        # person change it with /lang).
        language = found.user.language_code or "zh" if found is not None else "zh"
        async with self.sessionmaker() as s:
            row = await store.remember(s, dingtalk_id, nick, language, utcnow(), _new_id)
            user_id, name, language = row.user_id, row.name, row.language_code
            if found is None:
                found = self._add_person(dingtalk_id, user_id, name, language)
                await self._reserve_ids(s, found)
            await s.commit()
        found.user.first_name = name  # DingTalk reports a new name: the next update carries it
        return found

    # ---- in ----
    def _first_time(self, message_id: str) -> bool:
        if message_id in self._seen:
            return False
        self._seen[message_id] = None
        while len(self._seen) > SEEN_KEEP:
            self._seen.popitem(last=False)
        return True

    async def _take(self, topic: str, message_id: str, data: dict[str, Any]) -> None:
        """A frame from the stream: kept in the store, then made a Bot API update. Returning
        (the ack) means it is kept; a repeat of a kept frame is dropped."""
        # The SDK runs each frame in its own task: one at a time, in arrival order, so one
        # person's messages reach the bot in the order they were written.
        async with self._inbound:
            await self._take_one(topic, message_id, data)

    async def _take_one(self, topic: str, message_id: str, data: dict[str, Any]) -> None:
        if not self._first_time(message_id):
            return
        try:
            async with self.sessionmaker() as s:
                fresh = await store.keep_frame(s, message_id, topic, data, utcnow())
                await s.commit()
        except Exception:
            self._seen.pop(message_id, None)  # not kept: the redelivery must be taken
            raise
        if not fresh:
            return
        try:
            update_id = await self._translate(topic, data)
        except Exception:
            # Not made an update (a download failed, say): forget it and leave it unacked, so
            # DingTalk sends it again.
            self._seen.pop(message_id, None)
            async with self.sessionmaker() as s:
                await store.forget_frame(s, message_id)
                await s.commit()
            raise
        await self._became(message_id, update_id)

    async def _translate_kept(self, topic: str, message_id: str, data: dict[str, Any]) -> None:
        """At start-up: a frame acked before a restart but never confirmed by the bot."""
        try:
            update_id = await self._translate(topic, data)
        except Exception:  # stays kept: the next start tries again
            log.exception("DingTalk frame %s kept, not yet an update", message_id)
            return
        await self._became(message_id, update_id)

    async def _became(self, message_id: str, update_id: int | None) -> None:
        async with self.sessionmaker() as s:
            await store.became(s, message_id, update_id)
            await s.commit()
        if update_id is not None:
            self._unconfirmed.add(update_id)

    async def _translate(self, topic: str, data: dict[str, Any]) -> int | None:
        """The update a frame becomes (its id), or None when it becomes none."""
        if topic == CARD_CALLBACK_TOPIC:
            return await self._on_card(CardCallbackMessage.from_dict(data))
        return await self._on_message(ChatbotMessage.from_dict(data))

    async def _on_message(self, msg: ChatbotMessage) -> int | None:
        if msg.conversation_type != "1":
            return None  # groups are not served
        who = await self.person(msg.sender_staff_id, msg.sender_nick or msg.sender_staff_id)
        await self._top_up_ids(who)
        if msg.message_type == "text" and msg.text is not None:
            update = await self.front.send_text(who.user, (msg.text.content or "").strip())
        elif msg.message_type == "picture" and msg.image_content is not None:
            data = await self.api.download(msg.image_content.download_code)
            update = await self.front.send_photo(who.user, data)
        elif msg.message_type == "file":
            content = msg.extensions.get("content") or {}
            data = await self.api.download(content["downloadCode"])
            update = await self.front.send_document(who.user, data, content.get("fileName") or "file")
        else:
            update = await self.front.send_text(who.user, " ".join(msg.get_text_list() or []) or "?")
        return int(update["update_id"])

    async def _on_card(self, press: CardCallbackMessage) -> int | None:
        action = (press.content.get("cardPrivateData") or {}).get("actionIds") or []
        menu = self._menus.get(press.card_instance_id)
        if menu is not None and action:  # a command of the menu card: typed for the person
            who, commands = menu
            n = int(action[0][1:]) if action[0][1:].isdigit() else -1
            if 0 <= n < len(commands):
                return int((await self.front.send_text(who.user, f"/{commands[n]}"))["update_id"])
            return None
        found = self._cards.get(press.card_instance_id)
        if found is None:
            return None  # a card of an earlier run: nothing to press
        who, message_id = found
        msg = self.front.dialog(self.bot.id, who.user.id).find(message_id)
        if msg is None or not action:
            return None
        invite = self._invite(msg)
        if invite is not None and action[0] == invites.start_button_id(message_id):
            return await self._join(press.user_id or who.dingtalk_id, invite)
        if press.user_id and press.user_id != who.dingtalk_id:
            return None  # a forwarded card: only its invite button acts for someone else
        button = _pressed(msg, action[0])
        if button is None:
            return None
        if "callback_data" in button:
            update = await self.front.press(who.user, msg, data=str(button["callback_data"]))
        else:  # a reply keyboard's button: the person "types" its text, as on Telegram
            update = await self.front.press(who.user, msg, text=str(button["text"]))
        return int(update["update_id"])

    async def _confirm(self) -> None:
        """Frames whose updates the bot confirmed (getUpdates offset) are done in the store."""

        def taken() -> set[int] | bool:
            queued = {q.update_id for q in self.bot.queue}
            done = {u for u in self._unconfirmed if u not in queued}
            return done or self.draining

        while True:
            try:
                done = await self.front.changed.wait_for(taken, timeout=3600)
            except TimeoutError:
                continue
            if done is True:
                return  # stopping: what is not confirmed stays kept for the next start
            try:
                async with self.sessionmaker() as s:
                    await store.confirmed(s, sorted(done))
                    await s.commit()
            except Exception:  # the store is down: try again on the next change
                log.exception("could not mark DingTalk frames confirmed")
                continue
            self._unconfirmed -= done

    # ---- out ----
    async def _keep_outgoing(self) -> None:
        """After each Bot API call, before its answer: the changes it made in the people's chats
        are kept in the store and queued for the relay, in the order they were made. If the store
        fails they are still relayed (logged): the bot's call itself has succeeded."""
        async with self._keeping:
            new: list[tuple[Person, str, ChatMessage]] = []
            for who in self.people.values():
                dialog = self.front.dialog(self.bot.id, who.user.id)
                if dialog.changes:
                    new += [(who, kind, msg) for kind, msg in dialog.changes[dialog.read_changes :]]
                    dialog.changes.clear()  # taken: the bridge runs for months
                    dialog.read_changes = 0
            if not new:
                return
            card_ids = [new_card_id() for _ in new]
            rows = [
                (who.dingtalk_id, kind, *snapshot(msg, card_id))
                for (who, kind, msg), card_id in zip(new, card_ids, strict=True)
            ]
            row_ids: list[int | None] = [None] * len(new)
            try:
                if self.outbox is None:
                    raise RuntimeError("the bridge has not started")
                async with self.outbox() as s:
                    row_ids = list(await store.keep_outgoing(s, rows, utcnow()))
                    await s.commit()
            except Exception as e:
                self.relay_errors.append(f"keep: {e}")
                log.exception("the bot's changes are not kept; relayed from memory only")
            for (who, kind, msg), card_id, row_id in zip(new, card_ids, row_ids, strict=True):
                # The message as this change left it, as its row keeps it: a later edit in the
                # front must not change what an earlier change, not yet relayed, shows.
                who.outbox.append(Outgoing(row_id, kind, copy.copy(msg), card_id))
        self.front.changed.notify()

    def _next_work(self) -> tuple[str, Any] | None:
        """The next thing to tell DingTalk: a change in a chat, a callback answer, new menus."""
        work = self._take_work()
        self._relaying = work is not None
        return work

    def _take_work(self) -> tuple[str, Any] | None:
        now = asyncio.get_running_loop().time()
        for who in self.people.values():
            if who.outbox and who.not_before <= now:
                return "change", (who, who.outbox[0])  # leaves the outbox once DingTalk has it
        if self.front.callback_answers:
            # Taken off the front's list: the bridge runs for months, the list would only grow.
            return "answer", self.front.callback_answers.pop(0)
        if self.bot.commands != self._commands_seen:
            self._commands_seen = copy.deepcopy(self.bot.commands)
            return "menus", None
        if self.draining:
            return "closing", None
        return None

    def _due_in(self) -> float:
        """Seconds until the first retry is due (an hour if none waits)."""
        now = asyncio.get_running_loop().time()
        waits = [who.not_before - now for who in self.people.values() if who.outbox and who.not_before > now]
        return max(min(waits, default=3600.0), 0.0)

    async def _relay(self) -> None:
        while True:
            try:
                what, item = await self.front.changed.wait_for(self._next_work, timeout=self._due_in())
            except TimeoutError:
                continue  # a quiet hour, or a retry is due
            if what == "closing":
                self._relaying = False
                return
            try:
                if what == "change":
                    await self._pass_on(*item)
                elif what == "answer":
                    await self._answer(item)
                else:
                    await self._send_menus()
            except Exception as e:
                # Logged and counted; the bot already has its answer, as with a Telegram
                # message the person deleted.
                self.relay_errors.append(f"{what}: {e}")
                log.warning("DingTalk refused a %s: %s", what, e, exc_info=not isinstance(e, DingTalkError))
            finally:
                self._relaying = False
                self.front.changed.notify()  # settled() may be waiting

    async def _pass_on(self, who: Person, out: Outgoing) -> None:
        """One change to DingTalk. Accepted (or refused for good): its row goes. A failure that
        passes (throttled, DingTalk or the network down): it stays first in the person's outbox
        and is tried again later, waiting longer each time; their next changes wait behind it."""
        try:
            await self._send(who, out)
        except Exception as e:
            if passing(e):
                out.tries += 1
                who.not_before = asyncio.get_running_loop().time() + retry_in(out.tries)
                self.relay_errors.append(f"change (try {out.tries}): {e}")
                log.warning(
                    "DingTalk did not take a change for %s (try %s): %s", who.dingtalk_id, out.tries, e
                )
                return
            await self._passed_on(who, out)  # refused for good: not sent again (the relay logs it)
            raise
        await self._passed_on(who, out)
        await self._top_up_ids(who)

    async def _passed_on(self, who: Person, out: Outgoing) -> None:
        who.outbox.popleft()
        who.not_before = 0.0
        if out.row_id is not None and self.outbox is not None:
            # A store failure here: the next start sends it once more.
            async with self.outbox() as s:
                await store.passed_on(s, out.row_id)
                await s.commit()

    def _has_work(self) -> bool:
        return (
            self._relaying
            or bool(self.front.callback_answers)
            or self.bot.commands != self._commands_seen
            or any(who.outbox for who in self.people.values())
        )

    async def settled(self, timeout: float) -> None:
        """Wait until everything the bot did so far is relayed to DingTalk (the demo waits so
        before showing a reply)."""
        await self.front.changed.wait_for(lambda: not self._has_work(), timeout)

    async def _answer(self, answer: CallbackAnswer) -> None:
        """answerCallbackQuery: DingTalk has no toast or alert a robot can show. An alert (a
        refusal, an error) becomes a message; a toast becomes the pressed card's tips line."""
        who = self._by_user.get(answer.user_id)
        if who is None or answer.message_id is None:
            return
        if answer.text and answer.show_alert:
            await self.api.send(
                who.dingtalk_id, "sampleMarkdown", {"title": answer.text[:30], "text": escape(answer.text)}
            )
            return
        card = who.cards.get(answer.message_id)
        tip = answer.text or ""
        if card is None or who.tips.get(answer.message_id, "") == tip:
            return
        who.tips[answer.message_id] = tip
        await self.api.update_card_tips(card, escape(tip))

    def is_menu(self, out_track_id: str) -> bool:
        """A command-menu card of this run (the demo shows it without announcing it)."""
        return out_track_id in self._menus

    async def _send_menus(self) -> None:
        """setMyCommands: DingTalk robots have no command menu the app can set. Each person
        whose commands changed gets a card listing them, a button per command that types it."""
        for who in list(self.people.values()):
            commands = self.front.menu(who.user)
            digest = hashlib.sha256(json.dumps(commands, sort_keys=True).encode()).hexdigest()
            if digest == who.menu:
                continue
            if commands:
                text = "  \n".join(escape(f"/{c['command']} — {c['description']}") for c in commands)
                buttons = [Button(f"/{c['command']}", id=f"c{n}") for n, c in enumerate(commands)]
                card = new_card_id()  # known as a menu before DingTalk shows it
                names = [str(c["command"]) for c in commands]
                self._menus[card] = (who, names)
                async with self.sessionmaker() as s:  # a press after a restart still types it
                    await store.keep_card(
                        s, card, who.dingtalk_id, 0, {"commands": names}, utcnow(), kind="menu"
                    )
                    await s.commit()
                await self.api.send_card(who.dingtalk_id, text, buttons, out_track_id=card)
            async with self.sessionmaker() as s:
                await store.set_menu(s, who.dingtalk_id, digest)
                await s.commit()
            who.menu = digest

    async def _send(self, who: Person, out: Outgoing) -> None:
        """One change, told to DingTalk. Each part DingTalk took is noted on `out`, so a retry
        after a failure sends only what is left."""
        kind, msg = out.kind, out.msg
        text = to_markdown(msg.text, msg.entities) if msg.text is not None else ""
        buttons = _buttons(msg)
        invite = self._invite(msg)
        if invite is not None and (kind == "sent" or msg.message_id in who.cards):
            await self._send_invite(who, out, invite)
            return
        if kind == "sent":
            if msg.photo is not None:
                photo = msg.photo
                media = await self._once(
                    out, "upload", lambda: self.api.upload("image", photo.data, "photo.png", "image/png")
                )
                await self._once(
                    out,
                    "media",
                    lambda: self.api.send(who.dingtalk_id, "sampleImageMsg", {"photoURL": media}),
                )
                text = to_markdown(msg.caption, msg.caption_entities)
            elif msg.document is not None:
                doc = msg.document
                name = doc.file_name or "file"
                media = await self._once(
                    out,
                    "upload",
                    lambda: self.api.upload(
                        "file", doc.data, name, doc.mime_type or "application/octet-stream"
                    ),
                )
                ext = name.rsplit(".", 1)[-1].lower() if "." in name else "file"
                await self._once(
                    out,
                    "media",
                    lambda: self.api.send(
                        who.dingtalk_id, "sampleFile", {"mediaId": media, "fileName": name, "fileType": ext}
                    ),
                )
                text = to_markdown(msg.caption, msg.caption_entities)
            if buttons:
                await self._new_card(who, out, text or " ", buttons)
            elif text:
                who.plain[msg.message_id] = await self._once(
                    out,
                    "text",
                    lambda: self.api.send(
                        who.dingtalk_id, "sampleMarkdown", {"title": _title(msg), "text": text}
                    ),
                )
                await self._keep_plain(who, msg)
        elif kind == "edited":
            card = who.cards.get(msg.message_id)
            if card is not None:
                await self.api.update_card(
                    card,
                    text or to_markdown(msg.caption, msg.caption_entities),
                    buttons,
                    tips=escape(who.tips.get(msg.message_id, "")),
                )
                await self._keep_card(who, msg)
            elif buttons:  # a plain message got a keyboard: it becomes a card now
                await self._new_card(who, out, text, buttons)
            elif text or msg.caption:  # DingTalk cannot edit a robot's plain message: the correction follows
                text = text or to_markdown(msg.caption, msg.caption_entities)
                corrected = escape(_words(who).plain("bridge.corrected"))
                await self._once(
                    out,
                    "text",
                    lambda: self.api.send(
                        who.dingtalk_id, "sampleMarkdown", {"title": _title(msg), "text": corrected + text}
                    ),
                )
                if msg.message_id in who.plain:  # what the bot would now edit after a restart
                    await self._keep_plain(who, msg)
        elif kind == "deleted":
            card = who.cards.get(msg.message_id)
            if card is not None:
                await self.api.update_card(card, escape(_words(who).plain("bridge.recalled")), [])
                async with self.sessionmaker() as s:
                    await store.forget_card(s, card)
                    await s.commit()
            elif msg.message_id in who.plain:
                key = who.plain[msg.message_id]
                await self.api.recall([key])
                async with self.sessionmaker() as s:
                    await store.forget_plain(s, key)
                    await s.commit()

    @staticmethod
    async def _once(out: Outgoing, part: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """`call` once per change: a retry of the change skips a part DingTalk already took."""
        if part not in out.done:
            out.done[part] = await call()
        return out.done[part]

    async def _new_card(self, who: Person, out: Outgoing, markdown: str, buttons: list[Button]) -> None:
        """The message becomes a card, with the outTrackId kept in the change's row: sent again
        after a restart, DingTalk refuses the second card (it has it) and it is updated instead."""
        msg = out.msg
        try:
            await self.api.send_card(who.dingtalk_id, markdown, buttons, out_track_id=out.card_id)
        except DingTalkError as e:
            if e.code != CARD_EXISTS:
                raise
            await self.api.update_card(out.card_id, markdown, buttons)
        who.cards[msg.message_id] = out.card_id
        self._cards[out.card_id] = (who, msg.message_id)
        await self._keep_card(who, msg)

    # ---- invites (bridge/dingtalk/invites.py) ----
    def _invite(self, msg: ChatMessage) -> invites.Invite | None:
        """The bot's own invite link in the message (text, caption or a button's url)."""
        urls = [b.get("url") for b in msg.buttons]
        return invites.find([msg.text, msg.caption, *urls], self.bot.username)

    async def _send_invite(self, who: Person, out: Outgoing, invite: invites.Invite) -> None:
        """An invite as a DingTalk person can use it: a forwardable card whose button types
        `/start CODE` for whoever presses it, and a QR code of that command instead of the link's.
        Each part is sent once per change (`_once`), the card under the change's kept outTrackId."""
        kind, msg = out.kind, out.msg
        _ = _words(who)
        bot = self.bot.first_name
        line = _.plain("bridge.invite_line", bot=bot, code=invite.code)
        body, entities = (
            (msg.text, msg.entities) if msg.text is not None else (msg.caption, msg.caption_entities)
        )
        body, entities = invites.replace_link(body or "", list(entities or []), invite, line)
        start = Button(
            _.plain("bridge.invite_button", code=invite.code), id=invites.start_button_id(msg.message_id)
        )
        buttons = [b for b in _buttons(msg) if b.url != invite.link] + [start]
        tips = escape(_.plain("bridge.invite_tips"))
        markdown = to_markdown(body, entities) or " "
        if kind == "edited":
            await self.api.update_card(who.cards[msg.message_id], markdown, buttons, tips=tips)
        else:
            if msg.photo is not None:
                label = _.plain("bridge.invite_qr_label", bot=bot, code=invite.code)
                png = await asyncio.to_thread(invites.qr_png, invite.command, label)
                media = await self._once(
                    out, "upload", lambda: self.api.upload("image", png, "invite.png", "image/png")
                )
                await self._once(
                    out,
                    "media",
                    lambda: self.api.send(who.dingtalk_id, "sampleImageMsg", {"photoURL": media}),
                )
            try:
                await self.api.send_card(
                    who.dingtalk_id, markdown, buttons, tips=tips, forward=True, out_track_id=out.card_id
                )
            except DingTalkError as e:
                if e.code != CARD_EXISTS:
                    raise
                await self.api.update_card(out.card_id, markdown, buttons, tips=tips)
            who.cards[msg.message_id] = out.card_id
            self._cards[out.card_id] = (who, msg.message_id)
        await self._keep_card(who, msg)

    async def _join(self, dingtalk_id: str, invite: invites.Invite) -> int | None:
        """The invite card's button, pressed (on a forwarded card, by someone else): `/start
        CODE` typed in the presser's own robot chat. DingTalk names who pressed but not their
        name; someone who never wrote to the robot is asked to send the line themselves, so the
        bot learns their name from their message."""
        presser = self.people.get(dingtalk_id)
        if presser is None:
            text = texts(None).plain("bridge.invite_ask", code=invite.code)
            await self.api.send(
                dingtalk_id, "sampleMarkdown", {"title": text.split("\n", 1)[0], "text": escape(text)}
            )
            return None
        await self._top_up_ids(presser)
        return int((await self.front.send_text(presser.user, invite.command))["update_id"])


def _shown(msg: ChatMessage) -> dict[str, Any]:
    """What the store keeps of a message DingTalk shows (a restart puts it back in the front)."""
    return {
        "message_id": msg.message_id,
        "text": msg.text,
        "entities": msg.entities,
        "caption": msg.caption,
        "caption_entities": msg.caption_entities,
        "reply_markup": msg.reply_markup,
        "date": msg.date,
    }


def _words(who: Person) -> Texts:
    """The bridge's own words in the language it keeps for the person (DingTalk tells none:
    `zh` unless the store says otherwise)."""
    return texts(who.user.language_code)


def _buttons(msg: ChatMessage) -> list[Button]:
    """The card buttons for the message's keyboard: inline buttons (callback_data calls back;
    url and web_app open the link) or a reply keyboard's buttons (they call back and "type"
    their text). Button ids are `m<message id>b<position>`."""
    out: list[Button] = []
    for n, b in enumerate(msg.buttons):
        if "callback_data" in b or _is_reply_button(msg, b):
            out.append(Button(b["text"], id=f"m{msg.message_id}b{n}"))
        elif "url" in b:
            out.append(Button(b["text"], url=b["url"]))
        elif "web_app" in b:
            out.append(Button(b["text"], url=b["web_app"]["url"]))
    return out


def _is_reply_button(msg: ChatMessage, b: dict[str, Any]) -> bool:
    return "keyboard" in (msg.reply_markup or {}) and "web_app" not in b


def _pressed(msg: ChatMessage, action_id: str) -> dict[str, Any] | None:
    """The button `action_id` names, on the message as it is now (a stale card presses nothing
    that is gone)."""
    for n, b in enumerate(msg.buttons):
        if action_id == f"m{msg.message_id}b{n}" and ("callback_data" in b or _is_reply_button(msg, b)):
            return b
    return None


def _title(msg: ChatMessage) -> str:
    """The notification line DingTalk shows for a markdown message: its first line, short."""
    first = (msg.text or msg.caption or "").strip().split("\n", 1)[0]
    return first[:30] or "支部助手"


__all__ = ["DingTalkBridge", "Person", "stable_id"]
