"""The gate's limits shared by every process of one bot: in Redis (REDIS_URL, `RedisState`) or
else in PostgreSQL (`bot/gate/dbstate.py`). Both pace the same way (`SharedState`); only where
the counts live differs.

Each message takes a place in moving windows: the bot's 30/s, the chat's burst and 1/s, the
group's 20/min, all taken at once (one atomic step: a Redis script, a database function under
an advisory lock) or not at all. As in one process (bot/gate/pacing.py: AnswerWindow), a place
counts from its send's answer: the process stamps it when the answer comes back, and until
then it holds its place (at most REQUEST_TIMEOUT, should the process die). So Telegram's own
count stays under the limit whatever the network did, with the same 3% of headroom, and every
process spaces its own bulk sends evenly. A 429's pause is kept where every process sees it; a
reply that finds the bot's window full leaves a mark there, and the bulk sends of every process
yield to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiolimiter import AsyncLimiter
from redis.asyncio import Redis

from bot.gate.pacing import PAUSE_MARGIN, REQUEST_TIMEOUT, Limits

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
    """Pacing with the counts elsewhere: subclasses say how to take and stamp places, pause
    and mark."""

    def __init__(self, limits: Limits = Limits(), *, secret: bytes = b"") -> None:
        stretch = 1 + limits.headroom
        self._secret = secret
        burst = max(1, limits.chat_burst)
        # (limit, seconds), as LocalState counts them: from the answers, a few percent longer.
        self._windows = {
            "all": (max(1, int(limits.rate)), stretch),
            "chat": (burst, burst * limits.per_chat_interval * stretch),
            "one": (1, limits.per_chat_interval * stretch),
            "group": (limits.group_per_minute, 60.0 * stretch),
        }
        # What this process sent itself: the worker's guess of which chats are free.
        self._local = limits.chat_pacer()
        self.paused_total = 0.0
        # Bulk sends evenly spaced, as in one process (pacing.GlobalPacer).
        self._spacing = AsyncLimiter(1.5, 1.5 / limits.rate)
        # One attempt at a time in this process: those that waited for a place must not all
        # take the freed places at once. Held for one attempt only, never while waiting, so a
        # reply in this process is never stuck behind a bulk send that yields to it.
        self._turn = asyncio.Lock()
        self._replies_here = 0  # replies of this process waiting for a place
        self._reply_gone = asyncio.Event()
        # The places taken by sends not answered yet, by chat, oldest first.
        self._open: dict[int | None, deque[Any]] = {}
        self._stamping: set[asyncio.Task[None]] = set()

    def rules(self, chat_id: int | None, bulk: bool) -> list[Rule]:
        w = self._windows
        rules = [Rule("all", *w["all"])]
        if chat_id is None:
            return rules
        chat = self.chat_key(chat_id)
        rules.append(Rule(f"chat:{chat}", *w["chat"]))
        if bulk:
            rules.append(Rule(f"one:{chat}", *w["one"]))
        if chat_id < 0:
            rules.append(Rule(f"group:{chat}", *w["group"]))
        return rules

    def chat_key(self, chat_id: int) -> str:
        """The chat as the shared windows name it: a keyed hash, not the id. A person's chat id is
        their Telegram id, and the windows outlive an erasure by up to a minute; with the bot's
        secret as the key, a hash of it cannot be matched against the (small) space of ids."""
        return hmac.new(self._secret, str(chat_id).encode(), hashlib.sha256).hexdigest()[:20]

    # -- where the counts live --

    async def _take(self, rules: list[Rule], bulk: bool) -> tuple[float, int, Any]:
        """One attempt: take a place in every window (and say which, for `_stamp`), or say how
        long to wait and why."""
        raise NotImplementedError

    async def _stamp(self, places: Any, ago: float) -> None:
        """These places' send was answered `ago` seconds before: they count from then."""
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
                    wait, why, places = await self._take(rules, bulk)
                if why == TAKEN:
                    self._open.setdefault(chat_id, deque()).append(places)
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
        """The admitted send's answer came back: its places count from now (stamped in the
        background, in the shared clock: the trip there only errs on the safe side)."""
        waiting = self._open.get(chat_id)
        if not waiting:
            return
        places = waiting.popleft()
        if not waiting:
            del self._open[chat_id]
        task = asyncio.get_running_loop().create_task(
            self._stamp_from(places, asyncio.get_running_loop().time())
        )
        self._stamping.add(task)
        task.add_done_callback(self._stamping.discard)

    async def _stamp_from(self, places: Any, answered_at: float) -> None:
        # From when the answer came, not when the stamp arrives: a stamp delayed (a busy
        # connection, the event loop) would hold the place longer than needed.
        await self._stamp(places, max(0.0, asyncio.get_running_loop().time() - answered_at))

    async def _settle(self) -> None:
        """Let the stamps on their way arrive (before closing the connections)."""
        if self._stamping:
            await asyncio.wait(set(self._stamping), timeout=5)

    def chat_ready_at(self, chat_id: int, now: float) -> float:
        return self._local.ready_at(chat_id, now, bulk=True)

    def forget_idle(self) -> None:
        self._local.forget_idle(asyncio.get_running_loop().time())


# Redis: one sorted set per window (members: admissions, scores: when they count from), taken
# in one script with the server's clock, so processes on several machines agree. The same steps
# as the database's gate_take (storage/migrations/versions/0007_gate_marks.py).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local pause = tonumber(redis.call('GET', KEYS[1]) or '0')
if pause > now then return {tostring(pause - now), '1'} end
if ARGV[1] == '1' and tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then return {'0.05', '2'} end
local open = tonumber(ARGV[2])
local n = #KEYS - 2
local wait, why = 0, 0
for i = 1, n do
  local key, limit, secs = KEYS[2 + i], tonumber(ARGV[3 + i]), tonumber(ARGV[3 + n + i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - secs)
  local nth = redis.call('ZREVRANGE', key, limit - 1, limit - 1, 'WITHSCORES')
  if nth[2] and tonumber(nth[2]) + secs - now > wait then
    wait = tonumber(nth[2]) + secs - now
    if i == 1 then why = 3 else why = 4 end
  end
end
if wait > 0 then return {tostring(wait), tostring(why)} end
for i = 1, n do
  local key, secs = KEYS[2 + i], tonumber(ARGV[3 + n + i])
  redis.call('ZADD', key, now + open, ARGV[3])
  redis.call('EXPIRE', key, math.ceil(open + secs) + 1)
end
return {'0', '0'}
"""
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local untl = now + tonumber(ARGV[1])
if untl > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], tostring(untl), 'PX', math.max(1, math.ceil(tonumber(ARGV[1]) * 1000)))
  return 1
end
return 0
"""
_PAUSE_LEFT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return tostring(math.max(0, tonumber(redis.call('GET', KEYS[1]) or '0') - now))
"""
_STAMP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 1, #KEYS do redis.call('ZADD', KEYS[i], 'XX', now - tonumber(ARGV[2]), ARGV[1]) end
return 0
"""


class RedisState(SharedState):
    def __init__(
        self,
        redis_url: str,
        bot_id: int,
        limits: Limits = Limits(),
        *,
        prefix: str = "branchbot:gate",
        secret: bytes = b"",
    ) -> None:
        super().__init__(limits, secret=secret)
        self._redis: Redis = Redis.from_url(redis_url)
        # One hash slot for all of a bot's keys, so a script may touch them together.
        self._base = f"{{{prefix}:{bot_id}}}"
        self._pause_key = f"{self._base}:pause"
        self._replies_key = f"{self._base}:replies"
        self._take_script = self._redis.register_script(_TAKE)
        self._stamp_script = self._redis.register_script(_STAMP)
        self._pause_script = self._redis.register_script(_PAUSE)
        self._pause_left_script = self._redis.register_script(_PAUSE_LEFT)

    async def close(self) -> None:
        await self._settle()
        await self._redis.aclose()

    # The pause in the server's clock too, as the windows are.
    async def pause(self, seconds: float) -> None:
        if await self._pause_script(keys=[self._pause_key], args=[repr(seconds + PAUSE_MARGIN)]):
            self.paused_total += seconds

    async def pause_left(self) -> float:
        return float(await self._pause_left_script(keys=[self._pause_key]))

    async def _take(self, rules: list[Rule], bulk: bool) -> tuple[float, int, Any]:
        keys = [f"{self._base}:{r.name}" for r in rules]
        member = uuid.uuid4().hex
        wait, why = await self._take_script(
            keys=[self._pause_key, self._replies_key, *keys],
            args=[
                "1" if bulk else "0",
                REQUEST_TIMEOUT,
                member,
                *(r.limit for r in rules),
                *(repr(r.seconds) for r in rules),
            ],
        )
        return float(wait), int(why), (keys, member)

    async def _stamp(self, places: Any, ago: float) -> None:
        keys, member = places
        await self._stamp_script(keys=keys, args=[member, repr(ago)])

    async def _mark_reply(self) -> object:
        await self._redis.incr(self._replies_key)
        await self._redis.expire(self._replies_key, REPLY_MARK_SECONDS)
        return True

    async def _unmark_reply(self, mark: object) -> None:
        await self._redis.decr(self._replies_key)
