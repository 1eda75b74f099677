"""The updates of one chat one at a time, in `update_id` order, across every bot process.

One process (polling, or one webhook process) needs only `LocalOrder`: a FIFO lock per chat in
this process. Several webhook processes (`branchbot run --only bot --processes N`, or one unit per
port behind a proxy) share `RedisOrder`, because Telegram POSTs up to `max_connections` updates
at once, over different connections, so two updates of one chat can reach two processes together,
and the later one first. Three things in Redis, per bot:

- **the chat's queue** (a sorted set of the update ids of that chat that arrived and are not yet
  handled): an update runs only when it is the lowest one there;
- **the arrival mark** `w`: every update id up to `w` has arrived somewhere. Telegram numbers a
  bot's updates one after another, and keeps the lowest unanswered ones in flight, so an update
  `u` with `w < u - 1` may have an earlier one of its own chat still on the way: it waits until
  the ids below it have arrived (at most `gap_wait` seconds; an id Telegram skipped, or one whose
  delivery failed and comes back later, must not hold up the bot). With no mark yet (the first
  update of a bot, or after `ttl` idle), the first to arrive does not know which earlier ones are
  in flight: the mark starts `first_window` (Telegram's most connections, 100) below it, so the
  bot's very first updates wait `gap_wait` once;
- **the chat's lock** (a key with a short lease that the holding process renews): held from the
  update's claim to its reply, for its whole handling, not only its transaction, because a handler
  may commit early (before it talks to Telegram) and go on.

An update that was not handled (database away: 503, Telegram sends it again) leaves its lock but
stays in its chat's queue, so the chat's later updates wait for its redelivery. A process killed
while holding a lock frees it when the lease ends; what it had in hand is delivered again by
Telegram (it never answered 200) and de-duplicated by the processed-updates table. Waiters wake
on a publish from the process that finished (or on the arrival mark moving), and look again every
`look_again` seconds in case a message was lost. A queue head nobody handles for `stale_after`
seconds (its redelivery never came) is dropped so that its chat goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from bot.transient import DatabaseUnavailable

log = logging.getLogger("branchbot.order")


class LocalOrder:
    """One FIFO lock per chat in this process, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: int, update_id: int = 0) -> AsyncIterator[None]:
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

    def handled(self, update_id: int) -> None:
        """The update in hand was handled (not merely tried): no-op here."""

    async def close(self) -> None:
        return None


# KEYS: mark, seen, queue, channel. ARGV: update id, ttl seconds, first window.
# The update joins its chat's queue and the arrivals; the mark moves over every id now contiguous.
_ARRIVE = """
local u = tonumber(ARGV[1])
redis.call('ZADD', KEYS[3], 'NX', u, ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[2])
local w = tonumber(redis.call('GET', KEYS[1]) or (u - 1 - tonumber(ARGV[3])))
local before = w
if u > w then
  redis.call('ZADD', KEYS[2], u, ARGV[1])
  while true do
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    if first[2] == nil or tonumber(first[2]) > w + 1 then break end
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, 0)
    if tonumber(first[2]) == w + 1 then w = w + 1 end
  end
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
redis.call('SET', KEYS[1], w, 'EX', ARGV[2])
if w ~= before then redis.call('PUBLISH', KEYS[4], 'w:' .. w) end
return w
"""

# KEYS: mark, seen, queue, lock. ARGV: update id, token, lease ms, give up the gap (0/1),
# drop a stale head (0/1). Returns 0 (go: the lock is ours), 1 (an earlier id has not arrived),
# 2 (an earlier update of this chat is pending), 3 (the chat's lock is held).
_TRY = """
local u = tonumber(ARGV[1])
local w = tonumber(redis.call('GET', KEYS[1]) or (u - 1))
if w < u - 1 then
  if ARGV[4] == '0' then return 1 end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', u - 1)
  w = u - 1
  while true do
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    if first[2] == nil or tonumber(first[2]) ~= w + 1 then break end
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, 0)
    w = w + 1
  end
  redis.call('SET', KEYS[1], w, 'KEEPTTL')
end
local head = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if head[2] ~= nil and tonumber(head[2]) < u then
  if ARGV[5] == '0' then return 2 end
  if redis.call('EXISTS', KEYS[4]) == 1 then return 3 end
  redis.call('ZREM', KEYS[3], head[1])
  return 2
end
if redis.call('SET', KEYS[4], ARGV[2], 'NX', 'PX', ARGV[3]) then return 0 end
return 3
"""

# KEYS: queue, lock, channel. ARGV: update id, token, handled (0/1), chat.
_FINISH = """
if ARGV[3] == '1' then redis.call('ZREM', KEYS[1], ARGV[1]) end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
redis.call('PUBLISH', KEYS[3], 'c:' .. ARGV[4])
return 0
"""

# KEYS: locks. ARGV: tokens (same order), lease ms.
_RENEW = """
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then redis.call('PEXPIRE', key, ARGV[#ARGV]) end
end
return 0
"""

GO, GAP, BEHIND, BUSY = 0, 1, 2, 3


class OrderUnavailable(DatabaseUnavailable):
    """Redis did not answer: the update is tried again later (503 to Telegram), like a
    database outage."""


class RedisOrder:
    """The chat's queue, the arrival mark and the chat's lock in Redis (see the module text)."""

    def __init__(
        self,
        redis_url: str,
        bot_id: int,
        *,
        prefix: str = "branchbot:order",
        lease: float = 3.0,
        gap_wait: float = 1.0,
        look_again: float = 0.5,
        stale_after: float = 30.0,
        ttl: int = 30 * 86_400,
        first_window: int = 100,
    ) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(redis_url)
        self._base = f"{prefix}:{bot_id}"
        self._channel = f"{self._base}:ch"
        self.lease = lease
        self.gap_wait = gap_wait
        self.look_again = look_again
        self.stale_after = stale_after
        self.ttl = ttl
        self.first_window = first_window
        self._arrive = self._redis.register_script(_ARRIVE)
        self._try = self._redis.register_script(_TRY)
        self._finish = self._redis.register_script(_FINISH)
        self._renew = self._redis.register_script(_RENEW)
        self._held: dict[str, str] = {}  # lock key -> our token
        self._chat_events: dict[int, set[asyncio.Event]] = defaultdict(set)
        self._mark_events: dict[asyncio.Event, int] = {}  # waiter -> the mark it waits for
        self._handled: set[int] = set()
        self._listener: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Event | None = None
        # What tests look at: how often an update waited, and for what.
        self.waits: dict[str, int] = {"gap": 0, "behind": 0, "busy": 0}
        self.gaps_given_up = 0
        self.stale_dropped = 0
        self._waited = asyncio.Event()

    def _keys(self, chat: int) -> tuple[str, str, str, str]:
        return (f"{self._base}:w", f"{self._base}:seen", f"{self._base}:q:{chat}", f"{self._base}:lk:{chat}")

    async def _start(self) -> None:
        if self._listener is None:
            self._subscribed = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(), name="order-listen")
            self._renewer = asyncio.create_task(self._renew_leases(), name="order-renew")
        assert self._subscribed is not None
        # Subscribed before the first arrival, so that no wake-up meant for us is missed (later
        # reconnects may miss some: waiters look again every `look_again` seconds anyway).
        async with asyncio.timeout(10):
            await self._subscribed.wait()

    async def _listen(self) -> None:
        assert self._subscribed is not None
        while True:
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self._channel)
                self._subscribed.set()
                async for msg in pubsub.listen():
                    if msg.get("type") == "message":
                        self._wake(msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("order: Redis subscription lost (%s); again in 1 s", type(e).__name__)
                self._wake_all()
                await asyncio.sleep(1.0)

    def _wake(self, data: bytes) -> None:
        kind, _, value = data.decode().partition(":")
        if kind == "c":
            for ev in self._chat_events.get(int(value), ()):
                ev.set()
        else:
            mark = int(value)
            for ev, needed in self._mark_events.items():
                if mark >= needed:
                    ev.set()

    def _wake_all(self) -> None:
        for evs in self._chat_events.values():
            for ev in evs:
                ev.set()
        for ev in self._mark_events:
            ev.set()

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            held = dict(self._held)
            if not held:
                continue
            try:
                await self._renew(keys=list(held), args=[*held.values(), int(self.lease * 1000)])
            except Exception as e:
                log.warning("order: renewing %d chat locks failed (%s)", len(held), type(e).__name__)

    def handled(self, update_id: int) -> None:
        """The update in hand was handled, so it leaves its chat's queue when released."""
        self._handled.add(update_id)

    @contextlib.asynccontextmanager
    async def hold(self, chat: int, update_id: int) -> AsyncIterator[None]:
        from redis.exceptions import RedisError

        mark, seen, queue, lock = self._keys(chat)
        token = secrets.token_hex(8)
        try:
            await self._start()
            await self._arrive(
                keys=[mark, seen, queue, self._channel], args=[update_id, self.ttl, self.first_window]
            )
            await self._acquire(chat, update_id, token)
        except (RedisError, OSError, TimeoutError) as e:
            raise OrderUnavailable(type(e).__name__) from e
        self._held[lock] = token
        try:
            yield
        finally:
            del self._held[lock]
            done = update_id in self._handled
            self._handled.discard(update_id)
            try:
                await self._finish(
                    keys=[queue, lock, self._channel], args=[update_id, token, int(done), chat]
                )
            except (RedisError, OSError) as e:
                # The lease frees the lock; a handled update left in the queue is dropped as stale.
                log.warning("order: releasing chat %s failed (%s)", chat, type(e).__name__)

    async def _acquire(self, chat: int, update_id: int, token: str) -> None:
        mark, seen, queue, lock = self._keys(chat)
        loop = asyncio.get_running_loop()
        started = loop.time()
        behind_since: float | None = None
        had_gap = False
        ev = asyncio.Event()
        # Registered before looking, so that a wake-up between the look and the wait is not lost.
        self._chat_events[chat].add(ev)
        self._mark_events[ev] = update_id - 1
        try:
            while True:
                now = loop.time()
                give_up_gap = now - started >= self.gap_wait
                drop_head = behind_since is not None and now - behind_since >= self.stale_after
                ev.clear()
                got = await self._try(
                    keys=[mark, seen, queue, lock],
                    args=[update_id, token, int(self.lease * 1000), int(give_up_gap), int(drop_head)],
                )
                if got == GO:
                    if had_gap and give_up_gap:
                        self.gaps_given_up += 1
                        log.info(
                            "order: update %s went on after %.1f s without an earlier id",
                            update_id,
                            now - started,
                        )
                    return
                timeout = self.look_again
                if got == GAP:
                    self.waits["gap"] += 1
                    self._waited.set()
                    had_gap = True
                    timeout = min(timeout, max(0.0, self.gap_wait - (now - started)) + 0.001)
                elif got == BEHIND:
                    self.waits["behind"] += 1
                    self._waited.set()
                    if drop_head:
                        self.stale_dropped += 1
                        log.warning(
                            "order: chat %s: an update pending for %.0f s was dropped", chat, self.stale_after
                        )
                        behind_since = None
                        continue
                    if behind_since is None:
                        behind_since = now
                else:
                    self.waits["busy"] += 1
                    self._waited.set()
                    behind_since = None  # someone is at work on the chat: nothing is stale
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ev.wait(), timeout)
        finally:
            self._mark_events.pop(ev, None)
            self._chat_events[chat].discard(ev)
            if not self._chat_events[chat]:
                del self._chat_events[chat]

    async def wait_waits(self, kind: str, timeout: float = 10.0) -> None:
        """For tests: until an update has waited for `kind` (gap, behind or busy)."""
        async with asyncio.timeout(timeout):
            while not self.waits[kind]:
                self._waited.clear()
                await self._waited.wait()

    async def close(self) -> None:
        for task in (self._listener, self._renewer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._redis.aclose()
