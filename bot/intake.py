"""Taking updates in without losing any: long polling and webhooks.

aiogram's own polling confirms updates to Telegram (the next getUpdates offset) before their
handlers have run, so a crash loses them. Here an update is confirmed only once it is handled:
the offset we send is always the lowest update id not yet finished, and updates already in
flight are not started twice. If the process dies, Telegram hands the unconfirmed updates out
again and the processed-updates table (see `bot/middlewares.UpdateGuard`) skips those that had
committed. While the database is unavailable an update is retried, never confirmed, never
answered with a failure.

Updates of one chat run one after another (a wizard's steps must not race); different chats
run concurrently, up to `max_in_flight`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramRetryAfter
from aiogram.types import Update
from aiohttp import web

from bot.transient import DatabaseUnavailable

log = logging.getLogger("branchbot.intake")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def chat_key(update: Update) -> int:
    """The chat (or user) an update belongs to, for ordering; the update id when it has none."""
    for ev in (update.message, update.edited_message, update.callback_query, update.my_chat_member):
        if ev is None:
            continue
        chat = getattr(ev, "chat", None)
        if chat is not None:
            return int(chat.id)
        user = getattr(ev, "from_user", None)
        if user is not None:
            return int(user.id)
    return -int(update.update_id)


class _ChatLocks:
    """One FIFO lock per chat, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Intake:
    def __init__(
        self,
        dp: Dispatcher,
        bot: Bot,
        *,
        max_in_flight: int = 64,
        retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0),
        **feed_kwargs: Any,
    ) -> None:
        self.dp = dp
        self.bot = bot
        self.max_in_flight = max_in_flight
        self.retry_delays = retry_delays
        self.feed_kwargs = feed_kwargs
        self._locks = _ChatLocks()
        self._stop = asyncio.Event()
        self.handled = 0
        # Tests and the demo wait for "this update is handled" instead of sleeping.
        self._recent: dict[int, int] = {}  # update id -> times handled (a redelivery counts again)
        self._progress = asyncio.Condition()

    async def _done(self, update_id: int) -> None:
        self.handled += 1
        self._recent[update_id] = self._recent.get(update_id, 0) + 1
        if len(self._recent) > 10_000:
            del self._recent[next(iter(self._recent))]
        async with self._progress:
            self._progress.notify_all()

    async def wait_handled(self, update_id: int, timeout: float = 10.0, *, times: int = 1) -> None:
        async with asyncio.timeout(timeout), self._progress:
            await self._progress.wait_for(lambda: self._recent.get(update_id, 0) >= times)

    def stop(self) -> None:
        self._stop.set()

    async def _pause(self, seconds: float) -> None:
        """Wait before retrying, but wake at once on stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def handle(self, update: Update) -> bool:
        """Handle one update, retrying while the database is unavailable.

        True once handled (including a refusal or an apology); False only if stopped first.
        """
        attempt = 0
        async with self._locks.hold(chat_key(update)):
            while True:
                try:
                    await self.dp.feed_update(self.bot, update, **self.feed_kwargs)
                    await self._done(update.update_id)
                    return True
                except DatabaseUnavailable:
                    if self._stop.is_set():
                        return False
                    delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
                    attempt += 1
                    await self._pause(delay)
                except Exception as e:
                    # The guard already answers handler failures; reaching here means the guard
                    # itself could not run. Confirming would drop the update, so retry as well.
                    log.error(
                        "update %s: unexpected %s outside the handlers", update.update_id, type(e).__name__
                    )
                    if self._stop.is_set():
                        return False
                    await self._pause(self.retry_delays[-1])

    # --- long polling -------------------------------------------------------------------

    async def run_polling(
        self, *, poll_timeout: int = 25, on_started: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        await self._delete_webhook()
        if on_started is not None:
            await on_started()
        in_flight: dict[int, asyncio.Task[bool]] = {}
        unhandled: set[int] = set()  # stopped before they were handled: never confirm these
        next_new = 0  # the lowest update id we have not yet seen
        allowed = self.dp.resolve_used_update_types()
        failures = 0
        while not self._stop.is_set():
            # Confirm only what has finished: everything below the lowest unfinished id.
            offset = min(in_flight) if in_flight else (next_new or None)
            try:
                updates = await self._get_updates(offset, 0 if in_flight else poll_timeout, allowed)
                failures = 0
            except TelegramRetryAfter as e:
                await self._pause(e.retry_after)
                continue
            except (TelegramNetworkError, TelegramAPIError, OSError) as e:
                failures += 1
                log.warning("getUpdates failed (%s); retrying", type(e).__name__)
                await self._pause(min(0.5 * failures, 5.0))
                continue
            if updates is None:
                break
            fresh = [u for u in updates if u.update_id >= next_new]
            for u in fresh:
                next_new = u.update_id + 1
                in_flight[u.update_id] = asyncio.create_task(self.handle(u), name=f"update-{u.update_id}")
            if in_flight and (not fresh or len(in_flight) >= self.max_in_flight):
                # Nothing new, or too much at once: wait for something to finish before polling again.
                await self._wait_any(in_flight.values())
            for uid in [uid for uid, t in in_flight.items() if t.done()]:
                if not in_flight.pop(uid).result():
                    unhandled.add(uid)
        # Shutting down: let what is in flight finish, then confirm what was handled.
        for uid, ok in zip(in_flight, await asyncio.gather(*in_flight.values()), strict=True):
            if not ok:
                unhandled.add(uid)
        if next_new:
            with contextlib.suppress(Exception):
                await self.bot.get_updates(offset=min(unhandled | {next_new}), timeout=0, limit=1)

    async def _wait_any(self, tasks: Any) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()

    async def _get_updates(self, offset: int | None, wait: int, allowed: list[str]) -> list[Update] | None:
        poll = asyncio.ensure_future(
            self.bot.get_updates(
                offset=offset, timeout=wait, allowed_updates=allowed, request_timeout=wait + 10
            )
        )
        stop = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait([poll, stop], return_when=asyncio.FIRST_COMPLETED)
        if poll not in done:
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await poll
            return None
        stop.cancel()
        return poll.result()

    async def _delete_webhook(self) -> None:
        while not self._stop.is_set():
            try:
                await self.bot.delete_webhook(drop_pending_updates=False)
                return
            except (TelegramNetworkError, TelegramAPIError, OSError) as e:
                log.warning("deleteWebhook failed (%s); retrying", type(e).__name__)
                await self._pause(1.0)

    # --- webhook ------------------------------------------------------------------------

    def webhook_app(self, path: str, secret: str | None) -> web.Application:
        """An aiohttp app answering Telegram's webhook POSTs.

        200 only once the update is handled; 503 while the database is unavailable, so
        Telegram delivers it again later; 401 on a wrong secret token.
        """

        async def receive(request: web.Request) -> web.Response:
            if secret and not secrets.compare_digest(request.headers.get(SECRET_HEADER, ""), secret):
                return web.Response(status=401, text="bad secret token")
            try:
                update = Update.model_validate(await request.json(), context={"bot": self.bot})
            except Exception:
                return web.Response(status=400, text="not an update")
            try:
                async with self._locks.hold(chat_key(update)):
                    await self.dp.feed_update(self.bot, update, **self.feed_kwargs)
            except DatabaseUnavailable:
                return web.Response(status=503, text="try again later")
            await self._done(update.update_id)
            return web.json_response({})

        app = web.Application()
        app.router.add_post(path, receive)
        return app
