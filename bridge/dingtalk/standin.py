"""A local stand-in for DingTalk (钉钉): the OpenAPI endpoints the bridge calls and the Stream-mode
WebSocket, so tests and the offline demo run the real `dingtalk-stream` SDK without a DingTalk
account. Built from the SDK's client code and DingTalk's API reference (bridge/dingtalk/README.md
names the source of every endpoint and rule); it imports nothing of ours.

The real SDK reaches it through `DINGTALK_OPENAPI_ENDPOINT=<standin.endpoint>` (read when
`dingtalk_stream` is imported). Python code plays the people: `add_user`, `send_text`,
`send_picture`, `press`; what they were sent is in `inbox(user)`.

Delivery is DingTalk's: a frame stays pending until the client acks its `messageId`; frames not
acked when the socket goes away are sent again, same `messageId`, on the next connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

__all__ = ["Card", "DingTalkStandIn", "DtUser", "Sent", "StandInError", "button_texts", "card_buttons"]

T = TypeVar("T")

BOT_MESSAGE_TOPIC = "/v1.0/im/bot/messages/get"
CARD_CALLBACK_TOPIC = "/v1.0/card/instances/callback"
# DingTalk's published limits (README §6).
MAX_BATCH_USERS = 20
MEDIA_LIMITS = {
    "image": 20 * 1024 * 1024,
    "file": 20 * 1024 * 1024,
    "video": 20 * 1024 * 1024,
    "voice": 2 * 1024 * 1024,
}
MSG_KEYS = {"sampleText", "sampleMarkdown", "sampleImageMsg", "sampleFile", "sampleLink", "sampleActionCard"}


class StandInError(Exception):
    """The test asked the stand-in for something a DingTalk person could not do."""


@dataclass
class DtUser:
    user_id: str  # DingTalk's userId (staffId) inside the organization
    nick: str
    union_id: str


@dataclass
class Sent:
    """A robot message as the person's DingTalk shows it."""

    seq: int
    user_id: str
    msg_key: str
    param: dict[str, Any]
    process_query_key: str
    day: str
    dropped: bool = False  # DingTalk took it (success) but the person never saw it
    recalled: bool = False


@dataclass
class Card:
    """An interactive card instance; `data` is its `cardParamMap` as it is now."""

    seq: int
    out_track_id: str
    template_id: str
    data: dict[str, Any]
    callback_type: str
    user_ids: list[str] = field(default_factory=list)  # delivered to these robot chats
    updates: int = 0
    forwardable: bool = False  # imRobotOpenSpaceModel.supportForward
    forwarded_to: list[str] = field(default_factory=list)  # people it was forwarded to


@dataclass
class Frame:
    message_id: str
    body: dict[str, Any]
    sent_times: int = 0


@dataclass
class Connection:
    ticket: str
    client_id: str
    subscriptions: list[dict[str, str]]
    ws: web.WebSocketResponse | None = None
    connection_id: str = ""


class DingTalkStandIn:
    """DingTalk's OpenAPI and Stream gateway on one local aiohttp server."""

    def __init__(
        self,
        app_key: str = "dingstandinkey",
        app_secret: str = "standin-secret",
        *,
        robot_code: str | None = None,
        corp_id: str = "dingcorpstandin",
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: int = 7200,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_key, self.app_secret = app_key, app_secret
        self.robot_code = robot_code or app_key
        self.corp_id = corp_id
        self.host, self.port = host, port
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.users: dict[str, DtUser] = {}
        self.sent: list[Sent] = []
        self.cards: dict[str, Card] = {}
        self.media: dict[str, tuple[str, str, bytes]] = {}  # media_id -> (type, filename, bytes)
        self.downloads: dict[str, tuple[str, bytes]] = {}  # downloadCode -> (filename, bytes)
        self.tokens: dict[str, float] = {}  # accessToken -> expires at
        self.token_requests = 0
        self.connections_opened = 0
        self.acks: list[dict[str, Any]] = []  # every ack frame a client sent, in order
        self.calls: list[tuple[str, str]] = []  # (method, path) of every OpenAPI call
        # While set and not open, robot messages wait before DingTalk takes them (a slow DingTalk).
        self.gate: asyncio.Event | None = None
        # userId -> how many of the next robot messages to them DingTalk throttles: the call
        # succeeds, the person is listed in flowControlledStaffIdList and gets nothing.
        self.throttle: dict[str, int] = {}
        self.throttled = 0  # robot messages throttled so far
        self._tickets: dict[str, Connection] = {}
        self._live: list[Connection] = []
        self._pending: dict[str, Frame] = {}  # sent (or to send), not acked yet
        self._acked: dict[str, dict[str, Any]] = {}  # messageId -> the frame, once acked
        self._seq = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    # ---- life ----
    @property
    def endpoint(self) -> str:
        """What `DINGTALK_OPENAPI_ENDPOINT` is set to."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> DingTalkStandIn:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_post("/v1.0/gateway/connections/open", self._open_connection)
        r.add_get("/connect", self._connect)
        r.add_post("/v1.0/oauth2/accessToken", self._access_token)
        r.add_post("/v1.0/robot/oToMessages/batchSend", self._batch_send)
        r.add_post("/v1.0/robot/otoMessages/batchRecall", self._batch_recall)
        r.add_post("/v1.0/card/instances", self._card_create)
        r.add_put("/v1.0/card/instances", self._card_update)
        r.add_post("/v1.0/card/instances/deliver", self._card_deliver)
        r.add_post("/v1.0/card/instances/createAndDeliver", self._card_create_and_deliver)
        r.add_post("/media/upload", self._media_upload)
        r.add_post("/v1.0/robot/messageFiles/download", self._message_file_download)
        r.add_get("/_files/{code}", self._file)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        await self.drop_stream()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DingTalkStandIn:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- people ----
    def add_user(self, nick: str, user_id: str | None = None) -> DtUser:
        n = len(self.users) + 1
        user = DtUser(user_id=user_id or f"staff{n:04d}", nick=nick, union_id=f"union{secrets.token_hex(6)}")
        self.users[user.user_id] = user
        return user

    async def send_text(self, user: DtUser, text: str) -> str:
        """The person types `text` in the robot's 1:1 chat; returns the frame's messageId."""
        return await self._bot_message(user, {"msgtype": "text", "text": {"content": text}})

    async def send_picture(self, user: DtUser, data: bytes) -> str:
        code = self._download_code("image.png", data)
        return await self._bot_message(user, {"msgtype": "picture", "content": {"downloadCode": code}})

    async def send_file(self, user: DtUser, data: bytes, file_name: str) -> str:
        code = self._download_code(file_name, data)
        return await self._bot_message(
            user, {"msgtype": "file", "content": {"downloadCode": code, "fileName": file_name}}
        )

    async def press(self, user: DtUser, card: Card | str, button_id: str) -> str:
        """The person presses a callback button of a card in their chat, as it is now."""
        card = card if isinstance(card, Card) else self.cards[card]
        if user.user_id not in card.user_ids and user.user_id not in card.forwarded_to:
            raise StandInError("this card is not in the person's chat")
        ids = [b.get("id") for b in _buttons(card.data) if b.get("request")]
        if button_id not in ids:
            raise StandInError(f"no callback button {button_id!r} on the card now (has {ids})")
        content = {"cardPrivateData": {"actionIds": [button_id], "params": {"id": button_id}}}
        data = {
            "outTrackId": card.out_track_id,
            "corpId": self.corp_id,
            "userId": user.user_id,
            "type": "actionCallback",
            "content": json.dumps(content, ensure_ascii=False),
            "extension": "{}",
        }
        return await self.push("CALLBACK", CARD_CALLBACK_TOPIC, data)

    async def press_text(self, user: DtUser, card: Card, text: str) -> str:
        """Press the callback button labelled `text` (as the card shows it now)."""
        ids = [b.get("id") for b in _buttons(card.data) if b.get("text") == text and b.get("request")]
        if not ids:
            raise StandInError(f"no callback button {text!r} on the card now (has {button_texts(card)})")
        return await self.press(user, card, str(ids[0]))

    def forward(self, user: DtUser, card: Card, to: DtUser) -> None:
        """The person forwards a card from their robot chat to a colleague (a chat between
        people: the colleague sees it and can press it). Only a card created with
        supportForward can be forwarded."""
        if user.user_id not in card.user_ids:
            raise StandInError("this card is not in the person's chat")
        if not card.forwardable:
            raise StandInError("this card cannot be forwarded (supportForward is false)")
        if to.user_id not in card.forwarded_to:
            card.forwarded_to.append(to.user_id)

    # ---- what people see ----
    def inbox(self, user: DtUser, *, include_dropped: bool = False) -> list[Sent | Card]:
        """What the person's robot chat shows, oldest first (cards as they are now)."""
        items: list[Sent | Card] = [
            s for s in self.sent if s.user_id == user.user_id and (include_dropped or not s.dropped)
        ]
        items += [c for c in self.cards.values() if user.user_id in c.user_ids]
        return sorted(items, key=lambda i: i.seq)

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Re-check `predicate` on every change of the stand-in's state until it is truthy."""
        async with self._changed:
            return await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    def pending(self) -> list[str]:
        """messageIds sent to the client (or waiting for a connection) and not acked yet."""
        return list(self._pending)

    @property
    def connected(self) -> bool:
        return any(c.ws is not None and not c.ws.closed for c in self._live)

    # ---- the stream ----
    async def push(self, kind: str, topic: str, data: dict[str, Any]) -> str:
        """Send an EVENT or CALLBACK frame; it stays pending until acked."""
        message_id = secrets.token_hex(8)
        headers = {
            "appId": self.app_key,
            "contentType": "application/json",
            "messageId": message_id,
            "time": str(int(self.clock() * 1000)),
            "topic": topic,
        }
        frame = Frame(
            message_id, {"specVersion": "1.0", "type": kind, "headers": headers, "data": json.dumps(data)}
        )
        self._pending[message_id] = frame
        await self._send_frame(frame)
        return message_id

    async def system(self, topic: str, data: dict[str, Any] | None = None) -> None:
        """A SYSTEM frame (`ping`, `disconnect`) to every live connection."""
        body = {
            "specVersion": "1.0",
            "type": "SYSTEM",
            "headers": {"contentType": "application/json", "messageId": secrets.token_hex(8), "topic": topic},
            "data": json.dumps(data or {}),
        }
        for conn in self._live:
            if conn.ws is not None and not conn.ws.closed:
                await conn.ws.send_str(json.dumps(body))

    async def drop_stream(self) -> None:
        """The gateway goes away: every socket closes without a word; unacked frames wait."""
        for conn in list(self._live):
            if conn.ws is not None:
                await conn.ws.close(code=1011, message=b"stand-in dropped the stream")
        self._live.clear()
        await self._notify()

    async def redeliver(self, message_id: str) -> None:
        """DingTalk sends a frame again (as when it missed the ack), same messageId."""
        frame = self._pending.get(message_id) or Frame(message_id, self._acked[message_id])
        self._pending[message_id] = frame
        await self._send_frame(frame)

    async def _send_frame(self, frame: Frame) -> None:
        for conn in self._live:
            if conn.ws is not None and not conn.ws.closed:
                frame.sent_times += 1
                frame.body["headers"]["connectionId"] = conn.connection_id
                await conn.ws.send_str(json.dumps(frame.body, ensure_ascii=False))
                return
        # No connection now: it goes out when the client connects again.

    async def _bot_message(self, user: DtUser, content: dict[str, Any]) -> str:
        now_ms = int(self.clock() * 1000)
        data = {
            "conversationId": f"cid{hashlib.sha256(user.user_id.encode()).hexdigest()[:16]}",
            "conversationType": "1",
            "chatbotCorpId": self.corp_id,
            "chatbotUserId": f"robot{self.robot_code}",
            "robotCode": self.robot_code,
            "msgId": f"msg{secrets.token_hex(8)}",
            "senderNick": user.nick,
            "senderId": f"${user.union_id}",
            "senderStaffId": user.user_id,
            "senderCorpId": self.corp_id,
            "isAdmin": False,
            "createAt": now_ms,
            "sessionWebhook": f"{self.endpoint}/robot/sendBySession?session={secrets.token_hex(6)}",
            "sessionWebhookExpiredTime": now_ms + 90 * 60 * 1000,
            **content,
        }
        return await self.push("CALLBACK", BOT_MESSAGE_TOPIC, data)

    def _download_code(self, file_name: str, data: bytes) -> str:
        code = f"dl{secrets.token_hex(10)}"
        self.downloads[code] = (file_name, data)
        return code

    async def _record(self, request: web.Request) -> None:
        self.calls.append((request.method, request.path))
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ---- HTTP: gateway ----
    async def _open_connection(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        body = await request.json()
        if body.get("clientId") != self.app_key or body.get("clientSecret") != self.app_secret:
            return _error(401, "InvalidAuthentication", "clientId or clientSecret is wrong")
        ticket = secrets.token_urlsafe(16)
        self._tickets[ticket] = Connection(ticket, body["clientId"], list(body.get("subscriptions") or []))
        return web.json_response({"endpoint": f"ws://{self.host}:{self.port}/connect", "ticket": ticket})

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        conn = self._tickets.pop(request.query.get("ticket", ""), None)
        if conn is None:  # a ticket is good for one connection
            return _error(403, "InvalidTicket", "ticket unknown or used")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn.ws, conn.connection_id = ws, secrets.token_hex(6)
        self._live.append(conn)
        self.connections_opened += 1
        await self._notify()
        # Whatever was not acked on the last connection goes out again, same messageId.
        for frame in list(self._pending.values()):
            await self._send_frame(frame)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                ack = json.loads(msg.data)
                self.acks.append(ack)
                message_id = ack.get("headers", {}).get("messageId")
                frame = self._pending.get(message_id) if message_id else None
                if frame is not None and ack.get("code") == 200:
                    self._acked[message_id] = frame.body
                    del self._pending[message_id]
                await self._notify()
        finally:
            if conn in self._live:
                self._live.remove(conn)
            await self._notify()
        return ws

    # ---- HTTP: OpenAPI ----
    async def _access_token(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        body = await request.json()
        if body.get("appKey") != self.app_key or body.get("appSecret") != self.app_secret:
            return _error(400, "invalidClientIdOrSecret", "无效的appKey或appSecret")
        self.token_requests += 1
        token = secrets.token_hex(16)
        self.tokens[token] = self.clock() + self.token_lifetime
        return web.json_response({"accessToken": token, "expireIn": self.token_lifetime})

    def _authorized(self, request: web.Request) -> bool:
        token = request.headers.get("x-acs-dingtalk-access-token") or request.query.get("access_token", "")
        expires = self.tokens.get(token)
        return expires is not None and self.clock() < expires

    async def _json_call(self, request: web.Request) -> dict[str, Any] | web.Response:
        await self._record(request)
        if not self._authorized(request):
            return _error(401, "InvalidAuthentication", "不合法的access_token")
        try:
            return await request.json()
        except json.JSONDecodeError:
            return _error(400, "InvalidParameter", "body is not JSON")

    async def _batch_send(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_call(request)
        if isinstance(body, web.Response):
            return body
        if self.gate is not None:
            await self.gate.wait()
        users, key = body.get("userIds") or [], body.get("msgKey")
        if body.get("robotCode") != self.robot_code:
            return _error(400, "resource.not.found", "robot not found")
        if not users or len(users) > MAX_BATCH_USERS:
            return _error(400, "InvalidParameter", f"userIds: 1..{MAX_BATCH_USERS}")
        if key not in MSG_KEYS:
            return _error(400, "InvalidParameter", f"unknown msgKey {key!r}")
        try:
            param = json.loads(body.get("msgParam") or "")
        except json.JSONDecodeError:
            return _error(400, "InvalidParameter", "msgParam is not a JSON string")
        invalid = [u for u in users if u not in self.users]
        limited = [u for u in users if u not in invalid and self.throttle.get(u, 0) > 0]
        for user_id in limited:
            self.throttle[user_id] -= 1
            self.throttled += 1
        query_key = secrets.token_urlsafe(12)
        day = time.strftime("%Y-%m-%d", time.gmtime(self.clock() + 8 * 3600))  # DingTalk's day is Beijing's
        for user_id in users:
            if user_id in invalid or user_id in limited:
                continue
            # DingTalk's rule: the same content to the same person again the same day is taken
            # (success) and silently never shown.
            dropped = any(
                s.user_id == user_id
                and s.day == day
                and s.msg_key == key
                and s.param == param
                and not s.dropped
                for s in self.sent
            )
            self.sent.append(Sent(next(self._seq), user_id, key, param, query_key, day, dropped=dropped))
        await self._notify()
        return web.json_response(
            {
                "processQueryKey": query_key,
                "invalidStaffIdList": invalid,
                "flowControlledStaffIdList": limited,
            }
        )

    async def _batch_recall(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_call(request)
        if isinstance(body, web.Response):
            return body
        keys = set(body.get("processQueryKeys") or [])
        for s in self.sent:
            if s.process_query_key in keys:
                s.recalled = True
        await self._notify()
        return web.json_response({"successResult": sorted(keys), "failedResult": {}})

    def _new_card(self, body: dict[str, Any]) -> Card | web.Response:
        out_track_id, template = body.get("outTrackId"), body.get("cardTemplateId")
        if not out_track_id or not template:
            return _error(
                400, "param.outTrackIdEmpty" if not out_track_id else "param.cardTemplateIdEmpty", "empty"
            )
        if out_track_id in self.cards:
            return _error(400, "param.outTrackIdDuplicate", "outTrackId exists")
        data = (body.get("cardData") or {}).get("cardParamMap") or {}
        card = Card(next(self._seq), out_track_id, template, dict(data), body.get("callbackType", "STREAM"))
        card.forwardable = bool((body.get("imRobotOpenSpaceModel") or {}).get("supportForward"))
        self.cards[out_track_id] = card
        return card

    def _deliver(self, body: dict[str, Any]) -> web.Response | None:
        card = self.cards.get(body.get("outTrackId", ""))
        if card is None:
            return _error(400, "param.cardNotExist", "card not found")
        space = body.get("openSpaceId", "")
        prefix = "dtv1.card//IM_ROBOT."
        if not space.startswith(prefix):
            return _error(400, "param.openSpaceModelInvalid", "only IM_ROBOT spaces in the stand-in")
        user_id = space.removeprefix(prefix)
        if user_id not in self.users:
            return _error(400, "param.userIdNotExist", "no such user")
        if user_id not in card.user_ids:
            card.user_ids.append(user_id)
        return None

    async def _card_create(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_call(request)
        if isinstance(body, web.Response):
            return body
        card = self._new_card(body)
        if isinstance(card, web.Response):
            return card
        await self._notify()
        return web.json_response({"success": True, "result": card.out_track_id})

    async def _card_deliver(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_call(request)
        if isinstance(body, web.Response):
            return body
        if (refused := self._deliver(body)) is not None:
            return refused
        await self._notify()
        return web.json_response(
            {"success": True, "result": [{"spaceId": body["openSpaceId"], "success": True}]}
        )

    async def _card_create_and_deliver(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_call(request)
        if isinstance(body, web.Response):
            return body
        card = self._new_card(body)
        if isinstance(card, web.Response):
            return card
        if (refused := self._deliver(body)) is not None:
            del self.cards[card.out_track_id]
            return refused
        await self._notify()
        return web.json_response({"success": True, "result": {"outTrackId": card.out_track_id}})

    async def _card_update(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_call(request)
        if isinstance(body, web.Response):
            return body
        card = self.cards.get(body.get("outTrackId", ""))
        if card is None:
            return _error(400, "param.cardNotExist", "card not found")
        data = (body.get("cardData") or {}).get("cardParamMap") or {}
        if (body.get("cardUpdateOptions") or {}).get("updateCardDataByKey"):
            card.data.update(data)
        else:
            card.data = dict(data)
        card.updates += 1
        await self._notify()
        return web.json_response({"success": True, "result": True})

    async def _media_upload(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if not self._authorized(request):
            return web.json_response({"errcode": 40014, "errmsg": "不合法的access_token"})
        form = await request.post()
        kind, media = form.get("type"), form.get("media")
        if not isinstance(kind, str) or kind not in MEDIA_LIMITS:
            return web.json_response({"errcode": 40004, "errmsg": "不合法的媒体文件类型"})
        if not isinstance(media, web.FileField):
            return web.json_response({"errcode": 41001, "errmsg": "缺少media参数"})
        data = media.file.read()
        if len(data) > MEDIA_LIMITS[kind]:
            return web.json_response({"errcode": 40006, "errmsg": "不合法的文件大小"})
        media_id = f"@lA{secrets.token_urlsafe(18)}"
        self.media[media_id] = (kind, media.filename, data)
        return web.json_response(
            {
                "errcode": 0,
                "errmsg": "ok",
                "type": kind,
                "media_id": media_id,
                "created_at": int(self.clock() * 1000),
            }
        )

    async def _message_file_download(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_call(request)
        if isinstance(body, web.Response):
            return body
        code = body.get("downloadCode", "")
        if code not in self.downloads or body.get("robotCode") != self.robot_code:
            return _error(400, "resource.not.found", "downloadCode not found")
        return web.json_response({"downloadUrl": f"{self.endpoint}/_files/{code}"})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        found = self.downloads.get(request.match_info["code"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[1], content_type="application/octet-stream")


def card_buttons(card: Card) -> list[dict[str, Any]]:
    """The card's buttons as it is now: {text, id, request} (callback) or {text, url}."""
    return _buttons(card.data)


def button_texts(card: Card) -> list[str]:
    return [str(b.get("text")) for b in _buttons(card.data)]


def _buttons(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The buttons of a "markdown with buttons" card (README §4)."""
    full = data.get("sys_full_json_obj")
    if isinstance(full, str):
        full = json.loads(full)
    return list((full or {}).get("msgButtons") or [])


def _error(status: int, code: str, message: str) -> web.Response:
    # The new OpenAPI's error shape: HTTP status plus {code, message, requestid}.
    return web.json_response(
        {"code": code, "message": message, "requestid": secrets.token_hex(8)}, status=status
    )
