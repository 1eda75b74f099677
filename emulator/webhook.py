"""Webhook delivery, as Telegram does it: while a bot has a webhook, its pending updates are
POSTed to the URL with the `X-Telegram-Bot-Api-Secret-Token` header when a secret was set, up
to `max_connections` (setWebhook's, 40 by default) at once: the first `max_connections`
updates of the queue are in flight together, so they may be handled, and answered, in any
order (with max_connections=1, one at a time, in order). An update leaves the queue only when
the webhook answers 2xx; otherwise (non-2xx, connection error, timeout) that update is retried
after a delay that doubles from `retry_base` up to `retry_max` seconds (Telegram's own delays
are seconds to minutes; tests use small ones). Every attempt is recorded in `SimBot.webhook_attempts`, the
last error in getWebhookInfo. A 2xx answer whose body is a method call
(`{"method": "sendMessage", ...}`, JSON or multipart) is executed, as Telegram does.

Unlike Telegram, plain http:// URLs are allowed (tests run without TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import aiohttp

from emulator.errors import violation
from emulator.state import SimBot, Webhook, WebhookAttempt, now_unix
from emulator.wire import read_multipart

if TYPE_CHECKING:
    from emulator.host import Host

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class Webhooks:
    def __init__(self, emu: Host, *, retry_base: float, retry_max: float, timeout: float) -> None:
        self.emu = emu
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.timeout = timeout
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def set(self, bot: SimBot, params: dict[str, Any]) -> None:
        url = params["url"]
        if not url:
            await self.delete(bot, bool(params.get("drop_pending_updates", False)))
            return
        if not url.startswith(("http://", "https://")):
            raise violation("bad webhook: An HTTPS URL must be provided for webhook", f"webhook url {url!r}")
        max_connections = int(params.get("max_connections", 40))
        if not 1 <= max_connections <= 100:
            raise violation(
                "bad webhook: max_connections must be 1-100", f"max_connections={max_connections}"
            )
        allowed = params.get("allowed_updates")
        bot.webhook = Webhook(
            url=url,
            secret_token=params.get("secret_token"),
            max_connections=max_connections,
            allowed_updates=list(allowed) if allowed else None,
            ip_address=params.get("ip_address"),
            has_custom_certificate="certificate" in params,
        )
        if allowed is not None:
            bot.allowed_updates = list(allowed) or None
        if params.get("drop_pending_updates"):
            bot.queue.clear()
        bot.last_error_date = bot.last_error_message = None
        task = self._tasks.get(bot.id)
        if task is None or task.done():
            self._tasks[bot.id] = asyncio.create_task(self._deliver(bot), name=f"webhook-{bot.id}")
        bot.updates_changed.notify()  # a waiting getUpdates ends; the pusher sees the new URL

    async def delete(self, bot: SimBot, drop_pending: bool) -> None:
        bot.webhook = None
        if drop_pending:
            bot.queue.clear()
        task = self._tasks.pop(bot.id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        bot.updates_changed.notify()

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _deliver(self, bot: SimBot) -> None:
        in_flight: dict[int, asyncio.Task[bool]] = {}  # update id -> its POST
        retry_at: dict[int, float] = {}  # update id -> when a failed one may go again
        delays: dict[int, float] = {}
        try:
            while bot.webhook is not None and not self.emu.closing:
                hook = bot.webhook
                now = self.emu.clock()
                for entry in bot.queue[: hook.max_connections]:
                    uid = entry.update_id
                    if uid not in in_flight and retry_at.get(uid, 0.0) <= now:
                        in_flight[uid] = asyncio.create_task(self._post(bot, hook, entry.payload))
                waits: set[asyncio.Future[Any]] = set(in_flight.values())
                changed = bot.updates_changed.next()  # registered before anything can happen
                waits.add(changed)
                pending_retry = [t for u, t in retry_at.items() if u not in in_flight]
                timeout = max(0.0, min(pending_retry) - now) if pending_retry else None
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                bot.updates_changed.forget(changed)
                for uid, task in [(u, t) for u, t in in_flight.items() if t.done()]:
                    del in_flight[uid]
                    entry = next((e for e in bot.queue if e.update_id == uid), None)
                    if not task.cancelled() and task.exception() is None and task.result():
                        retry_at.pop(uid, None)
                        delays.pop(uid, None)
                        if entry is not None:
                            entry.delivered = True
                            bot.queue.remove(entry)
                    else:  # Telegram's back-off before this update's retry
                        delay = delays.get(uid, self.retry_base)
                        retry_at[uid] = self.emu.clock() + delay
                        delays[uid] = min(delay * 2, self.retry_max)
                    self.emu.changed.notify()
        finally:
            for task in in_flight.values():
                task.cancel()

    async def _post(self, bot: SimBot, hook: Webhook, payload: dict[str, Any]) -> bool:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers[SECRET_HEADER] = hook.secret_token
        status: int | None = None
        error: str | None = None
        reply: tuple[str, dict[str, Any], dict[str, Any]] | None = None
        try:
            async with self._session.post(
                hook.url,
                data=json.dumps(payload, ensure_ascii=False).encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                status = resp.status
                if 200 <= status < 300:
                    reply = await _method_in_reply(resp)
                else:
                    error = f"Wrong response from the webhook: {status} {resp.reason or ''}".rstrip()
        except TimeoutError:
            error = "Read timeout expired"
        except aiohttp.ClientConnectorError:
            error = "Connection refused"
        except aiohttp.ClientError as e:
            error = f"{type(e).__name__}: {e}"
        bot.webhook_attempts.append(
            WebhookAttempt(payload["update_id"], self.emu.clock(), status, error, hook.secret_token)
        )
        if error is not None:
            bot.last_error_date = now_unix()
            bot.last_error_message = error
            return False
        if reply is not None:
            await self.emu.execute(bot.token, *reply)
        return True


async def _method_in_reply(resp: aiohttp.ClientResponse) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """(method, params, files) when the webhook answered with a method call."""
    files: dict[str, Any] = {}
    if resp.content_type == "multipart/form-data":
        fields, files = await read_multipart(aiohttp.MultipartReader(resp.headers, resp.content))
    elif resp.content_type == "application/json":
        try:
            fields = json.loads(await resp.read() or b"{}")
        except ValueError:
            return None
        if not isinstance(fields, dict):
            return None
    else:
        return None
    method = fields.pop("method", None)
    return (method, fields, files) if isinstance(method, str) else None
