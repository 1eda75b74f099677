"""Counters for tests and benchmarks: every message the bots sent (with the emulator's
monotonic time), requests per method, 429s by cause, injected 5xx, early retries."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from emulator.limits import EPSILON


@dataclass(frozen=True)
class SendRecord:
    at: float  # emulator clock (monotonic seconds)
    bot_id: int
    chat_id: int
    message_id: int
    method: str


@dataclass
class Stats:
    sends: list[SendRecord] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)  # by method name as called
    limit_429: Counter[str] = field(default_factory=Counter)  # by limit: global, chat, group, wait
    injected_429: int = 0
    injected_5xx: int = 0
    early_retries: int = 0
    early_retry_log: list[tuple[float, int, int]] = field(default_factory=list)  # (at, bot, chat)

    @property
    def limit_429_total(self) -> int:
        return sum(self.limit_429.values())

    def sent(self, bot_id: int | None = None) -> int:
        """Messages delivered by one bot (or all)."""
        return sum(1 for s in self.sends if bot_id is None or s.bot_id == bot_id)

    def per_chat(self, bot_id: int | None = None) -> Counter[int]:
        """Messages delivered per chat: a count above one for a one-message broadcast is a
        duplicate, a missing chat a loss."""
        return Counter(s.chat_id for s in self.sends if bot_id is None or s.bot_id == bot_id)

    def rate(self, bot_id: int | None = None) -> float:
        """Achieved messages per second between the first and the last send (0 if fewer than 2)."""
        times = [s.at for s in self.sends if bot_id is None or s.bot_id == bot_id]
        if len(times) < 2 or times[-1] == times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def max_in_window(self, seconds: float, bot_id: int | None = None, chat_id: int | None = None) -> int:
        """The most sends that fell into any window of `seconds` (to check a limit was kept),
        with the limiter's 1 microsecond tolerance at the window's edge."""
        times = [
            s.at
            for s in self.sends
            if (bot_id is None or s.bot_id == bot_id) and (chat_id is None or s.chat_id == chat_id)
        ]
        best = start = 0
        for end, t in enumerate(times):
            while t - times[start] >= seconds - EPSILON:
                start += 1
            best = max(best, end - start + 1)
        return best

    def reset(self) -> None:
        self.sends.clear()
        self.requests.clear()
        self.limit_429.clear()
        self.injected_429 = self.injected_5xx = self.early_retries = 0
        self.early_retry_log.clear()

    def summary(self) -> dict[str, object]:
        return {
            "sent": self.sent(),
            "requests": dict(self.requests),
            "limit_429": dict(self.limit_429),
            "injected_429": self.injected_429,
            "injected_5xx": self.injected_5xx,
            "early_retries": self.early_retries,
            "rate": self.rate(),
        }
