"""The routing shortcut (bot/routing.py) skips routers, never changes which handler is chosen."""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.event.handler import HandlerObject
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.filters.logic import _InvertFilter
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Chat, Message, PhotoSize, Update, User
from magic_filter import MagicFilter

from bot.app import filters_on_the_loop
from bot.routing import first_word, skip_unmatched_routers
from handlers import routers
from handlers.kit.filters import HasRole, Joined
from storage.access import Actor, Grant
from storage.models import OrgKind, Role
from storage.people import PersonView

BOT_NAME = "branchbot_test_bot"
# The kinds of filter in the tree, each a check without side effects that hands on no
# `raw_state`: what the shortcut takes for granted. A new kind is to be looked at first.
KNOWN_FILTERS = (
    MagicFilter,
    State,
    StateFilter,
    Command,
    CommandStart,
    Joined,
    HasRole,
    CallbackQueryFilter,
    _InvertFilter,
)


def _handlers(router: Router) -> Iterator[tuple[str, HandlerObject]]:
    for name, observer in router.observers.items():
        for h in (observer._handler, *observer.handlers):
            yield name, h
    for sub in router.sub_routers:
        yield from _handlers(sub)


SHORTCUTS: dict[str, Any] = {}  # each router's, kept while a test takes it off and puts it back


@pytest.fixture
def dp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Dispatcher]:
    # aiogram logs each update at INFO, and pytest's capture would keep all ~100,000 of them.
    monkeypatch.setattr(logging.getLogger("aiogram.event"), "level", logging.WARNING)
    dp = Dispatcher(disable_fsm=True)
    for r in routers():
        dp.include_router(r)
    filters_on_the_loop(dp)
    skip_unmatched_routers(dp)
    SHORTCUTS.update((r.name, vars(r)["propagate_event"]) for r in dp.sub_routers)
    # Each handler of ours, when chosen, answers with itself instead of running.
    for _name, h in itertools.chain.from_iterable(_handlers(r) for r in dp.sub_routers):

        async def chosen(*_a: Any, _h: HandlerObject = h, **_k: Any) -> HandlerObject:
            return _h

        monkeypatch.setattr(h, "call", chosen)
    yield dp
    _shortcut(dp, True)  # the routers are module-level: leave them as make_dispatcher does


@pytest.fixture
async def bot() -> Bot:
    bot = Bot("123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    bot._me = User(id=123456, is_bot=True, first_name="b", username=BOT_NAME)  # for "/cmd@name"
    return bot


def _shortcut(dp: Dispatcher, on: bool) -> None:
    """Put the routers' shortcuts back (as they were, indexes read) or take them off."""
    for r in dp.sub_routers:
        if on:
            vars(r)["propagate_event"] = SHORTCUTS[r.name]
        else:
            vars(r).pop("propagate_event", None)


def _commands(dp: Dispatcher) -> set[str]:
    names: set[str] = set()
    for _name, h in _handlers(dp):
        for f in h.flags.get("commands", []):
            names.update(c for c in f.commands if isinstance(c, str))
    return names


def _states(dp: Dispatcher) -> set[str | None]:
    states: set[str | None] = {None}
    for _name, h in _handlers(dp):
        for f in h.filters or ():
            target = getattr(f.callback, "plain", f.callback)
            if isinstance(target, State):
                states.add(target.state)
            elif isinstance(target, StateFilter):
                for s in target.states:
                    states.update(getattr(s, "__all_states_names__", ()) or [getattr(s, "state", s)])
    return states


PEOPLE: dict[str, tuple[PersonView | None, Actor | None]] = {
    "stranger": (None, None),
    **{
        role.value: (
            PersonView(1, 5, "x", "zh", False, None, None),
            Actor(1, (Grant(1, "/1/", OrgKind.BRANCH, role),)),
        )
        for role in Role
    },
}


def _message(text: str | None, photo: bool = False, caption: str | None = None) -> Message:
    return Message(
        message_id=7,
        date=datetime(2026, 11, 20, tzinfo=UTC),
        chat=Chat(id=5, type="private"),
        from_user=User(id=5, is_bot=False, first_name="x"),
        text=text,
        caption=caption,
        photo=[PhotoSize(file_id="f", file_unique_id="u", width=1, height=1)] if photo else None,
    )


def _press(data: str | None) -> CallbackQuery:
    user = User(id=5, is_bot=False, first_name="x")
    return CallbackQuery(id="1", from_user=user, chat_instance="c", data=data)


def _button_data(dp: Dispatcher) -> list[str]:
    """For each kind of callback data in the tree: one packed with plain values, and its prefix
    with parts missing or extra."""
    dummy = {int: 7, str: "a", bool: True}
    out: list[str] = []
    for _name, h in _handlers(dp):
        for f in h.filters or ():
            if isinstance(f.callback, CallbackQueryFilter):
                kind = f.callback.callback_data
                values = {k: dummy.get(v.annotation, "a") for k, v in kind.model_fields.items()}
                try:
                    out.append(kind(**values).pack())
                except ValueError:
                    pass
                out += [kind.__prefix__, f"{kind.__prefix__}:x", f"{kind.__prefix__}:1:2:3:4:5"]
    return sorted(set(out))


def _texts(commands: set[str]) -> list[str]:
    out = ["hello", "社区志愿服务", "", "   ", "/", "//log", "/unknown", "/log\x00 1", "a\x07b", "log"]
    for c in sorted(commands):
        out += [
            f"/{c}",
            f"/{c} 1 今天 社区志愿服务3",
            f"  /{c}\targs",  # Command splits on any whitespace, leading too
            f"/{c}@{BOT_NAME} x",
            f"/{c}@someone_else",
            f"/{c.upper()}",
            f"/{c}x",
            f"!{c}",
        ]
    return out


_ids = itertools.count(1)


def _update(bot: Bot, event: Message | CallbackQuery) -> Update:
    # Each its own update_id: aiogram keeps `Update.event_type` in a cache keyed by it.
    kind = "message" if isinstance(event, Message) else "callback_query"
    return Update.model_validate({"update_id": next(_ids), kind: event.model_dump()}, context={"bot": bot})


async def _chosen(
    dp: Dispatcher, bot: Bot, event: Message | CallbackQuery | Update, who: str, state: str | None
) -> Any:
    person, actor = PEOPLE[who]
    update = event if isinstance(event, Update) else _update(bot, event)
    result = await dp.feed_update(bot, update, person=person, actor=actor, raw_state=state)
    return result if result is UNHANDLED else result.callback.__qualname__


async def test_every_command_and_state_picks_the_same_handler(dp: Dispatcher, bot: Bot) -> None:
    commands, states = _commands(dp), _states(dp)
    assert {"log", "start", "my", "cancel", "notify"} <= commands and len(states) > 20
    states |= {"Nobody:waits_here", "*"}
    few = [
        _message(t)
        for t in (
            "hello",
            "社区",
            "/log",
            "/log 1 今天 社区志愿服务3",
            "/cancel",
            "/start",
            "/unknown",
            "a\x07b",
        )
    ]
    few += [_message(None, photo=True), _message(None, photo=True, caption="/log 1 今天 x")]
    few += [_press(d) for d in ("lq:7:a", "ld:7:1", "lw:7:act:a", "srv:1", "nonsense", "", "lq", ":lq:7:a")]
    every = [_message(t or None) for t in _texts(commands)] + [_press(d) for d in _button_data(dp)]
    # Every command and button in a few states, and a few events in every state, from everyone.
    cases = [
        *itertools.product(every, PEOPLE, [None, "LogWizard:place", "LogQuick:action", "Nobody:waits_here"]),
        *itertools.product(few, PEOPLE, sorted(states, key=str)),
    ]
    seen = set()
    for event, who, state in cases:
        update = _update(bot, event)
        _shortcut(dp, True)
        fast = await _chosen(dp, bot, update, who, state)
        _shortcut(dp, False)
        slow = await _chosen(dp, bot, update, who, state)
        assert fast == slow, (event, who, state)
        seen.add(fast)
    assert len(seen) > 60  # most handlers were chosen at least once


@pytest.mark.parametrize(
    ("text", "who", "state", "handler", "visited"),
    [
        ("/log 1 今天 社区志愿服务3", "member", None, "cmd_log", ["handlers.service_log"]),
        ("/pending", "secretary", None, "cmd_pending", ["handlers.review"]),
        # A wizard's typed answer: only the routers with a handler for its state.
        ("社区", "member", "LogWizard:place", "on_wizard_free_text", ["handlers.service_log"]),
        # Nobody's command: only the fallback, whose last handler takes anything.
        ("!log 1 今天 x", "member", None, "on_other_message", ["handlers.fallback"]),
        ("/nothing", "member", None, "on_other_command", ["handlers.fallback"]),
        # A button of the quick form: only its router has handlers for the data's prefix.
        ("press lq:7:volunteer", "secretary", "LogQuick:action", "on_record_click", ["handlers.service_log"]),
        # A control character: the first router, which the magic filter read ahead lets through.
        ("/log 1 今天 \x07", "member", None, "refuse_control_chars", ["handlers.hygiene"]),
    ],
)
async def test_an_update_visits_only_the_routers_that_may_take_it(
    dp: Dispatcher, bot: Bot, monkeypatch: pytest.MonkeyPatch, text, who, state, handler, visited
) -> None:
    seen: list[str] = []
    for r in dp.sub_routers:
        original = r.propagate_event.original  # type: ignore[attr-defined]

        async def spy(*a: Any, _r: Router = r, _o: Any = original, **k: Any) -> Any:
            seen.append(_r.name)
            return await _o(*a, **k)

        monkeypatch.setattr(r.propagate_event, "original", spy)
    event = _press(text[6:]) if text.startswith("press ") else _message(text)
    assert await _chosen(dp, bot, event, who, state) == handler
    assert seen == visited


def test_the_filters_are_of_kinds_the_shortcut_knows(dp: Dispatcher) -> None:
    kinds = set()
    for _name, h in _handlers(dp):
        for f in h.filters or ():
            target = f.magic or getattr(f.callback, "plain", f.callback)
            assert isinstance(target, KNOWN_FILTERS), target
            kinds.add(type(target).__name__)
    assert {"State", "Command", "CommandStart", "HasRole", "Joined"} <= kinds


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("/log 1 今天 x", ("/", "log")),
        ("/log@bot 1", ("/", "log")),
        (" \t/my", ("/", "my")),
        ("/", ("/", "")),
        ("hello world", ("h", "ello")),
        ("   ", None),
        (None, None),
    ],
)
def test_first_word_reads_as_command_does(text: str | None, word: tuple[str, str] | None) -> None:
    message = _message(text)
    assert first_word(message) == word
    if word is not None:
        parsed = Command.extract_command(text or "")
        assert (parsed.prefix, parsed.command) == word
    else:
        with pytest.raises(Exception):  # noqa: B017
            Command.extract_command(text or "")


def test_a_regexp_command_is_matched_as_command_matches_it() -> None:
    # Not in our tree today; the shortcut still must not skip it.
    router = Router()
    router.message(Command(re.compile(r"lo+g")))(lambda: None)
    dp = Dispatcher(disable_fsm=True)
    dp.include_router(router)
    skip_unmatched_routers(dp)
    assert router.propagate_event._may_match("message", _message("/looog 1"), {})  # type: ignore[attr-defined]
    assert not router.propagate_event._may_match("message", _message("/lg 1"), {})  # type: ignore[attr-defined]
