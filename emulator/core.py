"""The emulator's engine: the call pipeline every Bot API request goes through, and the Python
API tests and the demo use to play the people on the other side. Its HTTP server's life is
`server.Emulator` (exported as `emulator.Emulator`):

    async with Emulator() as emu:
        bot = emu.add_bot("123456:TEST")
        user = emu.add_user("张三", language_code="zh")
        await emu.send_text(user, "/start")
        reply = await emu.next_message(user)

See emulator/README.md for the whole API.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from emulator import methods
from emulator.entities import detect
from emulator.errors import ApiError, SimError, not_found, server_error, too_many_requests, unauthorized
from emulator.faults import Faults
from emulator.files import FileStore
from emulator.limits import Limits, is_send
from emulator.spec import Spec, Upload, load
from emulator.state import (
    CallbackAnswer,
    CallbackQuery,
    ChatMessage,
    Dialog,
    ErrorRecord,
    QueuedUpdate,
    Signal,
    SimBot,
    SimGroup,
    SimUser,
    Violation,
    now_unix,
)
from emulator.stats import Stats
from emulator.validate import check_call
from emulator.webhook import Webhooks

T = TypeVar("T")
_TOKEN = re.compile(r"(\d+):([A-Za-z0-9_-]+)")
BotRef = SimBot | str | int | None
ChatRef = SimUser | SimGroup | int


class Engine:
    """A local Telegram Bot API without its HTTP face (that is `server.Emulator`): the bots,
    people and chats, the call pipeline, and the Python API. Several bots (tokens) share one."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        spec: Spec | None = None,
        auto_register_bots: bool = True,
        webhook_retry_base: float = 0.05,
        webhook_retry_max: float = 2.0,
        webhook_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.clock = clock
        self.spec = spec or load()
        # An unknown but well-formed token becomes a new bot (False: 401 Unauthorized).
        self.auto_register_bots = auto_register_bots
        self.bots: dict[int, SimBot] = {}
        self.users: dict[int, SimUser] = {}
        self.groups: dict[int, SimGroup] = {}
        self.dialogs: dict[tuple[int, int], Dialog] = {}
        self.files = FileStore()
        self.violations: list[Violation] = []
        self.errors: list[ErrorRecord] = []
        self.callback_answers: list[CallbackAnswer] = []
        self.stats = Stats()
        self.faults = Faults()
        self.limits = Limits(clock)
        self.webhooks = Webhooks(
            self, retry_base=webhook_retry_base, retry_max=webhook_retry_max, timeout=webhook_timeout
        )
        self.changed = Signal()  # notified on every change a test may wait for
        self.closing = False
        self._blocked: set[tuple[int | None, int]] = set()  # (bot id or None for every bot, user id)
        self._started: set[tuple[int, int]] = set()  # (bot id, user id) for users added started=False
        self._user_ids = itertools.count(5_000_000_001)  # above 2**32, as real ids are
        self._group_ids = itertools.count(4_000_000_001)
        self._query_ids = itertools.count(7_000_000_000_001)

    # -- life -------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Ends what runs on its own: waiting long polls return now, webhook senders stop."""
        self.closing = True
        for bot in self.bots.values():
            bot.updates_changed.notify()  # waiting long polls return now
        await self.webhooks.stop()

    @property
    def base_url(self) -> str:
        """What aiogram takes: TelegramAPIServer.from_base(emu.base_url)."""
        return f"http://{self.host}:{self.port}"

    def loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    # -- bots -------------------------------------------------------------------------------------

    def add_bot(self, token: str, *, username: str | None = None, first_name: str | None = None) -> SimBot:
        m = _TOKEN.fullmatch(token)
        if not m:
            raise SimError(f"not a bot token: {token!r}")
        bot_id = int(m[1])
        if bot_id in self.bots:
            existing = self.bots[bot_id]
            if existing.token != token:
                raise SimError(f"bot {bot_id} is already registered with another token")
            return existing
        bot = SimBot(
            token=token,
            id=bot_id,
            username=username or f"emu{bot_id}_bot",
            first_name=first_name or f"Bot {bot_id}",
        )
        self.bots[bot_id] = bot
        return bot

    def bot(self, ref: BotRef = None) -> SimBot:
        """A bot by SimBot, token, or id; with no argument, the only bot there is."""
        if isinstance(ref, SimBot):
            return ref
        if ref is None:
            if len(self.bots) != 1:
                raise SimError(f"{len(self.bots)} bots are registered: say which one (bot=...)")
            return next(iter(self.bots.values()))
        bot_id = int(ref.partition(":")[0]) if isinstance(ref, str) else ref
        if bot_id not in self.bots:
            raise SimError(f"unknown bot {ref!r}")
        return self.bots[bot_id]

    def bot_for_token(self, token: str) -> SimBot | None:
        """The bot a request's token names (registering it if allowed), None if refused."""
        bot = self._bot_for_token(token)
        return None if isinstance(bot, ApiError) else bot

    def _bot_for_token(self, token: str) -> SimBot | ApiError:
        m = _TOKEN.fullmatch(token)
        if not m:
            return not_found()
        bot = self.bots.get(int(m[1]))
        if bot is None and self.auto_register_bots:
            bot = self.add_bot(token)
        if bot is None or bot.token != token:
            return unauthorized()
        return bot

    # -- people and chats -------------------------------------------------------------------------

    def add_user(
        self,
        first_name: str = "Test",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "zh",
        id: int | None = None,
        started: bool = True,
    ) -> SimUser:
        """A simulated person. `started=False`: bots get 403 "bot can't initiate conversation
        with a user" until the person writes to them."""
        user_id = id if id is not None else next(self._user_ids)
        if user_id in self.users or user_id in self.bots or user_id <= 0:
            raise SimError(f"user id {user_id} is taken or not positive")
        user = SimUser(user_id, first_name, last_name, username, language_code, started)
        self.users[user_id] = user
        return user

    def add_group(self, title: str, members: list[SimUser], *, id: int | None = None) -> SimGroup:
        group_id = id if id is not None else -next(self._group_ids)
        if group_id >= 0 or group_id in self.groups:
            raise SimError(f"group id {group_id} is taken or not negative")
        group = SimGroup(group_id, title, list(members))
        self.groups[group_id] = group
        return group

    def find_chat(self, chat_id: int | None) -> SimUser | SimGroup | None:
        if chat_id is None:
            return None
        return self.users.get(chat_id) or self.groups.get(chat_id)

    def dialog(self, bot_id: int, chat_id: int) -> Dialog:
        key = (bot_id, chat_id)
        if key not in self.dialogs:
            self.dialogs[key] = Dialog(bot_id, chat_id)
        return self.dialogs[key]

    def is_blocked(self, bot_id: int, user_id: int) -> bool:
        return (bot_id, user_id) in self._blocked or (None, user_id) in self._blocked

    def has_started(self, bot_id: int, user: SimUser) -> bool:
        return user.started or (bot_id, user.id) in self._started

    def block(self, user: SimUser, bot: BotRef = None, *, notify: bool = True) -> None:
        """The person blocks the bot (every bot when there are several and none is named):
        sends to them get 403 "Forbidden: bot was blocked by the user". With `notify`, the bot
        gets the my_chat_member update Telegram sends (status "kicked")."""
        bots = [self.bot(bot)] if bot is not None or len(self.bots) == 1 else list(self.bots.values())
        for b in bots:
            self._blocked.add((b.id, user.id))
            if notify:
                self._enqueue(b, "my_chat_member", self._member_change(b, user, "member", "kicked"))
        if bot is None and len(self.bots) != 1:
            self._blocked.add((None, user.id))
        self.changed.notify()

    def unblock(self, user: SimUser, bot: BotRef = None, *, notify: bool = True) -> None:
        bots = [self.bot(bot)] if bot is not None or len(self.bots) == 1 else list(self.bots.values())
        for b in bots:
            if (b.id, user.id) in self._blocked or (None, user.id) in self._blocked:
                self._blocked.discard((b.id, user.id))
                if notify:
                    self._enqueue(b, "my_chat_member", self._member_change(b, user, "kicked", "member"))
        if bot is None:
            self._blocked.discard((None, user.id))
        self.changed.notify()

    def _member_change(self, bot: SimBot, user: SimUser, old: str, new: str) -> dict[str, Any]:
        def member(status: str) -> dict[str, Any]:
            m: dict[str, Any] = {"status": status, "user": bot.user_api()}
            if status == "kicked":
                m["until_date"] = 0
            return m

        return {
            "chat": user.chat_api(),
            "from": user.to_api(),
            "date": now_unix(),
            "old_chat_member": member(old),
            "new_chat_member": member(new),
        }

    # -- what people do ---------------------------------------------------------------------------

    async def send_text(
        self,
        user: SimUser,
        text: str,
        *,
        bot: BotRef = None,
        chat: SimGroup | None = None,
        reply_to: ChatMessage | None = None,
    ) -> dict[str, Any]:
        """The person writes `text` (in their private chat, or in `chat`). Returns the Update
        (with `entities` for bot commands, mentions, links), queued for the bot."""
        b = self.bot(bot)
        msg = self._incoming(b, user, chat, text=text, entities=detect(text), reply_to=reply_to)
        return self._enqueue(b, "message", msg.to_api())

    async def send_photo(
        self,
        user: SimUser,
        data: bytes,
        caption: str | None = None,
        *,
        bot: BotRef = None,
        chat: SimGroup | None = None,
    ) -> dict[str, Any]:
        """The person sends a photo; the bot can getFile and download the same bytes."""
        b = self.bot(bot)
        photo = self.files.add(data, "photo")
        extra: dict[str, Any] = {"photo": photo}
        if caption:
            extra.update(caption=caption, caption_entities=detect(caption))
        msg = self._incoming(b, user, chat, **extra)
        return self._enqueue(b, "message", msg.to_api())

    async def send_document(
        self,
        user: SimUser,
        data: bytes,
        file_name: str,
        caption: str | None = None,
        *,
        mime_type: str | None = None,
        bot: BotRef = None,
        chat: SimGroup | None = None,
    ) -> dict[str, Any]:
        b = self.bot(bot)
        doc = self.files.add(data, "document", file_name=file_name, mime_type=mime_type)
        extra: dict[str, Any] = {"document": doc}
        if caption:
            extra.update(caption=caption, caption_entities=detect(caption))
        msg = self._incoming(b, user, chat, **extra)
        return self._enqueue(b, "message", msg.to_api())

    async def press(
        self,
        user: SimUser,
        message: ChatMessage | int,
        *,
        text: str | None = None,
        data: str | None = None,
        bot: BotRef = None,
    ) -> dict[str, Any]:
        """The person taps a button of a message the bot sent them. An inline button with
        callback_data gives a callback_query Update; a reply-keyboard button sends its text.
        Raises SimError when the message (as it is now) has no such button."""
        if text is None and data is None:
            raise SimError("press(): give the button's text= or data=")
        b = self.bot(bot) if bot is not None or isinstance(message, int) else self.bots[message.bot_id]
        if isinstance(message, int):
            found = self.dialog(b.id, user.id).find(message)
            if found is None:
                raise SimError(f"no message {message} in the chat of user {user.id}")
            message = found
        if not message.outgoing or message.deleted:
            raise SimError(f"{message!r} is not a message of the bot that the person can see")
        group = self.groups.get(message.chat_id)
        if message.chat_id != user.id and (group is None or user not in group.members):
            raise SimError(f"{message!r} is not in a chat of user {user.id}")
        button = message.button(text=text, data=data)
        if button is None:
            raise SimError(f"{message!r} has no button text={text!r} data={data!r}")
        markup = message.reply_markup or {}
        if "keyboard" in markup:
            chat = self.groups.get(message.chat_id)
            return await self.send_text(user, button["text"], bot=b, chat=chat)
        if "callback_data" not in button:
            raise SimError(f"button {button['text']!r} has no callback_data ({sorted(button)})")
        query = CallbackQuery(
            str(next(self._query_ids)), user, message, button["callback_data"], at=self.clock()
        )
        b.callbacks[query.id] = query
        payload = {
            "id": query.id,
            "from": user.to_api(),
            "message": message.to_api(),
            "chat_instance": str(abs(hash((b.id, message.chat_id)))),
            "data": query.data,
        }
        return self._enqueue(b, "callback_query", payload)

    def redeliver(self, update: dict[str, Any], *, bot: BotRef = None) -> dict[str, Any]:
        """Queue the very same update again (same update_id), as Telegram does when it did not
        see the bot confirm it. Delivered once more even if its id is below the offset."""
        b = self.bot(bot)
        b.queue.append(QueuedUpdate(update, forced=True))
        b.updates_changed.notify()
        self.changed.notify()
        return update

    def _incoming(
        self,
        bot: SimBot,
        user: SimUser,
        group: SimGroup | None,
        reply_to: ChatMessage | None = None,
        **content: Any,
    ) -> ChatMessage:
        if user.id not in self.users:
            raise SimError(f"unknown user {user.id}")
        if group is not None and user not in group.members:
            raise SimError(f"user {user.id} is not a member of group {group.id}")
        chat: SimUser | SimGroup = group or user
        dialog = self.dialog(bot.id, chat.chat_id)
        self._started.add((bot.id, user.id))
        msg = ChatMessage(
            message_id=dialog.take_id(),
            bot_id=bot.id,
            chat=chat.chat_api(),
            sender=user.to_api(),
            outgoing=False,
            date=now_unix(),
            sent_at=self.clock(),
            reply_to=reply_to,
            **content,
        )
        dialog.messages.append(msg)
        return msg

    def _enqueue(self, bot: SimBot, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": bot.next_update_id, kind: obj}
        bot.next_update_id += 1
        bot.all_updates[update["update_id"]] = update
        allowed = bot.allowed_updates
        if (kind in allowed) if allowed else (kind not in methods.DEFAULT_EXCLUDED_UPDATES):
            bot.queue.append(QueuedUpdate(update))
            bot.updates_changed.notify()
        self.changed.notify()
        return update

    # -- what people see --------------------------------------------------------------------------

    def chat(self, who: ChatRef, *, bot: BotRef = None, include_deleted: bool = False) -> list[ChatMessage]:
        """The bot's messages in this chat, oldest first, as they are now (after edits)."""
        return self.dialog(self.bot(bot).id, _chat_id(who)).bot_messages(include_deleted)

    def last_message(self, who: ChatRef, *, bot: BotRef = None) -> ChatMessage | None:
        messages = self.chat(who, bot=bot)
        return messages[-1] if messages else None

    def actions(self, who: ChatRef, *, bot: BotRef = None) -> list[str]:
        return [a for _, a in self.dialog(self.bot(bot).id, _chat_id(who)).actions]

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """The first truthy `predicate()`, re-checked whenever the emulator's state changes."""
        return await self.changed.wait_for(predicate, timeout)

    async def next_message(self, who: ChatRef, *, timeout: float = 5.0, bot: BotRef = None) -> ChatMessage:
        """The next message the bot sends to this chat that the reader has not taken yet
        (each message is returned once; edits do not count, see next_change)."""
        dialog = self.dialog(self.bot(bot).id, _chat_id(who))

        def unread() -> ChatMessage | None:
            while dialog.read_sent < len(dialog.messages):
                msg = dialog.messages[dialog.read_sent]
                dialog.read_sent += 1
                if msg.outgoing:
                    return msg
            return None

        try:
            return await dialog.changed.wait_for(unread, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"no new message from the bot in chat {dialog.chat_id} within {timeout} s; "
                f"the chat holds {dialog.bot_messages()!r}; recent errors {self.errors[-3:]!r}, "
                f"violations {self.violations[-3:]!r}"
            ) from None

    async def next_change(
        self, who: ChatRef, *, timeout: float = 5.0, bot: BotRef = None
    ) -> tuple[str, ChatMessage]:
        """The next ("sent" | "edited" | "deleted", message) in this chat not taken yet."""
        dialog = self.dialog(self.bot(bot).id, _chat_id(who))

        def unread() -> tuple[str, ChatMessage] | None:
            if dialog.read_changes < len(dialog.changes):
                dialog.read_changes += 1
                return dialog.changes[dialog.read_changes - 1]
            return None

        return await dialog.changed.wait_for(unread, timeout)

    async def wait_callback_answer(self, update: dict[str, Any], *, timeout: float = 5.0) -> CallbackAnswer:
        """The bot's answerCallbackQuery for the callback_query Update that press() returned."""
        query_id = update["callback_query"]["id"]

        def answered() -> CallbackAnswer | None:
            return next((a for a in self.callback_answers if a.query_id == query_id), None)

        return await self.wait_for(answered, timeout)

    def menu(self, user: SimUser, *, bot: BotRef = None) -> list[dict[str, Any]]:
        """The command menu this person sees in their private chat, resolved as Telegram does:
        scope chat, all_private_chats, default; in each, the person's language first."""
        b = self.bot(bot)
        scopes = [{"type": "chat", "chat_id": user.id}, {"type": "all_private_chats"}, {"type": "default"}]
        langs = [user.language_code or "", ""] if user.language_code else [""]
        for scope in scopes:
            for lang in langs:
                key = (methods.scope_json(scope), lang)
                if key in b.commands:
                    return list(b.commands[key])
        return []

    def pending_updates(self, bot: BotRef = None) -> list[dict[str, Any]]:
        return [q.payload for q in self.bot(bot).queue]

    def reset_records(self) -> None:
        """Forget violations, errors, callback answers, counters and rate-limit history."""
        self.violations.clear()
        self.errors.clear()
        self.callback_answers.clear()
        self.stats.reset()
        self.limits.reset()

    # -- the call pipeline ------------------------------------------------------------------------

    async def execute(
        self, token: str, method: str, raw: dict[str, Any], files: dict[str, Upload] | None = None
    ) -> tuple[int, dict[str, Any] | str]:
        """Run one Bot API call: (HTTP status, JSON body or an HTML error page)."""
        files = files or {}
        bot = self._bot_for_token(token)
        if isinstance(bot, ApiError):
            self._record(None, method, dict(raw), bot)
            return bot.code, bot.body()
        spec = self.spec.method(method)
        name = spec.name if spec else method
        self.stats.requests[name] += 1
        self.changed.notify()  # tests may wait for a request to arrive (e.g. a long poll)
        params: dict[str, Any] = dict(raw)
        try:
            if spec is None:
                raise ApiError(404, "Not Found", violation=f"no Bot API method {method!r}")
            handler = methods.HANDLERS.get(spec.name.lower())
            if handler is None:
                raise methods.unsupported(spec.name)
            for part, upload in files.items():  # a file part named like a parameter is its value
                if part in spec.fields and part not in raw:
                    raw = {**raw, part: upload}
            checked = check_call(self.spec, spec, raw, files)
            params = checked.params
            call = methods.Call(self, bot, spec.name, params, checked.formatted)
            result = await self._run(call, handler)
        except ApiError as e:
            self._record(bot, name, params, e)
            if e.html:
                return e.code, f"<html><body><h1>{e.code} {e.description}</h1></body></html>"
            return e.code, e.body()
        return 200, {"ok": True, "result": result}

    async def _run(self, call: methods.Call, handler: methods.Handler) -> Any:
        """Faults and limits around one validated call (see faults.py and limits.py)."""
        bot, name, params = call.bot, call.name, call.params
        slow = self.faults.take("slow", name, params)
        if slow is not None:
            await asyncio.sleep(slow.seconds)  # the emulated latency itself
        chat_id = params.get("chat_id")
        chat_id = chat_id if isinstance(chat_id, int) else None
        send = chat_id is not None and is_send(name)
        if send and self.limits.wait_left(bot.id, chat_id) > 0:
            self.stats.early_retries += 1
            self.stats.early_retry_log.append((self.clock(), bot.id, chat_id))
        rule = self.faults.take("429", name, params)
        if rule is not None:
            self.stats.injected_429 += 1
            self.limits.note_429(bot.id, None, rule.retry_after)
            raise too_many_requests(rule.retry_after)
        failure = self.faults.take("5xx", name, params)
        if failure is not None and not failure.after_send:
            self.stats.injected_5xx += 1
            raise server_error(failure.status, html=failure.html)
        if send:
            refusal = self.limits.admit(bot.id, chat_id)
            if refusal is not None:
                self.stats.limit_429[refusal.limit] += 1
                if refusal.limit != "wait":
                    self.limits.note_429(
                        bot.id, chat_id if refusal.chat_scoped else None, refusal.retry_after
                    )
                raise too_many_requests(refusal.retry_after)
        result = await handler(call)
        if failure is not None:
            self.stats.injected_5xx += 1
            raise server_error(failure.status, html=failure.html)
        return result

    def refuse(self, token: str, method: str, error: ApiError) -> tuple[int, dict[str, Any]]:
        """Answer a request that could not even be read (a malformed body)."""
        bot = self._bot_for_token(token)
        if isinstance(bot, ApiError):
            error, bot = bot, None
        self._record(bot, method, {}, error)
        return error.code, error.body()

    def _record(self, bot: SimBot | None, method: str, params: dict[str, Any], e: ApiError) -> None:
        bot_id = bot.id if bot else None
        if e.violation is not None:
            self.violations.append(Violation(bot_id, method, params, e.violation, e.description))
        else:
            self.errors.append(ErrorRecord(bot_id, method, params, e.code, e.description))
        self.changed.notify()


def _chat_id(who: ChatRef) -> int:
    return who if isinstance(who, int) else who.chat_id
