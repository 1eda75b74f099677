"""The gate's limits shared by every process of one bot: in Redis (REDIS_URL, `RedisState`) or
else in PostgreSQL (`bot/gate/dbstate.py`). Both pace the same way (`SharedState`); only where
the counts live differs.

Each message takes a place in moving windows: the bot's 30/s, the chat's burst and 1/s, the
group's 20/min, all taken at once or not at all. Counted when the call starts (one process
cannot see when another's answers come back), so the windows keep 10% of headroom instead
(27/s: a request may reach Telegram a little after it started, and the next second's must not
overlap it), and each process spaces its own sends evenly, so that no burst reaches Telegram
spread over its next second. A 429's pause is kept where every process sees it; a reply that
has to wait for a place leaves a mark there, and the bulk sends of every process yield to it.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from aiolimiter import AsyncLimiter
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from bot.gate.pacing import PAUSE_MARGIN, ChatPacer

# The longest a waiting admission sleeps before looking again (other processes free places
# without telling us).
LOOK_AGAIN = 0.05
# A reply mark left by a process that died while waiting is gone after this.
REPLY_MARK_SECONDS = 30

# Why an admission must wait (what `SharedState._take` answers besides the seconds).
TAKEN, PAUSED, REPLY_FIRST, BOT_FULL, CHAT_FULL = range(5)


@dataclass(frozen=True)
class Rule:
    """At most `limit` messages in any `seconds`, counted under `name` ("all", "chat:<id>"...)."""

    name: str
    limit: int
    seconds: float


class SharedState:
    """Pacing with the counts elsewhere: subclasses say how to take places, pause and mark."""

    def __init__(
        self,
        *,
        rate: float = 30,
        per_chat_interval: float = 1.0,
        group_per_minute: int = 20,
        headroom: float = 0.1,
        chat_burst: int = 3,
    ) -> None:
        self._windows = self.windows(rate, per_chat_interval, group_per_minute, headroom, max(1, chat_burst))
        # What this process sent itself: the worker's guess of which chats are free.
        self._local = ChatPacer(per_chat_interval, group_per_minute, headroom, burst=chat_burst)
        self.paused_total = 0.0
        # Sends evenly spaced here too: a window counted at the start lets a burst of
        # concurrent requests arrive spread out and overlap Telegram's next second.
        self._spacing = AsyncLimiter(1.5, 1.5 / rate)
        # One attempt at a time in this process: those that waited for a place must not all
        # take the freed places at once. Held for one attempt only, never while waiting, so a
        # reply in this process is never stuck behind a bulk send that yields to it.
        self._turn = asyncio.Lock()
        self._replies_here = 0  # replies of this process waiting for a place
        self._reply_gone = asyncio.Event()

    @staticmethod
    def windows(
        rate: float, per_chat_interval: float, group_per_minute: int, headroom: float, burst: int
    ) -> dict[str, tuple[int, float]]:
        """(limit, seconds) of the bot's, a chat's burst, a chat's one-a-second and a group's
        windows. Counted when a send starts: 10% fewer places, in whole seconds (as Redis's
        windows count them)."""
        shrink = 1 + headroom
        return {
            "all": (max(1, math.floor(rate / shrink)), 1.0),
            "chat": (burst, float(max(1, math.ceil(burst * per_chat_interval)))),
            "one": (1, float(max(1, math.ceil(per_chat_interval)))),
            "group": (max(1, math.floor(group_per_minute / shrink)), 60.0),
        }

    def rules(self, chat_id: int | None, bulk: bool) -> list[Rule]:
        w = self._windows
        rules = [Rule("all", *w["all"])]
        if chat_id is None:
            return rules
        rules.append(Rule(f"chat:{chat_id}", *w["chat"]))
        if bulk:
            rules.append(Rule(f"one:{chat_id}", *w["one"]))
        if chat_id < 0:
            rules.append(Rule(f"group:{chat_id}", *w["group"]))
        return rules

    # -- where the counts live --

    async def _take(self, chat_id: int | None, rules: list[Rule], bulk: bool) -> tuple[float, int]:
        """One attempt: take a place in every window, or say how long to wait and why."""
        raise NotImplementedError

    async def _mark_reply(self) -> object:
        """A reply waits for a place: every process's bulk sends yield until `_unmark_reply`."""
        raise NotImplementedError

    async def _unmark_reply(self, mark: object) -> None:
        raise NotImplementedError

    # -- the gate's questions --

    async def admit(self, chat_id: int | None, *, bulk: bool) -> None:
        rules = self.rules(chat_id, bulk)
        mark: object = None
        if not bulk:
            self._replies_here += 1
        try:
            if bulk:
                # A reply skips the spacing: it would queue behind this process's bulk sends.
                await self._spacing.acquire()
            while True:
                if bulk and self._replies_here:
                    # A reply of this process goes first: no round trip needed to know it.
                    self._reply_gone.clear()
                    await self._wait(self._reply_gone, LOOK_AGAIN)
                    continue
                async with self._turn:
                    wait, why = await self._take(chat_id, rules, bulk)
                if why == TAKEN:
                    if chat_id is not None:
                        self._local.note(chat_id, asyncio.get_running_loop().time())
                    return
                if not bulk and mark is None and why == BOT_FULL:
                    mark = await self._mark_reply()  # the bot's window is full: bulk sends, stand back
                await asyncio.sleep(min(max(wait, 0.001), LOOK_AGAIN))
        finally:
            if not bulk:
                self._replies_here -= 1
                self._reply_gone.set()
                if mark is not None:
                    await self._unmark_reply(mark)

    @staticmethod
    async def _wait(event: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass

    def answered(self, chat_id: int | None = None) -> None:
        """Counted when admitted: nothing to do when the answer comes."""

    def chat_ready_at(self, chat_id: int, now: float) -> float:
        return self._local.ready_at(chat_id, now, bulk=True)

    def forget_idle(self) -> None:
        self._local.forget_idle(asyncio.get_running_loop().time())


class RedisState(SharedState):
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
        super().__init__(
            rate=rate,
            per_chat_interval=per_chat_interval,
            group_per_minute=group_per_minute,
            headroom=headroom,
            chat_burst=chat_burst,
        )
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
        self._items: dict[tuple[int, float], RateLimitItem] = {}

    def _item(self, rule: Rule) -> RateLimitItem:
        key = (rule.limit, rule.seconds)
        if key not in self._items:
            self._items[key] = (
                RateLimitItemPerMinute(rule.limit, 1)
                if rule.seconds == 60
                else RateLimitItemPerSecond(rule.limit, int(rule.seconds))
            )
        return self._items[key]

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

    async def _wait_for(self, rules: list[Rule]) -> float:
        """Seconds until every one of these windows has a free place (0: now)."""
        wait = 0.0
        for rule in rules:
            item = self._item(rule)
            if not await self._limiter.test(item, self.bot, rule.name):
                stats = await self._limiter.get_window_stats(item, self.bot, rule.name)
                wait = max(wait, stats.reset_time - time.time(), 0.001)
        return wait

    async def _take(self, chat_id: int | None, rules: list[Rule], bulk: bool) -> tuple[float, int]:
        wait = await self.pause_left()
        if wait:
            return wait, PAUSED
        if bulk and int(await self._redis.get(self._replies_key) or 0) > 0:
            return LOOK_AGAIN, REPLY_FIRST
        bot, chat = rules[0], rules[1:]
        wait = await self._wait_for(chat)
        if wait:
            return wait, CHAT_FULL
        # The bot's window is one atomic script: two processes never both take its last place.
        if not await self._limiter.hit(self._item(bot), self.bot, bot.name):
            return await self._wait_for([bot]) or 0.001, BOT_FULL
        for rule in chat:
            await self._limiter.hit(self._item(rule), self.bot, rule.name)
        return 0.0, TAKEN

    async def _mark_reply(self) -> object:
        await self._redis.incr(self._replies_key)
        await self._redis.expire(self._replies_key, REPLY_MARK_SECONDS)
        return True

    async def _unmark_reply(self, mark: object) -> None:
        await self._redis.decr(self._replies_key)
