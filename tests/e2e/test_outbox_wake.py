"""Messages an update queues for other people go out at once: the update guard wakes the
delivery worker after the commit instead of leaving them to its next poll."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, timedelta

from bot.delivery import DeliveryWorker
from content.pack import get_pack
from storage import service_log

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

TODAY = date(2026, 11, 28)


async def test_an_approval_reaches_the_member_without_waiting_for_the_worker_to_poll(
    chat, world, session, bot_app
) -> None:
    chat.user_for(world.member_a)  # the member has a Telegram chat the worker can reach
    actor = await world.actor(session, world.member_a)
    entry = service_log.new_entry(
        day=TODAY - timedelta(days=1), minutes=60, action="volunteer", description="社区义诊"
    )
    await service_log.log_service(session, actor, entry, source=None, today=TODAY, window_days=90, pack=PACK)
    await session.commit()

    # A worker that, left alone, would not look at the outbox again for ten minutes.
    worker = DeliveryWorker(bot_app.bot, bot_app.sessionmaker, bot_app.clock, "wake-test", idle_seconds=600)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    bot_app.dp["wake_outbox"] = worker.wake
    try:
        listing = (await chat.send(world.secretary_a, "/pending")).sent[0]
        await chat.press(world.secretary_a, listing, "✅ 通过 #")
        told = await chat.wait_message(world.member_a, "已通过审核", timeout=10)
        assert "1 小时" in (told.text or "")
    finally:
        stop.set()
        worker.wake()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(running, 20)
