"""A thin client for the control API of an emulator running in another process.

    async with RemoteEmulator("http://127.0.0.1:8081") as emu:
        user = await emu.add_user("张三")
        await emu.send_text(user["id"], "/start")
        reply = await emu.next_message(user["id"])

Method names follow emulator.Emulator; arguments and results are plain JSON (dicts, ids).
"""

from __future__ import annotations

import base64
from typing import Any

import aiohttp


class ControlError(RuntimeError):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"{status}: {error}")
        self.status = status


class RemoteEmulator:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RemoteEmulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None, **query: Any) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        params = {k: str(v) for k, v in query.items() if v is not None}
        async with self._session.request(
            method, f"{self.base_url}/_emu{path}", json=body, params=params
        ) as resp:
            data = await resp.json()
            if resp.status != 200:
                if resp.status == 408:
                    raise TimeoutError(data.get("error"))
                raise ControlError(resp.status, data.get("error", ""))
            return data

    async def add_bot(self, token: str, **fields: Any) -> dict[str, Any]:
        return await self._call("POST", "/bots", {"token": token, **fields})

    async def add_user(self, first_name: str = "Test", **fields: Any) -> dict[str, Any]:
        return await self._call("POST", "/users", {"first_name": first_name, **fields})

    async def add_group(self, title: str, member_ids: list[int]) -> dict[str, Any]:
        return await self._call("POST", "/groups", {"title": title, "member_ids": member_ids})

    async def send_text(
        self, user_id: int, text: str, *, bot: str | int | None = None, chat_id: int | None = None
    ) -> Any:
        return await self._call(
            "POST", "/send_text", {"user_id": user_id, "text": text, "bot": bot, "chat_id": chat_id}
        )

    async def send_photo(
        self, user_id: int, data: bytes, caption: str | None = None, *, bot: str | None = None
    ) -> Any:
        body = {
            "user_id": user_id,
            "data_base64": base64.b64encode(data).decode(),
            "caption": caption,
            "bot": bot,
        }
        return await self._call("POST", "/send_photo", body)

    async def press(
        self,
        user_id: int,
        message_id: int,
        *,
        text: str | None = None,
        data: str | None = None,
        bot: str | None = None,
    ) -> Any:
        body = {"user_id": user_id, "message_id": message_id, "text": text, "data": data, "bot": bot}
        return await self._call("POST", "/press", body)

    async def block(self, user_id: int, *, bot: str | None = None, notify: bool = True) -> None:
        await self._call("POST", "/block", {"user_id": user_id, "bot": bot, "notify": notify})

    async def unblock(self, user_id: int, *, bot: str | None = None, notify: bool = True) -> None:
        await self._call("POST", "/unblock", {"user_id": user_id, "bot": bot, "notify": notify})

    async def redeliver(self, update_id: int, *, bot: str | None = None) -> Any:
        return await self._call("POST", "/redeliver", {"update_id": update_id, "bot": bot})

    async def chat(
        self, chat_id: int, *, bot: str | None = None, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        return await self._call(
            "GET", f"/chat/{chat_id}", bot=bot, include_deleted="1" if include_deleted else None
        )

    async def next_message(
        self, chat_id: int, *, timeout: float = 5.0, bot: str | None = None
    ) -> dict[str, Any]:
        return await self._call("GET", f"/next_message/{chat_id}", timeout=timeout, bot=bot)

    async def inject_429(self, count: int | None = 1, retry_after: int = 1, **where: Any) -> None:
        await self._call("POST", "/faults/429", {"count": count, "retry_after": retry_after, **where})

    async def inject_5xx(self, count: int | None = 1, status: int = 500, **where: Any) -> None:
        await self._call("POST", "/faults/5xx", {"count": count, "status": status, **where})

    async def slow(self, seconds: float, **where: Any) -> None:
        await self._call("POST", "/faults/slow", {"seconds": seconds, **where})

    async def clear_faults(self) -> None:
        await self._call("POST", "/faults/clear")

    async def enable_limits(self, **settings: Any) -> None:
        await self._call("POST", "/limits", {"enabled": True, **settings})

    async def disable_limits(self) -> None:
        await self._call("POST", "/limits", {"enabled": False})

    async def stats(self) -> dict[str, Any]:
        return await self._call("GET", "/stats")

    async def violations(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/violations")

    async def errors(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/errors")

    async def callback_answers(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/callback_answers")

    async def bot_state(self, bot: str | int) -> dict[str, Any]:
        return await self._call("GET", f"/bots/{bot}")

    async def reset_records(self) -> None:
        await self._call("POST", "/reset_records")
