"""Plain filters (a conversation State, F.text ...) run on the event loop, not in a thread."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiogram import Dispatcher
from aiogram.types import Chat, Message, User

from bot.app import filters_on_the_loop
from handlers import routers
from handlers.service_log import LogQuick


def _filters(router):
    for observer in router.observers.values():
        for handler in (observer._handler, *observer.handlers):
            yield from ((handler, f) for f in handler.filters or ())
    for sub in router.sub_routers:
        yield from _filters(sub)


async def test_every_filter_is_awaited_in_place_and_still_filters(monkeypatch) -> None:
    dp = Dispatcher()
    for r in routers():
        dp.include_router(r)
    # The routers are module-level: an earlier test's dispatcher may have wrapped them already.
    filters_on_the_loop(dp)
    assert len(list(_filters(dp))) > 50  # States and magic filters of the handlers, Joined ...
    assert all(f.awaitable for _h, f in _filters(dp))
    assert filters_on_the_loop(dp) == 0  # once is enough

    def no_thread(*_a, **_k):
        raise AssertionError("a filter went to a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    # The quick form's "waiting for the action" handler: its State, then ~F.text.startswith("/").
    handler = next(h for h, _f in _filters(dp) if h.callback.__name__ == "on_quick_waiting_for_action")
    message = Message(
        message_id=1,
        date=datetime(2026, 11, 20, tzinfo=UTC),
        chat=Chat(id=5, type="private"),
        from_user=User(id=5, is_bot=False, first_name="x"),
        text="社区义诊",
    )
    assert (await handler.check(message, raw_state=LogQuick.action.state))[0]
    assert not (await handler.check(message, raw_state=None))[0]
    command = message.model_copy(update={"text": "/log"})
    assert not (await handler.check(command, raw_state=LogQuick.action.state))[0]
