"""Telegram itself down for a minute: 30 s of 502s from its front end, then 30 s of nothing (no
connection at all). The bot, the delivery worker and the scheduler keep running; afterwards every
reply, notice and reminder arrives exactly once."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import create_app
from bot.delivery import DeliveryWorker
from bot.gate import gate_of
from bot.scheduler import Scheduler
from config.clock import Clock, FrozenClock
from config.settings import Settings
from storage import notices
from storage.access import load_actor
from storage.models import Delivery, DeliveryStatus, ReminderKind, ReminderRule
from tests.e2e.front import TelegramFront
from tests.e2e.harness import NOW, TOKEN, Chat, poll_until

BAD_GATEWAY_SECONDS = 30.0
SILENT_SECONDS = 30.0


@pytest.mark.slow
async def test_a_minute_without_telegram_loses_and_doubles_nothing(
    emulator, bots, world, db, clean_db, db_url, session
) -> None:
    # A long poll the front had passed on before the outage may still be waiting at Telegram
    # when the bot polls again afterwards: Telegram ends the older one with 409.
    bots.expect_error("getUpdates", 409, "terminated by other getUpdates", required=False)
    front = await TelegramFront(emulator.base_url).start()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        bot_token=TOKEN,
        telegram_api_url=front.url,
        database_url=db_url,
        bot_username="branchbot_test_bot",
    )
    handlers_clock = FrozenClock(NOW)
    app = create_app(settings, clock=handlers_clock, engine=clean_db)
    # The scheduler's clock is moved by the test, so a reminder falls due during the outage.
    due = NOW + timedelta(hours=1)
    sched_clock = FrozenClock(due - timedelta(minutes=1))
    worker = DeliveryWorker(app.bot, app.sessionmaker, Clock(), "outage-worker", retry_base=0.5, retry_max=5)
    scheduler = Scheduler(
        app.sessionmaker, sched_clock, "outage-scheduler", app.pack, tick_seconds=0.5, on_enqueued=worker.wake
    )
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(app.intake.run_polling(poll_timeout=2)),
        asyncio.create_task(worker.run(stop)),
        asyncio.create_task(scheduler.run(stop)),
    ]
    chat = Chat(emulator, app, timeout=20)
    people = [world.secretary_a, world.member_a, world.member_a2, world.member_b, world.member_c]
    users = {p.id: chat.user_for(p) for p in people}

    def received() -> Counter[int]:
        return Counter(
            {u.id: len(emulator.chat(u.id, bot=app.bot.id, include_deleted=True)) for u in users.values()}
        )

    before = received()
    try:
        assert "/log" in (await chat.send(world.member_a, "/help")).text  # all is well first
        session.add(
            ReminderRule(
                kind=ReminderKind.MONTHLY_NUDGE,
                org_id=world.branch_a.id,
                cron="0 10 25 * *",
                timezone="Asia/Shanghai",
                params={},
                enabled=True,
                grace_hours=24,
                next_due_at=due,
                created_at=NOW,
            )
        )
        await session.commit()

        # Telegram goes down the moment the bot answers member_b: that reply is on the wire.
        asker = users[world.member_b.id].id
        front.outage_when(
            lambda method, form: method == "sendMessage" and form.get("chat_id") == str(asker),
            bad_gateway=BAD_GATEWAY_SECONDS,
            silent=SILENT_SECONDS,
        )
        await emulator.send_text(users[world.member_b.id], "/help", bot=app.bot.id)
        await emulator.wait_for(lambda: front.mode != "up", 20)

        # While it is down: a notice goes out, a reminder falls due, someone else writes.
        actor = await load_actor(session, world.secretary_a.id)
        notice = await notices.create_notice(
            session, actor, world.branch_a.id, "branch_members", "周五下午三点支部大会", now=NOW
        )
        await notices.send_notice(session, actor, notice.id, now=NOW)
        await session.commit()
        worker.wake()
        sched_clock.advance(timedelta(minutes=1))
        late = await emulator.send_text(users[world.member_c.id], "/help", bot=app.bot.id)

        await asyncio.wait_for(front.restored.wait(), BAD_GATEWAY_SECONDS + SILENT_SECONDS + 30)
        gate = gate_of(app.bot)
        await app.intake.wait_handled(late["update_id"], 60)

        async def all_delivered() -> bool:
            rows = await db.all(select(Delivery))
            return bool(rows) and all(r.status is not DeliveryStatus.PENDING for r in rows)

        await poll_until(all_delivered, 60)  # the outbox has no change notification
        await emulator.wait_for(lambda: len(chat.messages(world.member_b)) >= 1, 30)
    finally:
        stop.set()
        app.intake.stop()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(t, 30)
        await app.close()
        await front.stop()

    # The outage was real and outlasted every retry delay and timeout of the bot (5 s at most):
    assert front.began is not None and front.ended is not None
    assert front.ended - front.began >= BAD_GATEWAY_SECONDS + SILENT_SECONDS
    assert front.refused["sendMessage"] >= 3 and front.refused["getUpdates"] >= 3
    assert front.refused_at[-1] - front.refused_at[0] >= BAD_GATEWAY_SECONDS - 6
    assert gate.retried_by["TelegramServerError"] + gate.retried_by["ClientDecodeError"] >= 3  # the 502s
    assert gate.retried_by["TelegramNetworkError"] >= 1  # and the connections refused after them

    # ...and nothing was lost or doubled.
    rows = await db.all(select(Delivery))
    assert {r.status for r in rows} == {DeliveryStatus.SENT}
    assert {r.kind for r in rows} >= {notices.KIND_NOTICE, "reminder"}
    expected = Counter(r.chat_id for r in rows)
    expected[users[world.member_a.id].id] += 1  # the /help before the outage
    expected[users[world.member_b.id].id] += 1  # the reply on the wire when it began
    expected[users[world.member_c.id].id] += 1  # the /help sent while it was down
    got = received()
    got.subtract(before)
    assert +got == +expected
