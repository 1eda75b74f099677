"""Pacing Bot API sends within Telegram's limits, in this process (see bot/gate for the gate
that every call passes).

Telegram allows about 30 messages/s per bot, 1/s per chat and 20/min per group, and counts them
at its own end, after network jitter. Bulk sends go out evenly spaced (aiolimiter's leaky bucket,
which never lets two go at once), and a window allows at most `rate` sends in any
1 s x (1 + headroom), each counted from when Telegram's answer came back: whatever the jitter, a
send then reaches Telegram after the one it replaces in the window has left Telegram's window
too (see AnswerWindow). Per chat, sends are spaced by the chat interval, and groups keep 20 per
minute, with the same few percent of headroom.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

# Seconds added to every retry_after: our clock starts it when the answer arrives, Telegram's
# when it answered, so ours ends later anyway; this covers clock granularity.
PAUSE_MARGIN = 0.05
REQUEST_TIMEOUT = 30


@dataclass(frozen=True)
class Limits:
    """Telegram's limits as a gate state keeps them, in this process or shared: the bot's
    messages per second, a chat's interval and burst, a group's messages per minute, and the
    headroom by which every window is stretched."""

    rate: float = 30
    per_chat_interval: float = 1.0
    group_per_minute: int = 20
    headroom: float = 0.03
    chat_burst: int = 3

    def chat_pacer(self) -> ChatPacer:
        return ChatPacer(self.per_chat_interval, self.group_per_minute, self.headroom, burst=self.chat_burst)


class Window:
    """At most `limit` events in any interval of `seconds`: a sliding log of event times.

    The same rule Telegram (and the emulator, emulator/limits.py) applies at its end: an event
    at t is allowed when fewer than `limit` events fell in (t - seconds, t].
    """

    def __init__(self, limit: int, seconds: float) -> None:
        if limit < 1 or seconds <= 0:
            raise ValueError("a window needs limit >= 1 and seconds > 0")
        self.limit = limit
        self.seconds = seconds
        self._times: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._times and self._times[0] + self.seconds <= now:
            self._times.popleft()

    def ready_at(self, now: float) -> float:
        """The earliest time (>= now) at which one more event is allowed."""
        self._prune(now)
        if len(self._times) < self.limit:
            return now
        return self._times[-self.limit] + self.seconds

    def note(self, now: float) -> None:
        self._times.append(now)

    def idle(self, now: float) -> bool:
        self._prune(now)
        return not self._times


class ChatPacer:
    """Per chat: a bulk send at most one per `interval`, and nobody more than `burst` per
    `burst` intervals (Telegram tolerates a person's quick exchange of a few messages, not a
    sustained rate above one a second); group chats (id < 0) also `group_limit` per minute.

    One log per chat, shared by bulk sends and replies, so each sees the other's messages.
    """

    def __init__(self, interval: float, group_limit: int, headroom: float, burst: int = 3) -> None:
        self.interval = interval * (1 + headroom)
        self.burst = max(1, burst)
        self.group_limit = group_limit
        self.group_seconds = 60.0 * (1 + headroom)
        self._chats: dict[int, deque[float]] = {}

    def _horizon(self, chat_id: int) -> float:
        return max(self.interval * self.burst, self.group_seconds if chat_id < 0 else 0.0)

    def _rules(self, chat_id: int, bulk: bool) -> list[tuple[int, float]]:
        rules = [(self.burst, self.interval * self.burst)]
        if bulk:
            rules.append((1, self.interval))
        if chat_id < 0:
            rules.append((self.group_limit, self.group_seconds))
        return rules

    def ready_at(self, chat_id: int, now: float, *, bulk: bool = True) -> float:
        times = self._chats.get(chat_id)
        if not times:
            return now
        at = now
        for limit, seconds in self._rules(chat_id, bulk):
            recent = [t for t in times if t + seconds > now]
            if len(recent) >= limit:
                at = max(at, recent[-limit] + seconds)
        return at

    def note(self, chat_id: int, now: float) -> None:
        times = self._chats.setdefault(chat_id, deque())
        times.append(now)
        horizon = self._horizon(chat_id)
        while times and times[0] + horizon <= now:
            times.popleft()

    def answered(self, chat_id: int, now: float) -> None:
        """The send noted last for this chat was answered: count it from now. Telegram counted it
        somewhere between the two; from the answer, the next one cannot arrive within the
        interval of it, whatever the network did (the same rule as AnswerWindow)."""
        times = self._chats.get(chat_id)
        if times:
            times[-1] = max(times[-1], now)

    def forget_idle(self, now: float) -> None:
        """Drop the logs of chats with nothing recent, so a big broadcast leaves no residue."""
        for chat_id in [c for c, t in self._chats.items() if not t or t[-1] + self._horizon(c) <= now]:
            del self._chats[chat_id]

    def __len__(self) -> int:
        return len(self._chats)


class AnswerWindow:
    """At most `limit` sends in any `seconds`, each counted from when its answer came back.

    Telegram counts a send when it arrives, somewhere between our request and its answer; how
    long the request takes on the way is unknown (network jitter, a busy server). Counting from
    the answer is the one rule that keeps Telegram's count under the limit whatever the jitter:
    a send started `seconds` after an earlier one was answered arrives at least `seconds` after
    that one arrived. A send still on the wire holds its place until answered.
    """

    def __init__(self, limit: int, seconds: float) -> None:
        if limit < 1 or seconds <= 0:
            raise ValueError("a window needs limit >= 1 and seconds > 0")
        self.limit = limit
        self.seconds = seconds
        self.open = 0  # sent, not answered yet
        self._answered: deque[float] = deque()  # answer times, in the order they came

    def ready_at(self, now: float) -> float:
        """When one more send may start (inf: only once a send on the wire is answered)."""
        while self._answered and self._answered[0] + self.seconds <= now:
            self._answered.popleft()
        over = len(self._answered) + self.open - self.limit  # how many must leave the window first
        if over < 0:
            return now
        if over >= len(self._answered):
            return math.inf
        return self._answered[over] + self.seconds

    def start(self) -> None:
        self.open += 1

    def answered(self, now: float) -> None:
        self.open = max(0, self.open - 1)
        self._answered.append(now)


class GlobalPacer:
    """The bot's overall rate: a window counted from the answers that every send passes, bulk
    sends evenly spaced, replies first, and the pause a 429 imposes on every call of the bot."""

    def __init__(self, rate: float, headroom: float) -> None:
        if rate <= 0:
            raise ValueError("global_rate must be positive")
        # Bulk sends evenly spaced at the nominal rate. The bucket holds one and a half sends: a
        # send the event loop woke late for is made up by sending the next up to half a period
        # early (a bucket of one would lose every late wake-up for good), yet two never go at once.
        self.spacing = AsyncLimiter(1.5, 1.5 / rate)
        # The window keeps Telegram's own count under the limit (see AnswerWindow).
        self.window = AnswerWindow(max(1, int(rate)), 1.0 + headroom) if rate >= 1 else None
        self.paused_until = 0.0
        self.paused_total = 0.0
        self.replies_waiting = 0
        self._change = asyncio.Event()

    def pause(self, seconds: float, now: float) -> None:
        until = now + seconds + PAUSE_MARGIN
        if until > self.paused_until:
            self.paused_total += until - max(now, self.paused_until)
            self.paused_until = until

    def pause_left(self, now: float) -> float:
        return max(0.0, self.paused_until - now)

    async def acquire(self, *, bulk: bool = True) -> None:
        """Wait for the next send slot; it is taken when this returns. Call `answered()` when
        the send's answer (or its failure) comes back.

        A reply (bulk=False) skips the bulk spacing and takes the first free place in the
        window; while one waits, no bulk send takes a place: a person who just wrote is
        answered within a window's turn, not behind a whole broadcast.
        """
        loop = asyncio.get_running_loop()
        if bulk:
            await self.spacing.acquire()
        else:
            self.replies_waiting += 1
        try:
            while True:
                now = loop.time()
                ready = max(self.paused_until, self.window.ready_at(now) if self.window else now)
                if ready <= now and (not bulk or self.replies_waiting == 0):
                    if self.window is not None:
                        self.window.start()
                    return
                self._change.clear()
                wait = ready - now if ready != math.inf else REQUEST_TIMEOUT
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._change.wait(), max(wait, 0.001) if ready > now else 1.0)
        finally:
            if not bulk:
                self.replies_waiting -= 1
                self._change.set()

    def answered(self) -> None:
        if self.window is not None:
            self.window.answered(asyncio.get_running_loop().time())
        self._change.set()
