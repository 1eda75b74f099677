"""Taking updates in without losing any: long polling and webhooks.

aiogram's own polling confirms updates to Telegram (the next getUpdates offset) before their
handlers have run, so a crash loses them. Here a polled batch is first stored in the database
(the inbox, `storage/updates.py`) and only then confirmed, by the next poll's offset; at
start-up whatever the inbox still holds is handled first. (Confirming only once handled would
also be safe, but Telegram then sends every unfinished update again with each poll.) A webhook
answers 200 only once the update is handled. If the process dies, the processed-updates table
(see `bot/middlewares.UpdateGuard`) skips updates whose handling had committed. While the
database is unavailable nothing is stored, so nothing is confirmed; updates in hand are
retried, never answered with a failure.

Updates of one chat run one after another, in `update_id` order (a wizard's steps must not race);
different chats run concurrently, up to `max_in_flight`. Within one process a lock per chat does
it; several webhook processes share the chat's queue and lock in Redis (`bot/order.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.order import LocalOrder, RedisOrder
from bot.transient import DatabaseUnavailable, is_transient_db_error
from storage import updates as updates_store
from storage.db import utcnow

if TYPE_CHECKING:
    from aiohttp import web

_FAILED = object()

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


class PollRefused(Exception):
    """Telegram answered getUpdates with an error (409 conflict, 429 flood, 401 ...)."""

    def __init__(self, description: str, retry_after: int | None) -> None:
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after


class Intake:
    def __init__(
        self,
        dp: Dispatcher,
        bot: Bot,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_in_flight: int = 64,
        order: LocalOrder | RedisOrder | None = None,
        retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0),
        **feed_kwargs: Any,
    ) -> None:
        self.dp = dp
        self.bot = bot
        self.sessionmaker = sessionmaker
        self.max_in_flight = max_in_flight
        self.retry_delays = retry_delays
        self.feed_kwargs = feed_kwargs
        self.order = order or LocalOrder()
        self._stop = asyncio.Event()
        self.handled = 0
        # Times the database was away and the work was tried again later (each is one wait):
        # an update rolled back by the guard, or a polled batch (or inbox tidying) not stored.
        # Tests read them to prove an outage reached the retry path rather than a lock wait.
        self.update_retries = 0
        self.inbox_retries = 0
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
        async with self.order.hold(chat_key(update), update.update_id):
            if self._stop.is_set():
                # Stopping: an update not begun (one chat's wait their turn, each reply paced to
                # Telegram's one a second per chat) stays in the inbox for the next start, and the
                # chat's later ones after it, so a busy chat does not hold up the stop.
                return False
            while True:
                try:
                    await self.dp.feed_update(self.bot, update, **self.feed_kwargs)
                    self.order.handled(update.update_id)
                    await self._done(update.update_id)
                    return True
                except DatabaseUnavailable:
                    self.update_retries += 1
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
        """Long polling: store each batch, confirm it with the next poll, handle it concurrently."""
        await self._delete_webhook()
        if on_started is not None:
            await on_started()
        in_flight: dict[int, asyncio.Task[bool]] = {}
        handled: list[int] = []  # to drop from the inbox, in batches
        tidied = 0.0
        next_new = 0  # the next update id we have not seen; sent as the offset, it confirms the rest
        allowed = self.dp.resolve_used_update_types()
        failures = 0

        def start(raw: dict[str, Any]) -> None:
            nonlocal next_new
            update = Update.model_validate(raw, context={"bot": self.bot})
            next_new = max(next_new, update.update_id + 1)
            in_flight[update.update_id] = asyncio.create_task(
                self.handle(update), name=f"update-{update.update_id}"
            )

        # What an earlier run took in but did not finish comes first.
        leftovers = await self._with_db(lambda s: updates_store.pending_inbound(s, self.bot.id))
        for raw in leftovers or []:
            start(raw)
        while not self._stop.is_set():
            if len(in_flight) >= self.max_in_flight:
                await self._wait_any(in_flight.values())
            for uid in [uid for uid, t in in_flight.items() if t.done()]:
                if in_flight.pop(uid).result():
                    handled.append(uid)
            # Tidying the inbox is one more transaction in the queue ahead of handlers (on SQLite,
            # the only connection): do it in large batches, or once things are quiet.
            loop_time = asyncio.get_running_loop().time()
            if handled and (len(handled) >= 500 or not in_flight or loop_time - tidied > 5.0):
                tidied = loop_time
                if (
                    await self._with_db(
                        lambda s, ids=list(handled): updates_store.drop_inbound(s, self.bot.id, ids),
                        retry=False,
                    )
                    is not _FAILED
                ):
                    handled.clear()
            room = max(1, min(100, self.max_in_flight - len(in_flight)))
            try:
                raw = await self._get_updates(next_new or None, poll_timeout, allowed, room)
                failures = 0
            except PollRefused as e:
                failures += 1
                log.warning("getUpdates refused: %s", e.description)
                await self._pause(e.retry_after if e.retry_after is not None else min(0.5 * failures, 5.0))
                continue
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
                failures += 1
                log.warning("getUpdates failed (%s); retrying", type(e).__name__)
                await self._pause(min(0.5 * failures, 5.0))
                continue
            if raw is None:
                break
            fresh = [u for u in raw if u["update_id"] >= next_new]
            if not fresh:
                continue
            # Durable before confirmed: if this fails, the next poll (same offset) gets them again.
            stored = await self._with_db(
                lambda s, batch=fresh: updates_store.store_inbound(s, self.bot.id, batch, utcnow()),
                retry=False,
            )
            if stored is _FAILED:
                await self._pause(1.0)
                continue
            for u in fresh:
                start(u)
        # Stopping: finish what is in flight; whatever could not finish stays in the inbox.
        for uid, ok in zip(in_flight, await asyncio.gather(*in_flight.values()), strict=True):
            if ok:
                handled.append(uid)
        if handled:
            await self._with_db(lambda s: updates_store.drop_inbound(s, self.bot.id, handled), retry=False)
        if next_new:
            with contextlib.suppress(Exception):
                await self._fetch(next_new, 0, allowed, 1)  # confirm what is stored

    async def _with_db(self, work: Callable[[AsyncSession], Awaitable[Any]], *, retry: bool = True) -> Any:
        """Run `work` in its own committed transaction; on a database outage retry (or give up
        with `_FAILED` when `retry` is False). None if stopped while retrying."""
        attempt = 0
        while not self._stop.is_set() or not retry:
            try:
                async with self.sessionmaker() as s:
                    result = await work(s)
                    await s.commit()
                    return result
            except Exception as e:
                if not is_transient_db_error(e):
                    raise
                log.warning("inbox: database unavailable (%s)", type(e).__name__)
                self.inbox_retries += 1
                if not retry:
                    return _FAILED
                await self._pause(self.retry_delays[min(attempt, len(self.retry_delays) - 1)])
                attempt += 1
        return None

    async def _wait_any(self, tasks: Any) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()

    async def _get_updates(
        self, offset: int | None, wait: int, allowed: list[str], limit: int = 100
    ) -> list[dict[str, Any]] | None:
        """One getUpdates call as raw JSON (None if stopped meanwhile)."""
        poll = asyncio.ensure_future(self._fetch(offset, wait, allowed, limit))
        stop = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait([poll, stop], return_when=asyncio.FIRST_COMPLETED)
        if poll not in done:
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await poll
            return None
        stop.cancel()
        return poll.result()

    async def _fetch(
        self, offset: int | None, wait: int, allowed: list[str], limit: int = 100
    ) -> list[dict[str, Any]]:
        session = self.bot.session
        assert isinstance(session, AiohttpSession)
        http = await session.create_session()
        params: dict[str, Any] = {"timeout": wait, "allowed_updates": allowed, "limit": limit}
        if offset is not None:
            params["offset"] = offset
        url = session.api.api_url(token=self.bot.token, method="getUpdates")
        async with http.post(url, json=params, timeout=aiohttp.ClientTimeout(total=wait + 10)) as resp:
            body = await resp.json(loads=orjson.loads, content_type=None)
        if not body.get("ok"):
            retry = (body.get("parameters") or {}).get("retry_after")
            raise PollRefused(f"{body.get('error_code')} {body.get('description')}", retry)
        return list(body["result"])

    async def _delete_webhook(self) -> None:
        while not self._stop.is_set():
            try:
                await self.bot.delete_webhook(drop_pending_updates=False)
                return
            except (TelegramNetworkError, TelegramAPIError, OSError) as e:
                log.warning("deleteWebhook failed (%s); retrying", type(e).__name__)
                await self._pause(1.0)

    # --- webhook ------------------------------------------------------------------------

    def webhook_app(self, path: str, secret: str) -> web.Application:
        """An aiohttp app answering Telegram's webhook POSTs.

        200 only once the update is handled; 503 while the database is unavailable, so
        Telegram delivers it again later; 401 on a missing or wrong secret token, before the
        body is even read: only Telegram knows the secret (it was given in setWebhook), so
        nothing else can post an update that counts.
        """
        # aiohttp's server side (1.6 MB) is imported by webhook processes only, not by one that polls.
        from aiohttp import web

        if not secret:
            raise ValueError("a webhook needs a secret token")
        expected = secret.encode()

        async def receive(request: web.Request) -> web.Response:
            given = request.headers.get(SECRET_HEADER, "").encode()
            if not secrets.compare_digest(given, expected):
                return web.Response(status=401, text="bad secret token")
            try:
                update = Update.model_validate(
                    await request.json(loads=orjson.loads), context={"bot": self.bot}
                )
            except Exception:
                return web.Response(status=400, text="not an update")
            try:
                async with self.order.hold(chat_key(update), update.update_id):
                    await self.dp.feed_update(self.bot, update, **self.feed_kwargs)
                    self.order.handled(update.update_id)
            except DatabaseUnavailable:
                return web.Response(status=503, text="try again later")
            await self._done(update.update_id)
            return web.json_response({})

        app = web.Application()
        app.router.add_post(path, receive)
        return app
