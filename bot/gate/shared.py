"""The gate's limits shared by every process of one bot, in Redis (REDIS_URL).

Each message takes a place in moving windows kept by `limits` (its Redis moving window is one
atomic script, so two processes never both take the last place): the bot's 30/s, the chat's
burst and 1/s, the group's 20/min. Counted when the call starts (one process cannot see when
another's answers come back), so the windows keep 10% of headroom instead (27/s: a request may
reach Telegram a little after it started, and the next second's must not overlap it), and each
process spaces its own sends evenly, so that no burst reaches Telegram spread over its next
second. A 429's
pause is a key that expires with it; a reply waiting in any process is a counter the bulk
sends of every process yield to.
"""

from __future__ import annotations

import asyncio
import math
import time

from aiolimiter import AsyncLimiter
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from bot.gate.pacing import PAUSE_MARGIN, ChatPacer

# The longest a waiting admission sleeps before looking again (other processes free places
# without telling us).
LOOK_AGAIN = 0.05
# A reply counter left by a process that died while waiting is gone after this.
REPLY_MARK_SECONDS = 30


class RedisState:
    def __init__(
        self,
        redis_url: str,
        bot_id: int,
        *,
        rate: float = 30,
        per_chat_interval: float = 1.0,
        group_per_minute: int = 20,
        headroom: float = 0.1,
        chat_burst: int = 3,
        prefix: str = "branchbot:gate",
    ) -> None:
        self._redis: Redis = Redis.from_url(redis_url)
        scheme, rest = redis_url.split("://", 1)
        # One connection pool for both (closed with `close`).
        self._storage = RedisStorage(
            f"async+{scheme}://{rest}",
            implementation="redispy",
            key_prefix=f"{prefix}:{bot_id}",
            connection_pool=self._redis.connection_pool,  # type: ignore[arg-type]
        )
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._pause_key = f"{prefix}:{bot_id}:pause"
        self._replies_key = f"{prefix}:{bot_id}:replies"
        self.bot = str(bot_id)
        shrink = 1 + headroom
        self._global = RateLimitItemPerSecond(max(1, math.floor(rate / shrink)), 1)
        self._burst = RateLimitItemPerSecond(
            max(1, chat_burst), max(1, math.ceil(chat_burst * per_chat_interval))
        )
        self._one = RateLimitItemPerSecond(1, max(1, math.ceil(per_chat_interval)))
        self._group = RateLimitItemPerMinute(max(1, math.floor(group_per_minute / shrink)), 1)
        # What this process sent itself: the worker's guess of which chats are free.
        self._local = ChatPacer(per_chat_interval, group_per_minute, headroom, burst=chat_burst)
        self.paused_total = 0.0
        # Sends evenly spaced here too: a window counted at the start lets a burst of
        # concurrent requests arrive spread out and overlap Telegram's next second.
        self._spacing = AsyncLimiter(1.5, 1.5 / rate)
        # One admission at a time in this process: those that waited for a place must not all
        # take the freed places at once.
        self._turn = asyncio.Lock()

    async def close(self) -> None:
        await self._redis.aclose()

    async def pause(self, seconds: float) -> None:
        until = time.time() + seconds + PAUSE_MARGIN
        old = await self._redis.get(self._pause_key)
        if old is None or float(old) < until:
            self.paused_total += seconds
            await self._redis.set(self._pause_key, repr(until), px=max(1, int((until - time.time()) * 1000)))

    async def pause_left(self) -> float:
        until = await self._redis.get(self._pause_key)
        return max(0.0, float(until) - time.time()) if until is not None else 0.0

    def _chat_items(self, chat_id: int, bulk: bool) -> list[RateLimitItem]:
        items: list[RateLimitItem] = [self._burst]
        if bulk:
            items.append(self._one)
        if chat_id < 0:
            items.append(self._group)
        return items

    async def _wait_for(self, items: list[tuple[RateLimitItem, str]]) -> float:
        """Seconds until every one of these windows has a free place (0: now)."""
        wait = 0.0
        for item, key in items:
            if not await self._limiter.test(item, self.bot, key):
                stats = await self._limiter.get_window_stats(item, self.bot, key)
                wait = max(wait, stats.reset_time - time.time(), 0.001)
        return wait

    async def admit(self, chat_id: int | None, *, bulk: bool) -> None:
        if not bulk:
            await self._redis.incr(self._replies_key)
            await self._redis.expire(self._replies_key, REPLY_MARK_SECONDS)
        chat = (
            [(i, f"chat:{chat_id}") for i in self._chat_items(chat_id, bulk)] if chat_id is not None else []
        )
        try:
            async with self._turn:
                await self._spacing.acquire()
                await self._admit(chat_id, chat, bulk)
        finally:
            if not bulk:
                await self._redis.decr(self._replies_key)

    async def _admit(self, chat_id: int | None, chat: list[tuple[RateLimitItem, str]], bulk: bool) -> None:
        while True:
            wait = await self.pause_left()
            if not wait and bulk and int(await self._redis.get(self._replies_key) or 0) > 0:
                wait = LOOK_AGAIN  # a reply somewhere goes first
            if not wait:
                wait = await self._wait_for(chat)
            if not wait and await self._limiter.hit(self._global, self.bot, "all"):
                for item, key in chat:
                    await self._limiter.hit(item, self.bot, key)
                if chat_id is not None:
                    self._local.note(chat_id, asyncio.get_running_loop().time())
                return
            await asyncio.sleep(min(max(wait, 0.001), LOOK_AGAIN))

    def answered(self, chat_id: int | None = None) -> None:
        """Counted when admitted: nothing to do when the answer comes."""

    def chat_ready_at(self, chat_id: int, now: float) -> float:
        return self._local.ready_at(chat_id, now, bulk=True)

    def forget_idle(self) -> None:
        self._local.forget_idle(asyncio.get_running_loop().time())
