"""Telegram's sending limits, and the bookkeeping of 429 answers ("flood waits").

Only calls that put a message into a chat count as sends (`is_send`: sendMessage,
sendPhoto, sendDocument and the other send* methods except sendChatAction, plus
forward/copy). Edits, deletes and chat actions are not limited.

When enabled (`enable()`), three limits apply to every bot separately:

* global - a sliding window: at most `global_per_sec` accepted sends in any interval of
  1 s. A send at time t is refused when the bot already had that many accepted sends in
  (t - 1, t]; retry_after = ceil(oldest send in the window + 1 - t), at least 1.
* per chat - a token bucket, because Telegram tolerates a short burst in one chat but not a
  sustained rate above 1 message/s: the bucket holds at most `per_chat_burst` tokens (3 by
  default), refills at `per_chat_per_sec` tokens/s (1 by default) and every send takes one.
  With less than one token the send is refused; retry_after = ceil((1 - tokens) / rate).
  Over any long interval T a chat gets at most burst + rate * T messages.
* per group (chat id < 0) - a sliding window of `per_group_per_min` sends in any 60 s, on
  top of the per-chat bucket; retry_after = ceil(oldest send in the window + 60 - t).

Refused sends consume nothing. After any 429, Telegram refuses further sends until the
retry_after has passed; the emulator does too while limits are enabled (the refusal is
another 429 with the time still left). Scope of a 429: the whole bot for the global limit
and for injected 429s (fault injection), only that chat for the per-chat and per-group
limits. A send made while a 429 that covers it is still running counts as an *early retry*
(whether or not limits are enabled), which is what the broadcast benchmark reports.

All times come from `clock` (monotonic seconds), so tests can drive a fake clock. Window
edges allow EPSILON (1 microsecond) so that a sender pacing itself exactly at the limit is
not refused because of floating-point error.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

EPSILON = 1e-6
_FORWARDS = frozenset({"forwardmessage", "forwardmessages", "copymessage", "copymessages"})


def is_send(method: str) -> bool:
    m = method.lower()
    return (m.startswith("send") and m != "sendchataction") or m in _FORWARDS


@dataclass(frozen=True)
class Refusal:
    limit: str  # "global" | "chat" | "group" | "wait"
    retry_after: int
    chat_scoped: bool


class Limits:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.enabled = False
        self.global_per_sec = 30
        self.per_chat_per_sec = 1.0
        self.per_chat_burst = 3.0
        self.per_group_per_min = 20
        self._global: dict[int, deque[float]] = {}
        self._buckets: dict[tuple[int, int], tuple[float, float]] = {}  # (tokens, at)
        self._groups: dict[tuple[int, int], deque[float]] = {}
        # When the 429s given so far stop applying: per bot, and per (bot, chat).
        self._bot_wait: dict[int, float] = {}
        self._chat_wait: dict[tuple[int, int], float] = {}

    def enable(
        self,
        global_per_sec: int = 30,
        per_chat_per_sec: float = 1.0,
        per_group_per_min: int = 20,
        per_chat_burst: float = 3.0,
    ) -> None:
        self.enabled = True
        self.global_per_sec = global_per_sec
        self.per_chat_per_sec = per_chat_per_sec
        self.per_group_per_min = per_group_per_min
        self.per_chat_burst = max(per_chat_burst, 1.0)

    def disable(self) -> None:
        self.enabled = False

    def reset(self) -> None:
        """Forget all history (windows, buckets, flood waits)."""
        self._global.clear()
        self._buckets.clear()
        self._groups.clear()
        self._bot_wait.clear()
        self._chat_wait.clear()

    # -- flood waits ----------------------------------------------------------------------------

    def note_429(self, bot_id: int, chat_id: int | None, retry_after: int) -> None:
        """Remember a 429 given to the bot (chat_id None: it covers the whole bot)."""
        until = self.clock() + retry_after
        if chat_id is None:
            self._bot_wait[bot_id] = max(self._bot_wait.get(bot_id, 0.0), until)
        else:
            key = (bot_id, chat_id)
            self._chat_wait[key] = max(self._chat_wait.get(key, 0.0), until)

    def wait_left(self, bot_id: int, chat_id: int) -> float:
        """Seconds until every 429 covering a send to this chat has passed (0 if none)."""
        now = self.clock()
        until = max(self._bot_wait.get(bot_id, 0.0), self._chat_wait.get((bot_id, chat_id), 0.0))
        return max(until - now, 0.0)

    # -- the limits -----------------------------------------------------------------------------

    def admit(self, bot_id: int, chat_id: int) -> Refusal | None:
        """Decide one send; on acceptance its capacity is consumed. None means accepted."""
        if not self.enabled:
            return None
        now = self.clock()
        left = self.wait_left(bot_id, chat_id)
        if left > 0:
            chat_scoped = self._bot_wait.get(bot_id, 0.0) <= now
            return Refusal("wait", max(1, math.ceil(left)), chat_scoped)

        window = self._global.setdefault(bot_id, deque())
        while window and window[0] <= now - 1.0 + EPSILON:
            window.popleft()
        if len(window) >= self.global_per_sec:
            return Refusal("global", max(1, math.ceil(window[0] + 1.0 - now)), False)

        tokens, at = self._buckets.get((bot_id, chat_id), (self.per_chat_burst, now))
        tokens = min(self.per_chat_burst, tokens + (now - at) * self.per_chat_per_sec + EPSILON)
        if tokens < 1.0:
            return Refusal("chat", max(1, math.ceil((1.0 - tokens) / self.per_chat_per_sec)), True)

        group = None
        if chat_id < 0:
            group = self._groups.setdefault((bot_id, chat_id), deque())
            while group and group[0] <= now - 60.0 + EPSILON:
                group.popleft()
            if len(group) >= self.per_group_per_min:
                return Refusal("group", max(1, math.ceil(group[0] + 60.0 - now)), True)

        window.append(now)
        self._buckets[(bot_id, chat_id)] = (tokens - 1.0, now)
        if group is not None:
            group.append(now)
        return None
