"""From /notify to the recipients' chats through the real delivery worker: one copy each with
the 已阅 button, the blocked one counted, the sender's status message edited to the final counts;
and a review outcome reaching the member the same way."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from sqlalchemy import select

from bot.delivery import DeliveryWorker
from content.i18n import texts
from content.pack import get_pack
from storage import notices, service_log
from storage.models import Delivery, DeliveryStatus, Notice, NoticeStatus, Person

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK


async def drain(bot_app) -> None:
    worker = DeliveryWorker(
        bot_app.bot, bot_app.sessionmaker, bot_app.clock, "e2e-worker", status_interval=0.05
    )
    await asyncio.wait_for(worker.drain(), timeout=30)


async def test_a_notice_reaches_each_member_once_and_the_status_shows_the_counts(
    chat, db, world, emulator, bot_app, bots
) -> None:
    bots.expect_error("sendMessage", 403, "blocked by the user")
    reader = chat.user_for(world.member_a)
    blocker = chat.user_for(world.member_a2)
    emulator.block(blocker, notify=False)

    await chat.send(world.secretary_a, "/notify")
    confirm = (await chat.send(world.secretary_a, "周五下午3点开展主题党日活动")).sent[-1]
    await chat.press(world.secretary_a, confirm, "📤 立即发送")
    await drain(bot_app)

    got = [m for m in chat.messages(reader) if "主题党日" in (m.text or "")]
    assert len(got) == 1
    delivery = await db.one(select(Delivery).where(Delivery.person_id == world.member_a.id))
    assert got[0].buttons == [{"text": "✅ 已阅", "callback_data": f"ack:{delivery.id}"}]
    assert delivery.status is DeliveryStatus.SENT and delivery.telegram_message_id == got[0].message_id
    assert not [m for m in chat.messages(blocker) if "主题党日" in (m.text or "")]
    blocked = await db.one(select(Delivery).where(Delivery.person_id == world.member_a2.id))
    assert blocked.status is DeliveryStatus.BLOCKED
    assert (await db.one(select(Person).where(Person.id == world.member_a2.id))).blocked_at is not None

    notice = await db.one(select(Notice))
    assert notice.status is NoticeStatus.DONE
    status = next(m for m in chat.messages(world.secretary_a) if m.message_id == confirm.message_id)
    assert status.text == texts("zh")("notices.status.done", total=2, sent=1, failed=0, blocked=1)

    # The member acknowledges (the member side's button); the sender sees it in /notices.
    await chat.press(reader, got[0], "✅ 已阅")
    listing = (await chat.send(world.secretary_a, "/notices")).sent[0]
    assert "已阅 1/2（50%）" in listing.text
    nobody = await chat.press(world.secretary_a, listing, "🔔 提醒第 1 条未阅的 1 人")
    assert nobody.alert and "没有需要提醒的人" in nobody.alert  # the other one blocked the bot


async def test_a_review_outcome_reaches_the_member(chat, db, world, session, bot_app) -> None:
    member = chat.user_for(world.member_a)
    actor = await world.actor(session, world.member_a)
    day = date(2026, 11, 26)
    entry = service_log.new_entry(day=day, minutes=90, action="volunteer", description="社区义诊")
    await service_log.log_service(
        session, actor, entry, source=None, today=day + timedelta(days=2), window_days=90, pack=PACK
    )
    await session.commit()

    listing = (await chat.send(world.secretary_a, "/pending")).sent[0]
    await chat.press(world.secretary_a, listing, "✅ 通过 #")
    await drain(bot_app)
    told = [m for m in chat.messages(member) if "已通过审核" in (m.text or "")]
    assert len(told) == 1 and "1.5 小时" in told[0].text and "2026-11-26" in told[0].text
    assert (await db.one(select(Delivery))).status is DeliveryStatus.SENT


async def test_a_scheduled_notice_goes_out_when_released_and_its_message_shows_the_counts(
    chat, db, world, session, clock, bot_app
) -> None:
    for person in (world.secretary_a, world.secretary_b):
        chat.user_for(person)
    asked = await chat.send(world.staff, "/notify")
    await chat.press(world.staff, asked, "所辖各支部书记")
    confirm = (await chat.send(world.staff, "请于12月5日前报送年度总结")).sent[-1]
    await chat.press(world.staff, confirm, "🌅 明早 9:00 发送")
    await drain(bot_app)
    assert not [m for m in chat.messages(world.secretary_a) if "年度总结" in (m.text or "")]

    clock.advance(timedelta(hours=23))  # 9:00 the next morning
    notice = await db.one(select(Notice))
    assert await notices.release_scheduled(session, clock.now()) == [notice.id]
    await session.commit()
    await drain(bot_app)
    for person in (world.secretary_a, world.secretary_b):
        assert len([m for m in chat.messages(person) if "年度总结" in (m.text or "")]) == 1
    status = next(m for m in chat.messages(world.staff) if m.message_id == confirm.message_id)
    assert status.text == texts("zh")("notices.status.done", total=2, sent=2, failed=0, blocked=0)
    assert not status.buttons
