"""Routing shortcut: an update visits only the routers holding a handler it could match.

aiogram offers an update to each router in turn, and a visit is not free: the router wraps its
observer's outer middlewares, runs its router-wide filters (`Joined`, `HasRole`), then each
handler's filters, every one through a `partial` over a copy of the update's data. A `/log` line
from a member crossed 13 routers before its own: 0.2 ms of CPU, more than the rest of routing.

A handler's filters must all pass, and some can be read ahead cheaply and without effect:
- `Command` / `CommandStart`: the first word of the text must be one of the filter's prefixes
  followed by one of its names (or a match of one of its patterns), read as `Command` reads it;
- a `State` or `StateFilter`: the conversation's raw state, as the FSM middleware passed it on;
- `SomeCallbackData.filter()`: the button's data must start with the class's prefix, which
  `CallbackData.unpack` refuses otherwise;
- a magic filter (`F...`): a check of the event alone.
When one of these says no, the handler cannot match. A leaf router none of whose handlers can
match is skipped whole, its router-wide filters included; otherwise aiogram runs it exactly as
before, every filter again. So which handler handles what does not change, given what our
filters are: checks without side effects, none of which hands on a `raw_state` of its own
(`tests/bot/test_routing.py` lists the kinds in the tree and compares every choice with and
without the shortcut)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from inspect import isclass
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.event.handler import FilterObject
from aiogram.dispatcher.event.telegram import TelegramEventObserver
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.filters.callback_data import CallbackData, CallbackQueryFilter
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, TelegramObject

# What a handler's filters say ahead, one check per filter read: (STATE, the raw states it lets
# through), (COMMAND, (prefixes, names, ignore_case, patterns)), (DATA, (separator, prefix)) or
# (MAGIC, the magic filter).
STATE, COMMAND, DATA, MAGIC = 0, 1, 2, 3
Guard = tuple[tuple[int, Any], ...]


def skip_unmatched_routers(router: Router) -> int:
    """Give every leaf router below `router` the shortcut; returns how many got it."""
    count = 0
    for sub in router.sub_routers:
        if sub.sub_routers:
            count += skip_unmatched_routers(sub)
        elif not isinstance(getattr(sub, "propagate_event", None), _Shortcut):
            sub.propagate_event = _Shortcut(sub)  # type: ignore[method-assign]
            count += 1
    return count


class _Shortcut:
    """A leaf router's `propagate_event`: aiogram's, unless no handler of the router can match."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.original = router.propagate_event
        # Per event type: how many handlers the observer had when it was indexed (a handler
        # registered later makes it be indexed again), and the index (None: always visit).
        self.index: dict[str, tuple[int, _Index | None]] = {}

    async def __call__(self, update_type: str, event: TelegramObject, **kwargs: Any) -> Any:
        # A router that grew sub-routers is left to aiogram: they may match where it does not.
        if not self.router.sub_routers and not self._may_match(update_type, event, kwargs):
            return UNHANDLED
        return await self.original(update_type=update_type, event=event, **kwargs)

    def _may_match(self, update_type: str, event: TelegramObject, data: dict[str, Any]) -> bool:
        observer = self.router.observers.get(update_type)
        if observer is None:
            return True
        kept = self.index.get(update_type)
        if kept is None or kept[0] != len(observer.handlers):
            kept = self.index[update_type] = (len(observer.handlers), _Index.of(observer))
        index = kept[1]
        # Outer middlewares run for every event offered, matched or not: leave those to aiogram.
        if index is None or len(observer.outer_middleware):
            return True
        try:
            return index.may_match(event, data)
        except Exception:  # a check that fails here is left to aiogram to run (and report)
            return True


@dataclass(frozen=True, slots=True)
class _Index:
    """An observer's handlers by what they need: a conversation state, a command name, or
    neither (read one by one). A handler with a state or a name is looked at only when the
    update has it; then all its checks are read."""

    by_state: dict[str | None, tuple[Guard, ...]]
    by_name: dict[str, tuple[Guard, ...]]
    by_folded_name: dict[str, tuple[Guard, ...]]  # Command(..., ignore_case=True)
    by_data: dict[tuple[str, str], tuple[Guard, ...]]  # (separator, prefix) of callback data
    rest: tuple[Guard, ...]

    @classmethod
    def of(cls, observer: TelegramEventObserver) -> _Index | None:
        """None when a handler has no check read ahead: it may always match."""
        by_state: dict[str | None, list[Guard]] = {}
        by_name: dict[str, list[Guard]] = {}
        by_folded_name: dict[str, list[Guard]] = {}
        by_data: dict[tuple[str, str], list[Guard]] = {}
        rest: list[Guard] = []
        for handler in observer.handlers:
            guard = tuple(c for f in handler.filters or () if (c := _check(f)) is not None)
            if not guard:
                return None
            states = next((arg for kind, arg in guard if kind == STATE), None)
            command = next((arg for kind, arg in guard if kind == COMMAND and not arg[3]), None)
            data = next((arg for kind, arg in guard if kind == DATA), None)
            if states is not None:
                for state in states:
                    by_state.setdefault(state, []).append(guard)
            elif command is not None:
                names = by_folded_name if command[2] else by_name
                for name in command[1]:
                    names.setdefault(name, []).append(guard)
            elif data is not None:
                by_data.setdefault(data, []).append(guard)
            else:
                rest.append(guard)

        def frozen(d: dict[Any, list[Guard]]) -> dict[Any, tuple[Guard, ...]]:
            return {k: tuple(v) for k, v in d.items()}

        return cls(frozen(by_state), frozen(by_name), frozen(by_folded_name), frozen(by_data), tuple(rest))

    def may_match(self, event: TelegramObject, data: dict[str, Any]) -> bool:
        candidates = self.rest
        if self.by_state and (found := self.by_state.get(data.get("raw_state"))):
            candidates = candidates + found
        if (self.by_name or self.by_folded_name) and (word := first_word(event)) is not None:
            candidates = (
                candidates + self.by_name.get(word[1], ()) + self.by_folded_name.get(word[1].casefold(), ())
            )
        if self.by_data and isinstance(event, CallbackQuery) and event.data:
            for separator, prefix in self.by_data:
                if event.data.split(separator, 1)[0] == prefix:
                    candidates = candidates + self.by_data[separator, prefix]
        return any(_passes(guard, event, data) for guard in candidates)


def _passes(guard: Guard, event: TelegramObject, data: dict[str, Any]) -> bool:
    for kind, arg in guard:
        if kind == STATE:
            if data.get("raw_state") not in arg:
                return False
        elif kind == COMMAND:
            word = first_word(event)
            if word is None or word[0] not in arg[0]:
                return False
            name = word[1]
            if (name.casefold() if arg[2] else name) not in arg[1] and not any(p.match(name) for p in arg[3]):
                return False
        elif kind == DATA:
            payload = event.data if isinstance(event, CallbackQuery) else None  # as unpack splits it
            if not payload or payload.split(arg[0], 1)[0] != arg[1]:
                return False
        elif not arg.resolve(event):
            return False
    return True


def _check(f: FilterObject) -> tuple[int, Any] | None:
    if f.magic is not None:
        return MAGIC, f.magic
    target = getattr(f.callback, "plain", f.callback)  # a filter `filters_on_the_loop` wrapped
    if isinstance(target, State | StateFilter):
        states = _states(target)
        return None if states is None else (STATE, states)
    if type(target) in (Command, CommandStart):  # subclasses may read commands their own way
        names = frozenset(c for c in target.commands if isinstance(c, str))
        patterns = tuple(c for c in target.commands if isinstance(c, re.Pattern))
        return COMMAND, (target.prefix, names, target.ignore_case, patterns)
    # A class of callback data that reads its data its own way is left to aiogram.
    if (
        type(target) is CallbackQueryFilter
        and getattr(target.callback_data.unpack, "__func__", None) is _UNPACK
    ):
        return DATA, (target.callback_data.__separator__, target.callback_data.__prefix__)
    return None


_UNPACK = CallbackData.unpack.__func__  # type: ignore[attr-defined]


def _states(target: State | StateFilter) -> frozenset[str | None] | None:
    """The raw states a `State` or `StateFilter` lets through, as their own `__call__` decides;
    None for any state ("*")."""
    allowed: set[str | None] = set()
    for state in target.states if isinstance(target, StateFilter) else (target,):
        if isinstance(state, str) or state is None:
            name: str | None = state
        elif isinstance(state, State):
            name = state.state
        elif isinstance(state, StatesGroup) or (isclass(state) and issubclass(state, StatesGroup)):
            allowed.update(state.__all_states_names__)
            continue
        else:  # StateFilter lets nothing else through
            continue
        if name == "*":
            return None
        allowed.add(name)
    return frozenset(allowed)


_last: tuple[object, tuple[str, str] | None] = (None, None)


def first_word(event: TelegramObject) -> tuple[str, str] | None:
    """(prefix, name) of the command `Command` reads in the event ("/log@bot 1 x" → ("/", "log")),
    None where it reads none. Kept for the last event: every router asks about the same one."""
    global _last
    last = _last
    if last[0] is event:
        return last[1]
    word = None
    if isinstance(event, Message) and (text := event.text or event.caption):
        parts = text.split(maxsplit=1)  # as Command.extract_command splits
        if parts:
            word = (parts[0][0], parts[0][1:].partition("@")[0])
    _last = (event, word)
    return word
