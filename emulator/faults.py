"""Fault injection, switched on per test: answer 429 or 5xx instead of doing the call, or
delay answers.

Which calls a rule hits: `method` names one Bot API method (case-insensitive). With
`method=None` a rule hits every call that targets a chat (has a `chat_id`: sends, edits,
deletes, chat actions), never getUpdates or webhook management, so a test that breaks
sending does not also break the bot's update intake. `chat_id` narrows a rule to one chat.
A rule with `count=N` hits the next N matching calls and is then spent; `count=None` hits
until `clear()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(eq=False)
class Rule:
    kind: str  # "429" | "5xx" | "slow"
    remaining: int | None
    method: str | None = None
    chat_id: int | None = None
    retry_after: int = 1
    status: int = 500
    after_send: bool = False  # 5xx only: do the call, then answer the error anyway
    html: bool = False  # 5xx only: an HTML body (as Telegram's front end sends), not JSON
    seconds: float = 0.0
    hits: int = 0

    def matches(self, method: str, params: dict[str, Any]) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None:
            if self.method.lower() != method.lower():
                return False
        elif "chat_id" not in params:
            return False
        if self.chat_id is not None and _as_int(params.get("chat_id")) != self.chat_id:
            return False
        return True

    def consume(self) -> None:
        self.hits += 1
        if self.remaining is not None:
            self.remaining -= 1


class Faults:
    def __init__(self) -> None:
        self.rules: list[Rule] = []

    def inject_429(
        self,
        count: int | None = 1,
        retry_after: int = 1,
        method: str | None = None,
        chat_id: int | None = None,
    ) -> Rule:
        """The next `count` matching calls get 429 "Too Many Requests: retry after N"."""
        return self._add(Rule("429", count, method, chat_id, retry_after=retry_after))

    def inject_5xx(
        self,
        count: int | None = 1,
        status: int = 500,
        method: str | None = None,
        chat_id: int | None = None,
        *,
        after_send: bool = False,
        html: bool = False,
    ) -> Rule:
        """The next `count` matching calls get `status` (500 Internal Server Error, 502 Bad
        Gateway...). With `after_send=True` the call takes effect first (the message is
        delivered) and the bot still sees the error: the case that makes naive retries
        send twice."""
        return self._add(Rule("5xx", count, method, chat_id, status=status, after_send=after_send, html=html))

    def slow(
        self, seconds: float, method: str | None = None, chat_id: int | None = None, count: int | None = None
    ) -> Rule:
        """Delay the answer to matching calls by `seconds` (until cleared, or `count` calls)."""
        return self._add(Rule("slow", count, method, chat_id, seconds=seconds))

    def clear(self) -> None:
        self.rules.clear()

    def remove(self, rule: Rule) -> None:
        if rule in self.rules:
            self.rules.remove(rule)

    def take(self, kind: str, method: str, params: dict[str, Any]) -> Rule | None:
        """The first live rule of this kind that matches the call, consumed once."""
        for rule in self.rules:
            if rule.kind == kind and rule.matches(method, params):
                rule.consume()
                return rule
        return None

    def _add(self, rule: Rule) -> Rule:
        self.rules.append(rule)
        return rule


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
