"""The DingTalk OpenAPI calls the bridge makes, without blocking the event loop (the SDK's own
card and upload helpers use blocking `requests`). Keeps DingTalk's rules (README §6): one cached
access token renewed before its 7200 s run out, one pace for every call, no identical content to
one person twice a day."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiolimiter import AsyncLimiter

MARKDOWN_BUTTON_CARD = "1366a1eb-bc54-4859-ac88-517c56a9acb1.schema"  # SDK card_instance.py
TOKEN_MARGIN = 5 * 60  # renew this long before DingTalk's expireIn, as the SDK does
CALLS_PER_SECOND = 20  # our pace for OpenAPI calls (DingTalk publishes no figure: README §6)


class DingTalkError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"DingTalk {status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Button:
    text: str
    id: str | None = None  # a callback button
    url: str | None = None  # a link button


def new_card_id() -> str:
    """A card's outTrackId (ours to choose)."""
    return f"bb{secrets.token_hex(16)}"


class DingTalkApi:
    """One app's calls. `endpoint` is the new OpenAPI (api.dingtalk.com), `oapi` the old one
    (oapi.dingtalk.com, media upload); the stand-in serves both."""

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        *,
        endpoint: str,
        oapi: str,
        robot_code: str | None = None,
        clock: Callable[[], float] = time.time,
        day: Callable[[], str] | None = None,
    ) -> None:
        self.app_key, self.app_secret = app_key, app_secret
        self.robot_code = robot_code or app_key
        self.endpoint, self.oapi = endpoint.rstrip("/"), oapi.rstrip("/")
        self.clock = clock
        # DingTalk counts days in Beijing time.
        self.day = day or (lambda: time.strftime("%Y-%m-%d", time.gmtime(self.clock() + 8 * 3600)))
        self._token: tuple[str, float] | None = None
        self._pace = AsyncLimiter(CALLS_PER_SECOND, 1)
        self._sent_today: dict[tuple[str, str], int] = {}  # (user, sha256 of content) -> times, this day
        self._sent_day = ""
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._http

    # ---- token ----
    async def token(self) -> str:
        if self._token is not None and self.clock() < self._token[1]:
            return self._token[0]
        async with self.http.post(
            f"{self.endpoint}/v1.0/oauth2/accessToken",
            json={"appKey": self.app_key, "appSecret": self.app_secret},
        ) as r:
            body = await r.json(content_type=None)
            if r.status != 200:
                raise DingTalkError(r.status, str(body.get("code")), str(body.get("message")))
        self._token = (body["accessToken"], self.clock() + int(body["expireIn"]) - TOKEN_MARGIN)
        return self._token[0]

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in (1, 2):
            async with self._pace:
                headers = {"x-acs-dingtalk-access-token": await self.token()}
                async with self.http.request(
                    method, f"{self.endpoint}{path}", json=body, headers=headers
                ) as r:
                    got = await r.json(content_type=None)
            if r.status == 401 and attempt == 1:
                self._token = None  # revoked or expired early: fetch a new one once
                continue
            if r.status != 200:
                raise DingTalkError(r.status, str(got.get("code")), str(got.get("message")))
            return dict(got)
        raise AssertionError("unreachable")

    # ---- robot 1:1 ----
    async def send(self, user_id: str, msg_key: str, param: dict[str, Any]) -> str:
        """One robot message to one person; returns its processQueryKey (for recall)."""
        param, counted = self._unique(user_id, msg_key, param)
        got = await self._call(
            "POST",
            "/v1.0/robot/oToMessages/batchSend",
            {
                "robotCode": self.robot_code,
                "userIds": [user_id],
                "msgKey": msg_key,
                "msgParam": json.dumps(param, ensure_ascii=False),
            },
        )
        if user_id in (got.get("flowControlledStaffIdList") or []):
            self._sent_today[counted] -= 1  # not delivered: its retry is not a repeat
            raise DingTalkError(429, "flowControlled", "DingTalk throttled this person")
        return str(got["processQueryKey"])

    def _unique(
        self, user_id: str, msg_key: str, param: dict[str, Any]
    ) -> tuple[dict[str, Any], tuple[str, str]]:
        """DingTalk silently drops the same content to the same person a second time in a day;
        a repeat gets a visible counter so it differs and arrives. Returns the param to send and
        the key it is counted under."""
        today = self.day()
        if today != self._sent_day:
            self._sent_day, self._sent_today = today, {}
        key = (user_id, hashlib.sha256(json.dumps([msg_key, param], sort_keys=True).encode()).hexdigest())
        times = self._sent_today.get(key, 0)
        self._sent_today[key] = times + 1
        if times == 0:
            return param, key
        mark = f"（{times + 1}）"
        if "text" in param:
            return {**param, "text": f"{param['text']}  \n{mark}"}, key
        if "content" in param:
            return {**param, "content": f"{param['content']}\n{mark}"}, key
        return param, key  # a file is a new media id each time: never identical

    async def recall(self, process_query_keys: list[str]) -> None:
        await self._call(
            "POST",
            "/v1.0/robot/otoMessages/batchRecall",
            {"robotCode": self.robot_code, "processQueryKeys": process_query_keys},
        )

    # ---- cards ----
    @staticmethod
    def card_data(markdown: str, buttons: list[Button], tips: str = "") -> dict[str, Any]:
        msg_buttons = []
        for b in buttons:
            if b.id is not None:
                msg_buttons.append({"text": b.text, "color": "blue", "id": b.id, "request": True})
            else:
                msg_buttons.append({"text": b.text, "color": "gray", "url": b.url, "iosUrl": b.url})
        return {
            "markdown": markdown,
            "tips": tips,  # the small line under the card (the bridge shows toasts there)
            "sys_full_json_obj": json.dumps({"msgButtons": msg_buttons}, ensure_ascii=False),
        }

    async def send_card(
        self,
        user_id: str,
        markdown: str,
        buttons: list[Button],
        *,
        tips: str = "",
        forward: bool = False,
        out_track_id: str | None = None,
    ) -> str:
        """A card in the person's robot chat (its outTrackId: `out_track_id`, else a new one);
        `forward`: they may forward it to others."""
        out_track_id = out_track_id or new_card_id()
        await self._call(
            "POST",
            "/v1.0/card/instances/createAndDeliver",
            {
                "cardTemplateId": MARKDOWN_BUTTON_CARD,
                "outTrackId": out_track_id,
                "cardData": {"cardParamMap": self.card_data(markdown, buttons, tips)},
                "callbackType": "STREAM",
                "imRobotOpenSpaceModel": {"supportForward": forward},
                "openSpaceId": f"dtv1.card//IM_ROBOT.{user_id}",
                "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT"},
                "userIdType": 1,
            },
        )
        return out_track_id

    async def update_card(
        self, out_track_id: str, markdown: str, buttons: list[Button], *, tips: str = ""
    ) -> None:
        await self._call(
            "PUT",
            "/v1.0/card/instances",
            {
                "outTrackId": out_track_id,
                "cardData": {"cardParamMap": self.card_data(markdown, buttons, tips)},
            },
        )

    async def update_card_tips(self, out_track_id: str, tips: str) -> None:
        """Only the card's tips line; its text and buttons stay (updateCardDataByKey)."""
        await self._call(
            "PUT",
            "/v1.0/card/instances",
            {
                "outTrackId": out_track_id,
                "cardData": {"cardParamMap": {"tips": tips}},
                "cardUpdateOptions": {"updateCardDataByKey": True},
            },
        )

    # ---- media ----
    async def upload(self, kind: str, data: bytes, file_name: str, mime_type: str) -> str:
        # The file name as UTF-8, as browsers send it (aiohttp would percent-encode it otherwise,
        # and the server would keep the escapes as the name).
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("type", kind)
        form.add_field("media", data, filename=file_name, content_type=mime_type)
        async with self._pace:
            token = await self.token()
            async with self.http.post(
                f"{self.oapi}/media/upload", params={"access_token": token}, data=form
            ) as r:
                got = await r.json(content_type=None)
        if got.get("errcode") != 0:
            raise DingTalkError(400, str(got.get("errcode")), str(got.get("errmsg")))
        return str(got["media_id"])

    async def download(self, download_code: str) -> bytes:
        got = await self._call(
            "POST",
            "/v1.0/robot/messageFiles/download",
            {"downloadCode": download_code, "robotCode": self.robot_code},
        )
        async with self.http.get(got["downloadUrl"]) as r:
            r.raise_for_status()
            return await r.read()
