"""The Bot API methods the emulator implements, one function each.

Every function gets a validated `Call` (see validate.py) and returns the `result` Telegram
would return, or raises an `ApiError` with Telegram's wording. State-dependent refusals
("chat not found", "message is not modified", blocked users) are ordinary errors; calls a
correct bot never makes (editing a message that does not exist, an unknown file_id) are
violations.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulator.entities import Formatted
from emulator.errors import ApiError, bad_request, conflict, forbidden, violation
from emulator.files import image_info
from emulator.spec import Upload
from emulator.state import (
    CallbackAnswer,
    ChatMessage,
    Dialog,
    SimBot,
    SimGroup,
    SimUser,
    StoredFile,
    now_unix,
)
from emulator.stats import SendRecord

if TYPE_CHECKING:
    from emulator.host import Host


@dataclass
class Call:
    emu: Host
    bot: SimBot
    name: str  # canonical method name, e.g. "sendMessage"
    params: dict[str, Any]
    formatted: dict[str, Formatted] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Any]]
HANDLERS: dict[str, Handler] = {}

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
# Update types a bot gets when it does not choose (Telegram's default).
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


def handles(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[name.lower()] = fn
        return fn

    return register


# -- chats ----------------------------------------------------------------------------------------


def target(call: Call, key: str = "chat_id") -> tuple[Dialog, SimUser | SimGroup]:
    """The dialog a call addresses, refusing as Telegram does: unknown chat (400), blocked or
    never started by the person (403)."""
    emu, bot = call.emu, call.bot
    raw = call.params.get(key)
    chat_id: int | None
    if isinstance(raw, int):
        chat_id = raw
    elif isinstance(raw, str) and raw.lstrip("-").isdigit():
        chat_id = int(raw)
    else:
        chat_id = None  # "@username" addresses channels and supergroups, which we do not have
    chat = emu.find_chat(chat_id) if chat_id is not None else None
    if chat is None:
        raise bad_request("chat not found")
    if isinstance(chat, SimUser):
        if emu.is_blocked(bot.id, chat.id):
            raise forbidden("bot was blocked by the user")
        if not emu.has_started(bot.id, chat):
            raise forbidden("bot can't initiate conversation with a user")
    return emu.dialog(bot.id, chat.chat_id), chat


def _message_of(call: Call, dialog: Dialog, missing: str) -> ChatMessage:
    if "inline_message_id" in call.params:
        raise violation(
            "inline messages are not supported by the emulator", "inline_message_id is not emulated"
        )
    msg = dialog.find(int(call.params["message_id"]))
    if msg is None or msg.deleted:
        raise violation(
            missing, f"{call.name}: no message {call.params['message_id']} in chat {dialog.chat_id}"
        )
    if not msg.outgoing:
        raise violation(
            "message can't be edited", f"{call.name}: message {msg.message_id} was not sent by the bot"
        )
    return msg


def _markup(call: Call) -> dict[str, Any] | None:
    markup = call.params.get("reply_markup")
    return markup if isinstance(markup, dict) else None


def _reply_to(call: Call, dialog: Dialog) -> ChatMessage | None:
    rp = call.params.get("reply_parameters")
    if not isinstance(rp, dict):
        rp = {}
        if "reply_to_message_id" in call.params:
            rp = {"message_id": call.params["reply_to_message_id"]}
            if "allow_sending_without_reply" in call.params:
                rp["allow_sending_without_reply"] = call.params["allow_sending_without_reply"]
    if not rp:
        return None
    if "chat_id" in rp and str(rp["chat_id"]) != str(dialog.chat_id):
        raise violation("message to be replied not found", "replies to other chats are not emulated")
    found = dialog.find(int(rp["message_id"]))
    if found is None or found.deleted:
        if rp.get("allow_sending_without_reply"):
            return None
        raise bad_request("message to be replied not found")
    return found


def _deliver(call: Call, dialog: Dialog, chat: SimUser | SimGroup, **content: Any) -> dict[str, Any]:
    emu, bot = call.emu, call.bot
    reply_to = _reply_to(call, dialog)  # may refuse: before a message id is taken
    msg = ChatMessage(
        message_id=dialog.take_id(),
        bot_id=bot.id,
        chat=chat.chat_api(),
        sender=bot.user_api(),
        outgoing=True,
        date=now_unix(),
        sent_at=emu.clock(),
        reply_markup=_markup(call),
        reply_to=reply_to,
        method=call.name,
        params=dict(call.params),
        **content,
    )
    dialog.messages.append(msg)
    emu.stats.sends.append(SendRecord(msg.sent_at, bot.id, dialog.chat_id, msg.message_id, call.name))
    dialog.change("sent", msg)
    emu.changed.notify()
    return msg.to_api()


# -- sending --------------------------------------------------------------------------------------


@handles("sendMessage")
async def send_message(call: Call) -> dict[str, Any]:
    dialog, chat = target(call)
    text = call.formatted["text"]
    return _deliver(call, dialog, chat, text=text.text, entities=text.entities)


def _file_param(call: Call, key: str, kind: str) -> StoredFile:
    value = call.params[key]
    emu = call.emu
    if isinstance(value, Upload):
        if kind == "photo" and image_info(value.data) is None:
            raise violation(
                "IMAGE_PROCESS_FAILED", f"{key}: the upload is not a PNG, JPEG, GIF or WebP image"
            )
        if not value.data:
            raise violation("file must be non-empty", f"{key}: empty upload")
        return emu.files.add(value.data, kind, file_name=value.filename, mime_type=value.content_type)
    if value.startswith(("http://", "https://")):
        raise bad_request("failed to get HTTP URL content")  # the emulator cannot fetch URLs
    stored = emu.files.get(value)
    if stored is None:
        raise violation("wrong file identifier/HTTP URL specified", f"{key}: unknown file_id {value!r}")
    if kind == "photo" and stored.kind != "photo":
        raise violation(
            "wrong file identifier/HTTP URL specified", f"{key}: file_id of a {stored.kind}, not a photo"
        )
    return stored


def _caption(call: Call) -> dict[str, Any]:
    cap = call.formatted.get("caption")
    if cap is None or not cap.text:
        return {}
    return {"caption": cap.text, "caption_entities": cap.entities}


@handles("sendPhoto")
async def send_photo(call: Call) -> dict[str, Any]:
    dialog, chat = target(call)
    photo = _file_param(call, "photo", "photo")
    return _deliver(call, dialog, chat, photo=photo, **_caption(call))


@handles("sendDocument")
async def send_document(call: Call) -> dict[str, Any]:
    dialog, chat = target(call)
    document = _file_param(call, "document", "document")
    return _deliver(call, dialog, chat, document=document, **_caption(call))


@handles("sendChatAction")
async def send_chat_action(call: Call) -> bool:
    dialog, _ = target(call)
    dialog.actions.append((call.emu.clock(), call.params["action"]))
    call.emu.changed.notify()
    return True


# -- editing --------------------------------------------------------------------------------------


def _apply_edit(call: Call, dialog: Dialog, msg: ChatMessage, **changes: Any) -> dict[str, Any]:
    current = {k: getattr(msg, k) for k in changes}
    if current == changes:
        raise bad_request(NOT_MODIFIED)
    msg.history.append(msg.snapshot(call.emu.clock()))
    for k, v in changes.items():
        setattr(msg, k, v)
    msg.edit_date = now_unix()
    dialog.change("edited", msg)
    call.emu.changed.notify()
    return msg.to_api()


@handles("editMessageText")
async def edit_message_text(call: Call) -> dict[str, Any]:
    dialog, _ = target(call)
    msg = _message_of(call, dialog, "message to edit not found")
    if msg.text is None:
        raise violation("there is no text in the message to edit", f"message {msg.message_id} has no text")
    text = call.formatted["text"]
    return _apply_edit(call, dialog, msg, text=text.text, entities=text.entities, reply_markup=_markup(call))


@handles("editMessageCaption")
async def edit_message_caption(call: Call) -> dict[str, Any]:
    dialog, _ = target(call)
    msg = _message_of(call, dialog, "message to edit not found")
    if msg.text is not None:
        raise violation(
            "there is no caption in the message to edit", f"message {msg.message_id} is a text message"
        )
    cap = call.formatted.get("caption")
    return _apply_edit(
        call,
        dialog,
        msg,
        caption=cap.text if cap and cap.text else None,
        caption_entities=cap.entities if cap else [],
        reply_markup=_markup(call),
    )


@handles("editMessageReplyMarkup")
async def edit_message_reply_markup(call: Call) -> dict[str, Any]:
    dialog, _ = target(call)
    msg = _message_of(call, dialog, "message to edit not found")
    return _apply_edit(call, dialog, msg, reply_markup=_markup(call))


@handles("deleteMessage")
async def delete_message(call: Call) -> bool:
    dialog, _ = target(call)
    msg = dialog.find(int(call.params["message_id"]))
    if msg is None or msg.deleted:
        raise bad_request("message to delete not found")
    msg.deleted = True
    dialog.change("deleted", msg)
    call.emu.changed.notify()
    return True


# -- callback queries -----------------------------------------------------------------------------

# How long after the press Telegram still takes an answer. The Bot API documents no number
# (only that the client shows a progress bar until the bot answers); in practice answers come
# back "query is too old" after about 15 seconds, which is what is enforced here.
CALLBACK_ANSWER_SECONDS = 15.0


@handles("answerCallbackQuery")
async def answer_callback_query(call: Call) -> bool:
    p = call.params
    query = call.bot.callbacks.get(p["callback_query_id"])
    too_old = query is not None and call.emu.clock() - query.at > CALLBACK_ANSWER_SECONDS
    if query is None or query.answer is not None or too_old:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    query.answer = CallbackAnswer(
        query_id=query.id,
        user_id=query.user.id,
        message_id=query.message.message_id,
        data=query.data,
        text=p.get("text"),
        show_alert=bool(p.get("show_alert", False)),
        url=p.get("url"),
        cache_time=int(p.get("cache_time", 0)),
        at=call.emu.clock(),
    )
    call.emu.callback_answers.append(query.answer)
    call.emu.changed.notify()
    return True


# -- updates --------------------------------------------------------------------------------------


@handles("getUpdates")
async def get_updates(call: Call) -> list[dict[str, Any]]:
    """Long polling as Telegram does it: `offset` confirms every update below it; the call
    waits up to `timeout` seconds for an update; a newer getUpdates ends an older one with
    409; while a webhook is set the call is refused with 409."""
    bot, emu, p = call.bot, call.emu, call.params
    if bot.webhook is not None:
        raise conflict(
            "can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first"
        )
    if "allowed_updates" in p:
        bot.allowed_updates = list(p["allowed_updates"]) or None
    limit = min(max(int(p.get("limit", 100)), 1), 100)
    timeout = max(float(p.get("timeout", 0)), 0.0)
    bot.poll_generation += 1
    generation = bot.poll_generation
    bot.updates_changed.notify()  # ends an older long poll
    if "offset" in p:
        confirm(bot, int(p["offset"]))
    loop_deadline = emu.loop_time() + timeout
    bot.waiting_polls += 1
    try:
        while True:
            if generation != bot.poll_generation:
                raise conflict(
                    "terminated by other getUpdates request; make sure that only one bot instance is running"
                )
            if bot.webhook is not None:
                raise conflict("terminated by setWebhook request")
            batch = bot.queue[:limit]
            left = loop_deadline - emu.loop_time()
            if batch or left <= 0 or emu.closing:
                for q in batch:
                    q.delivered = True
                return [q.payload for q in batch]
            emu.changed.notify()  # a test may wait for the bot to be polling
            await bot.updates_changed.wait(left)
    finally:
        bot.waiting_polls -= 1
        emu.changed.notify()


def confirm(bot: SimBot, offset: int) -> None:
    if offset < 0:
        # "-N": keep only the last N updates, forget the rest
        bot.queue[:] = bot.queue[offset:]
        return
    bot.queue[:] = [q for q in bot.queue if q.update_id >= offset or (q.forced and not q.delivered)]


@handles("setWebhook")
async def set_webhook(call: Call) -> bool:
    await call.emu.webhooks.set(call.bot, call.params)
    return True


@handles("deleteWebhook")
async def delete_webhook(call: Call) -> bool:
    await call.emu.webhooks.delete(call.bot, bool(call.params.get("drop_pending_updates", False)))
    return True


@handles("getWebhookInfo")
async def get_webhook_info(call: Call) -> dict[str, Any]:
    bot = call.bot
    info: dict[str, Any] = {
        "url": bot.webhook.url if bot.webhook else "",
        "has_custom_certificate": bool(bot.webhook and bot.webhook.has_custom_certificate),
        "pending_update_count": len(bot.queue),
    }
    if bot.webhook:
        info["max_connections"] = bot.webhook.max_connections
        if bot.webhook.ip_address:
            info["ip_address"] = bot.webhook.ip_address
        if bot.webhook.allowed_updates:
            info["allowed_updates"] = bot.webhook.allowed_updates
    if bot.last_error_date is not None:
        info["last_error_date"] = bot.last_error_date
        info["last_error_message"] = bot.last_error_message
    return info


# -- the bot itself -------------------------------------------------------------------------------


@handles("getMe")
async def get_me(call: Call) -> dict[str, Any]:
    return call.bot.me()


@handles("close")
async def close(call: Call) -> bool:
    call.bot.closed += 1
    return True


@handles("logOut")
async def log_out(call: Call) -> bool:
    call.bot.logged_out += 1
    return True


def scope_key(call: Call) -> str:
    scope = call.params.get("scope") or {"type": "default"}
    if "chat_id" in scope:
        chat = call.emu.find_chat(_int_or_none(scope["chat_id"]))
        if chat is None:
            raise bad_request("chat not found")
    return scope_json(scope)


def scope_json(scope: dict[str, Any]) -> str:
    """A BotCommandScope as a dictionary key."""
    return json.dumps({k: scope[k] for k in sorted(scope)}, ensure_ascii=False)


@handles("setMyCommands")
async def set_my_commands(call: Call) -> bool:
    key = (scope_key(call), call.params.get("language_code", ""))
    commands = [{"command": c["command"], "description": c["description"]} for c in call.params["commands"]]
    if commands:
        call.bot.commands[key] = commands
    else:
        call.bot.commands.pop(key, None)
    call.emu.changed.notify()
    return True


@handles("getMyCommands")
async def get_my_commands(call: Call) -> list[dict[str, Any]]:
    return list(call.bot.commands.get((scope_key(call), call.params.get("language_code", "")), []))


@handles("deleteMyCommands")
async def delete_my_commands(call: Call) -> bool:
    call.bot.commands.pop((scope_key(call), call.params.get("language_code", "")), None)
    call.emu.changed.notify()
    return True


@handles("setMyDescription")
async def set_my_description(call: Call) -> bool:
    call.bot.description[call.params.get("language_code", "")] = call.params.get("description", "")
    return True


@handles("getMyDescription")
async def get_my_description(call: Call) -> dict[str, Any]:
    return {"description": call.bot.description.get(call.params.get("language_code", ""), "")}


@handles("setMyShortDescription")
async def set_my_short_description(call: Call) -> bool:
    lang = call.params.get("language_code", "")
    call.bot.short_description[lang] = call.params.get("short_description", "")
    return True


@handles("getMyShortDescription")
async def get_my_short_description(call: Call) -> dict[str, Any]:
    return {"short_description": call.bot.short_description.get(call.params.get("language_code", ""), "")}


@handles("setChatMenuButton")
async def set_chat_menu_button(call: Call) -> bool:
    return True


@handles("getChatMenuButton")
async def get_chat_menu_button(call: Call) -> dict[str, Any]:
    return {"type": "commands"}


@handles("getFile")
async def get_file(call: Call) -> dict[str, Any]:
    stored = call.emu.files.get(call.params["file_id"])
    if stored is None:
        raise violation("invalid file_id", f"getFile: unknown file_id {call.params['file_id']!r}")
    return stored.file_api()


@handles("getChat")
async def get_chat(call: Call) -> dict[str, Any]:
    chat = call.emu.find_chat(_int_or_none(call.params["chat_id"]))
    if chat is None:
        raise bad_request("chat not found")
    return {
        **chat.chat_api(),
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": False,
            "limited_gifts": False,
            "unique_gifts": False,
            "premium_subscription": False,
            "gifts_from_channels": False,
        },
    }


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def unsupported(name: str) -> ApiError:
    return violation(
        f"method {name} is not supported by the emulator", f"{name} exists in the Bot API but is not emulated"
    )
