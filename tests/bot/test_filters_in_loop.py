"""Filters are checked on the event loop: aiogram would run each magic (`F.…`) or state filter in a
thread of the default executor, one hop per filter checked and a malloc arena per thread
(issue 11, memory). bot.app.filters_on_the_loop turns them into coroutines."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import Message, Update

from bot.app import filters_on_the_loop, make_dispatcher
from config.clock import Clock
from config.settings import Settings
from content.pack import get_pack
from storage.db import make_engine, make_sessionmaker


def _left_to_threads(dp: Dispatcher) -> list[str]:
    return [
        f"{router.name} {name}: {f.callback!r}"
        for router in dp.chain_tail
        for name, observer in router.observers.items()
        for handler in (observer._handler, *observer.handlers)
        for f in handler.filters or ()
        if not f.awaitable
    ]


async def test_no_filter_of_the_bot_runs_in_a_thread() -> None:
    """Every filter of the bot's dispatcher is awaited on the loop (a filter of a new kind, such as
    a plain function, fails here rather than going to a thread unseen)."""
    settings = Settings(_env_file=None, bot_token="42:TEST", database_url="sqlite+aiosqlite://")  # type: ignore[call-arg]
    engine = make_engine(settings.database_url)
    try:
        dp = make_dispatcher(
            settings, make_sessionmaker(engine), Clock(), get_pack(settings.content_pack), MemoryStorage()
        )
    finally:
        await engine.dispose()
    assert _left_to_threads(dp) == []


class Flow(StatesGroup):
    naming = State()


def _message(text: str, update_id: int) -> Update:
    return Update.model_validate(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 0,
                "chat": {"id": 7, "type": "private"},
                "from": {"id": 7, "is_bot": False, "first_name": "A"},
                "text": text,
            },
        }
    )


async def test_magic_and_state_filters_still_decide_without_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_thread(*_: Any, **__: Any) -> Any:
        raise AssertionError("a filter went to a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    seen: list[str] = []
    router = Router()

    @router.message(Flow.naming, F.text)
    async def named(message: Message) -> None:
        seen.append(f"named {message.text}")

    @router.message(F.text == "hi")
    async def hello(message: Message) -> None:
        seen.append("hello")

    dp = Dispatcher()
    dp.include_router(router)
    filters_on_the_loop(dp)
    bot = Bot("42:TEST")
    try:
        await dp.feed_update(bot, _message("hi", 1))
        await dp.feed_update(bot, _message("bye", 2))  # neither filter passes
        await dp.storage.set_state(StorageKey(bot_id=bot.id, chat_id=7, user_id=7), Flow.naming)
        await dp.feed_update(bot, _message("Li", 3))
    finally:
        await bot.session.close()
    assert seen == ["hello", "named Li"]
