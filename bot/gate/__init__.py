"""One gate for every Bot API call of a bot: an aiogram session middleware.

Every call (a handler's reply, an edit, a callback answer, a file, the delivery worker's sends)
passes `Gate.__call__`:

- A 429 holds every call of the bot for its retry_after (Telegram's retry_after covers the bot),
  and the refused call is made again once it has passed: a reply is never dropped for a 429.
- Messages (send*, forward, copy: what Telegram counts) take a place within Telegram's limits,
  30/s per bot, 1/s per chat (a short burst tolerated), 20/min per group, shared by handlers
  and the worker. A reply goes first: while one waits, no bulk send takes a place, so a person
  who just wrote waits for at most the next free place, not for a broadcast.
- 5xx and network errors are retried with backoff only where a retry cannot double a message:
  calls that send nothing (edits, callback answers, getters, settings) are retried on any of
  them; a message only when Telegram provably did not take it: the connection was never made,
  or Telegram's front end answered 502/503/504 (its Bot API server was not reached). A 500 or a
  timeout after the request went out may have sent it: that error goes to the caller.
- An answerCallbackQuery refused as too old (Telegram takes answers for about 15 s, e.g. not
  after an outage) is let go: the spinner has stopped anyway, and the handler goes on. Its
  result is False if the answer had a text, which was then not shown.
- Bulk calls (the delivery worker, inside `bulk()`) are admitted by the worker itself (it picks
  what to send next by what the limits allow) and decide their own retries (the outbox keeps
  them); the gate still counts their answers and pauses everyone on their 429s.

Where the limits live is a `GateState`: this process (`LocalState`) or, with several processes,
shared (`bot/gate/shared.py`: Redis; `bot/gate/dbstate.py`: PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import AnswerCallbackQuery
from aiogram.methods.base import TelegramMethod, TelegramType
from aiohttp import ClientConnectorError

from bot.gate.pacing import Limits
from bot.gate.state import GateState, LocalState

log = logging.getLogger("branchbot.gate")

_FORWARDS = frozenset({"forwardmessage", "forwardmessages", "copymessage", "copymessages"})
TOO_OLD = "query is too old"

_bulk: ContextVar[bool] = ContextVar("gate_bulk", default=False)
# Called before each call to Telegram made while an update is handled: the update commits what
# it has done since (nothing, after the first), so its transaction holds no database lock (on
# SQLite the one connection) while the call goes and comes back, or waits (the chat's turn, a
# 429's retry_after, an outage).
before_wait: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar("gate_before_wait", default=None)


class UpdateHook:
    """`before_wait`'s value for one update: its hook until `drop`, then nothing. A timer or task
    started during the update copies the context and keeps its values; the hook itself would keep
    the update's session alive with it."""

    __slots__ = ("hook",)

    def __init__(self, hook: Callable[[], Awaitable[None]]) -> None:
        self.hook: Callable[[], Awaitable[None]] | None = hook

    async def __call__(self) -> None:
        hook = self.hook
        if hook is not None:
            await hook()

    def drop(self) -> None:
        self.hook = None


def is_message(method: TelegramMethod[Any]) -> bool:
    """Does Telegram count this call against its message limits (a message lands in a chat)?"""
    name = method.__api_method__.lower()
    return (name.startswith("send") and name != "sendchataction") or name in _FORWARDS


def chat_of(method: TelegramMethod[Any]) -> int | None:
    chat_id = getattr(method, "chat_id", None)
    if isinstance(chat_id, int):
        return chat_id
    with contextlib.suppress(TypeError, ValueError):
        return int(chat_id)  # type: ignore[arg-type]
    return None


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """Calls made inside are the worker's: admitted by it, retried by the outbox."""
    token = _bulk.set(True)
    try:
        yield
    finally:
        _bulk.reset(token)


def not_sent(e: BaseException) -> bool:
    """Did this error happen before Telegram could have acted on the call?"""
    if isinstance(e, TelegramNetworkError):
        return isinstance(e.__cause__, ClientConnectorError)  # no connection, so no request
    if isinstance(e, TelegramServerError):
        return _gateway(str(e.message))
    if isinstance(e, ClientDecodeError):  # a front end's HTML page instead of JSON
        return _gateway(str(e.data))
    return False


def _gateway(text: str) -> bool:
    # aiogram keeps no HTTP status: a JSON error has the reason as its description, a front
    # end's page has "502 Bad Gateway" in its body.
    low = text.lower()
    return any(words in low for words in ("bad gateway", "service unavailable", "gateway timeout"))


class Gate(BaseRequestMiddleware):
    def __init__(
        self,
        state: GateState | None = None,
        *,
        retry_base: float = 0.5,
        retry_max: float = 5.0,
        give_up_after: float = 300.0,
    ) -> None:
        self.state: GateState = state or LocalState()
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.give_up_after = give_up_after
        self.rate_limited = 0  # 429 answers seen
        self.retried = 0  # calls made again after a 5xx or network error
        self.retried_by: Counter[str] = Counter()  # ...by the error's class name
        self.replies = 0  # non-bulk messages admitted
        self.limited = asyncio.Event()  # set at the first 429 (tests and the demo wait on it)

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        if _bulk.get():
            return await self._bulk_call(make_request, bot, method)
        loop = asyncio.get_running_loop()
        started = loop.time()
        message = is_message(method)
        failures = 0
        maybe_taken = False  # an earlier attempt failed after it may have reached Telegram
        # The update commits before it talks to Telegram, not only before a long wait: its
        # transaction (on SQLite the one connection and the write lock) would otherwise stay open
        # through the call's round trip and any wait (the chat's turn, a 429, a retry), and every
        # other update would queue behind it.
        hook = before_wait.get()
        if hook is not None:
            await hook()
        while True:
            left = await self.state.pause_left()
            while left > 0:
                await asyncio.sleep(left)  # the instant Telegram named, not a poll
                left = await self.state.pause_left()
            if message:
                await self.state.admit(chat_of(method), bulk=False)
                self.replies += 1
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as e:
                self.rate_limited += 1
                await self.state.pause(e.retry_after)
                self.limited.set()
                log.info("%s: 429, every call waits %s s", method.__api_method__, e.retry_after)
            except TelegramBadRequest as e:
                if isinstance(method, AnswerCallbackQuery) and TOO_OLD in str(e.message):
                    # Too late to stop the button's spinner (e.g. after an outage, or answered
                    # already): nothing is lost, unless the answer had a text to show. False tells
                    # the caller that text was not shown (the update guard then writes it in the
                    # chat); not when an earlier attempt may have shown it (its answer was lost).
                    log.info("answerCallbackQuery: too old, dropped")
                    return maybe_taken or not method.text
                raise
            except (TelegramServerError, TelegramNetworkError, ClientDecodeError) as e:
                # A message only if Telegram provably did not take it; an undecodable answer
                # only if it is a front end's gateway page (else it would not decode next time).
                if (message or isinstance(e, ClientDecodeError)) and not not_sent(e):
                    raise
                # Telegram unreachable is waited out (an outage); any other server error is
                # tried a few times only: it may be about this very call.
                if loop.time() - started > self.give_up_after or (failures >= 2 and not not_sent(e)):
                    raise
                failures += 1
                maybe_taken = maybe_taken or not not_sent(e)  # then "too old" may mean "shown"
                self.retried += 1
                self.retried_by[type(e).__name__] += 1
                delay = min(self.retry_max, self.retry_base * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)
                log.info("%s: %s, again in %.1f s", method.__api_method__, type(e).__name__, delay)
                await asyncio.sleep(delay)
            finally:
                if message:
                    self.state.answered(chat_of(method))

    async def _bulk_call(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter as e:
            self.rate_limited += 1
            await self.state.pause(e.retry_after)
            self.limited.set()
            raise
        finally:
            if is_message(method):
                self.state.answered(chat_of(method))


# By session, not by bot: Bot objects of one token are equal, yet each has its own session.
_gates: weakref.WeakKeyDictionary[BaseSession, Gate] = weakref.WeakKeyDictionary()


def install(bot: Bot, gate: Gate) -> Gate:
    """Put the gate in front of every call of this bot (once)."""
    if bot.session in _gates:
        raise RuntimeError("this bot already has a gate")
    bot.session.middleware(gate)
    _gates[bot.session] = gate
    return gate


def gate_of(bot: Bot, limits: Limits = Limits()) -> Gate:
    """The bot's gate; a bot that has none (a test's, a one-off script's) gets one in this
    process, with these limits."""
    gate = _gates.get(bot.session)
    if gate is None:
        gate = install(bot, Gate(LocalState(limits)))
    return gate


__all__ = [
    "Gate",
    "GateState",
    "Limits",
    "LocalState",
    "UpdateHook",
    "bulk",
    "chat_of",
    "gate_of",
    "install",
    "is_message",
    "not_sent",
]
