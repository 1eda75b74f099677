"""The control API: the Python API of core.Engine over HTTP (JSON in, JSON out), for a
test process driving an emulator that runs in another process (`python -m emulator`).

    POST /_emu/bots            {token, username?, first_name?}          -> bot
    POST /_emu/users           {first_name, last_name?, username?, language_code?, id?, started?}
    POST /_emu/groups          {title, member_ids, id?}
    POST /_emu/send_text       {user_id, text, bot?, chat_id?}          -> Update
    POST /_emu/send_photo      {user_id, data_base64, caption?, bot?, chat_id?}
    POST /_emu/press           {user_id, message_id, text? | data?, bot?} -> Update
    POST /_emu/block|unblock   {user_id, bot?, notify?}
    POST /_emu/redeliver       {update_id, bot?}                        -> Update
    GET  /_emu/chat/<chat_id>?bot=&include_deleted=1                   -> [message]
    GET  /_emu/next_message/<chat_id>?timeout=&bot=                    -> message (408 on timeout)
    POST /_emu/faults/429      {count?, retry_after?, method?, chat_id?}
    POST /_emu/faults/5xx      {count?, status?, method?, chat_id?, after_send?, html?}
    POST /_emu/faults/slow     {seconds, method?, chat_id?, count?}
    POST /_emu/faults/clear
    POST /_emu/limits          {enabled, global_per_sec?, per_chat_per_sec?, per_group_per_min?,
                                per_chat_burst?}
    GET  /_emu/stats | /_emu/violations | /_emu/errors | /_emu/callback_answers
    GET  /_emu/bots/<bot>      pending updates, webhook and its attempts
    POST /_emu/reset_records

`bot` is a token or a bot id and may be left out when one bot is registered. Misuse (an
unknown user, a button that does not exist) answers 400 {"error": "..."}.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from emulator.core import Engine
from emulator.errors import SimError
from emulator.keys import EMULATOR
from emulator.state import ChatMessage, SimGroup, SimUser
from emulator.wire import json_dumps

Route = Callable[[Engine, dict[str, Any], web.Request], Awaitable[Any]]
_routes: list[tuple[str, str, Route]] = []


def route(method: str, path: str) -> Callable[[Route], Route]:
    def register(fn: Route) -> Route:
        _routes.append((method, path, fn))
        return fn

    return register


def add_control_routes(app: web.Application) -> None:
    for method, path, fn in _routes:
        app.router.add_route(method, f"/_emu{path}", _wrap(fn))


def _wrap(fn: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        emu = request.app[EMULATOR]
        try:
            body = await request.json() if request.body_exists else {}
            if not isinstance(body, dict):
                raise SimError("the body must be a JSON object")
            result = await fn(emu, body, request)
        except TimeoutError as e:
            return web.json_response({"error": str(e)}, status=408, dumps=json_dumps)
        except (SimError, KeyError, ValueError, TypeError) as e:
            return web.json_response({"error": f"{type(e).__name__}: {e}"}, status=400, dumps=json_dumps)
        return web.json_response(result, dumps=json_dumps)

    return handler


# -- views --------------------------------------------------------------------------------------


def message_view(msg: ChatMessage) -> dict[str, Any]:
    """A bot message as the control API shows it: the Message object plus what a test needs."""
    return {
        **msg.to_api(),
        "reply_markup_sent": msg.reply_markup,
        "buttons": msg.button_texts,
        "deleted": msg.deleted,
        "edits": [dataclasses.asdict(v) for v in msg.history],
        "file_path": (msg.photo or msg.document).file_path if (msg.photo or msg.document) else None,
        "sent_at": msg.sent_at,
        "method": msg.method,
    }


def user_view(user: SimUser) -> dict[str, Any]:
    return {**user.to_api(), "chat_id": user.chat_id, "started": user.started}


def _user(emu: Engine, body: dict[str, Any]) -> SimUser:
    user = emu.users.get(int(body["user_id"]))
    if user is None:
        raise SimError(f"unknown user {body['user_id']}")
    return user


def _group(emu: Engine, body: dict[str, Any]) -> SimGroup | None:
    if body.get("chat_id") is None:
        return None
    group = emu.groups.get(int(body["chat_id"]))
    if group is None:
        raise SimError(f"unknown group {body['chat_id']}")
    return group


def _bot_ref(value: Any) -> str | int | None:
    if value is None or value == "":
        return None
    return int(value) if isinstance(value, int) or str(value).lstrip("-").isdigit() else str(value)


# -- routes -------------------------------------------------------------------------------------


@route("GET", "")
async def overview(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    return {
        "base_url": emu.base_url,
        "bots": [{"id": b.id, "username": b.username} for b in emu.bots.values()],
        "users": len(emu.users),
        "groups": len(emu.groups),
    }


@route("POST", "/bots")
async def add_bot(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    bot = emu.add_bot(body["token"], username=body.get("username"), first_name=body.get("first_name"))
    return bot.me()


@route("GET", "/bots/{bot}")
async def bot_state(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    bot = emu.bot(_bot_ref(request.match_info["bot"]))
    return {
        **bot.me(),
        "pending_updates": [q.payload for q in bot.queue],
        "webhook": dataclasses.asdict(bot.webhook) if bot.webhook else None,
        "webhook_attempts": [dataclasses.asdict(a) for a in bot.webhook_attempts],
        "commands": [{"scope": k[0], "language_code": k[1], "commands": v} for k, v in bot.commands.items()],
    }


@route("POST", "/users")
async def add_user(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    user = emu.add_user(
        body.get("first_name", "Test"),
        last_name=body.get("last_name"),
        username=body.get("username"),
        language_code=body.get("language_code", "zh"),
        id=body.get("id"),
        started=bool(body.get("started", True)),
    )
    return user_view(user)


@route("POST", "/groups")
async def add_group(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    members = [_user(emu, {"user_id": uid}) for uid in body.get("member_ids", [])]
    group = emu.add_group(body["title"], members, id=body.get("id"))
    return {**group.chat_api(), "member_ids": [m.id for m in group.members]}


@route("POST", "/send_text")
async def send_text(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    return await emu.send_text(
        _user(emu, body), body["text"], bot=_bot_ref(body.get("bot")), chat=_group(emu, body)
    )


@route("POST", "/send_photo")
async def send_photo(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    data = base64.b64decode(body["data_base64"])
    return await emu.send_photo(
        _user(emu, body), data, body.get("caption"), bot=_bot_ref(body.get("bot")), chat=_group(emu, body)
    )


@route("POST", "/press")
async def press(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    user = _user(emu, body)
    bot = emu.bot(_bot_ref(body.get("bot")))
    chat_id = int(body.get("chat_id") or user.id)
    message = emu.dialog(bot.id, chat_id).find(int(body["message_id"]))
    if message is None:
        raise SimError(f"no message {body['message_id']} in chat {chat_id}")
    return await emu.press(user, message, text=body.get("text"), data=body.get("data"), bot=bot)


@route("POST", "/block")
async def block(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    emu.block(_user(emu, body), _bot_ref(body.get("bot")), notify=bool(body.get("notify", True)))
    return True


@route("POST", "/unblock")
async def unblock(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    emu.unblock(_user(emu, body), _bot_ref(body.get("bot")), notify=bool(body.get("notify", True)))
    return True


@route("POST", "/redeliver")
async def redeliver(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    bot = emu.bot(_bot_ref(body.get("bot")))
    update = bot.all_updates.get(int(body["update_id"]))
    if update is None:
        raise SimError(f"bot {bot.id} never had update {body['update_id']}")
    return emu.redeliver(update, bot=bot)


@route("GET", "/chat/{chat_id}")
async def chat(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    q = request.query
    messages = emu.chat(
        int(request.match_info["chat_id"]),
        bot=_bot_ref(q.get("bot")),
        include_deleted=q.get("include_deleted") == "1",
    )
    return [message_view(m) for m in messages]


@route("GET", "/next_message/{chat_id}")
async def next_message(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    q = request.query
    msg = await emu.next_message(
        int(request.match_info["chat_id"]), timeout=float(q.get("timeout", 5)), bot=_bot_ref(q.get("bot"))
    )
    return message_view(msg)


@route("POST", "/faults/429")
async def fault_429(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    emu.faults.inject_429(
        count=body.get("count", 1),
        retry_after=int(body.get("retry_after", 1)),
        method=body.get("method"),
        chat_id=body.get("chat_id"),
    )
    return True


@route("POST", "/faults/5xx")
async def fault_5xx(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    emu.faults.inject_5xx(
        count=body.get("count", 1),
        status=int(body.get("status", 500)),
        method=body.get("method"),
        chat_id=body.get("chat_id"),
        after_send=bool(body.get("after_send", False)),
        html=bool(body.get("html", False)),
    )
    return True


@route("POST", "/faults/slow")
async def fault_slow(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    emu.faults.slow(
        float(body["seconds"]),
        method=body.get("method"),
        chat_id=body.get("chat_id"),
        count=body.get("count"),
    )
    return True


@route("POST", "/faults/clear")
async def faults_clear(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    emu.faults.clear()
    return True


@route("POST", "/limits")
async def limits(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    if body.get("enabled", True):
        settings = ("global_per_sec", "per_chat_per_sec", "per_group_per_min", "per_chat_burst")
        emu.limits.enable(**{k: body[k] for k in settings if k in body})
    else:
        emu.limits.disable()
    return {"enabled": emu.limits.enabled}


@route("GET", "/stats")
async def stats(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    return {
        **emu.stats.summary(),
        "per_chat": {str(k): v for k, v in emu.stats.per_chat().items()},
        "send_times": [s.at for s in emu.stats.sends],
    }


@route("GET", "/violations")
async def violations(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    return [dataclasses.asdict(v) for v in emu.violations]


@route("GET", "/errors")
async def errors(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    return [dataclasses.asdict(e) for e in emu.errors]


@route("GET", "/callback_answers")
async def callback_answers(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    return [dataclasses.asdict(a) for a in emu.callback_answers]


@route("POST", "/reset_records")
async def reset_records(emu: Engine, body: dict[str, Any], request: web.Request) -> Any:
    emu.reset_records()
    return True
