"""The member's side of notices: the acknowledge button, /notices, and pausing the monthly nudge."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from sqlalchemy import select

from bot.delivery import build_method
from storage import notices, outbox
from storage.models import Audience, Delivery, DeliveryStatus, Person
from storage.reminders import PAUSE_CALLBACK
from tests.e2e.harness import NOW


async def send_notice(session, world, text: str) -> None:
    actor = await world.actor(session, world.secretary_a)
    notice = await notices.create_notice(
        session, actor, world.branch_a.id, Audience.BRANCH_MEMBERS, text, now=NOW
    )
    await notices.send_notice(session, actor, notice.id, now=NOW)
    await session.commit()


async def deliver_outbox(app, sessionmaker, emulator) -> None:
    """What the delivery worker does, by hand: send every pending row and mark it sent."""
    async with sessionmaker() as s:
        rows = list(await s.scalars(select(Delivery).where(Delivery.status == DeliveryStatus.PENDING)))
        for d in rows:
            if d.chat_id not in emulator.users:
                emulator.add_user("党员", id=d.chat_id)
            sent = await app.bot(build_method(d.chat_id, d.payload))
            await outbox.mark_sent(s, d.id, sent.message_id, NOW)
        await s.commit()


async def delivery_of(db, person: Person) -> Delivery:
    return await db.one(
        select(Delivery).where(Delivery.person_id == person.id).order_by(Delivery.id.desc()).limit(1)
    )


async def test_acknowledge_button_on_the_notice(
    chat, db, world, session, sessionmaker, bot_app, emulator
) -> None:
    await send_notice(session, world, "周六上午九点在会议室过组织生活。")
    await deliver_outbox(bot_app, sessionmaker, emulator)
    notice_msg = await chat.wait_message(world.member_a, "过组织生活")
    assert [b["text"] for b in notice_msg.buttons] == ["✅ 已阅"]

    reply = await chat.press(world.member_a, notice_msg, "✅ 已阅")
    assert reply.answer is not None and "已确认收到" in (reply.answer.text or "")
    assert notice_msg.buttons == []  # the button is gone from the notice
    assert (await delivery_of(db, world.member_a)).acknowledged_at == NOW
    # Other recipients are untouched.
    assert (await delivery_of(db, world.member_a2)).acknowledged_at is None


async def test_notices_lists_mine_and_acknowledges_from_the_list(
    chat, db, world, session, sessionmaker, bot_app, emulator
) -> None:
    await send_notice(session, world, "第一条通知：请按时交纳党费。")
    await send_notice(session, world, "第二条通知：下周开展党员公益日活动。")
    await deliver_outbox(bot_app, sessionmaker, emulator)
    first = await chat.wait_message(world.member_a, "第一条通知")
    await chat.press(world.member_a, first, "✅ 已阅")

    reply = await chat.send(world.member_a, "/notices")
    text = reply.text
    assert "我收到的通知" in text and "第一条通知" in text and "第二条通知" in text
    assert world.branch_a.name in text
    assert text.index("第二条通知") < text.index("第一条通知")  # newest first
    assert "未确认" in text and "已阅" in text
    assert reply.buttons == ["✅ 第 1 条已阅"]  # only the unacknowledged one

    done = await chat.press(world.member_a, reply, "✅ 第 1 条已阅")
    assert "已确认收到" in (done.alert or "")
    assert reply.message.buttons == []
    rows = await db.all(select(Delivery).where(Delivery.person_id == world.member_a.id))
    assert all(r.acknowledged_at == NOW for r in rows) and len(rows) == 2


async def test_a_second_press_is_told_it_was_already_acknowledged(
    chat, db, world, session, sessionmaker, bot_app, emulator
) -> None:
    await send_notice(session, world, "请确认。")
    await deliver_outbox(bot_app, sessionmaker, emulator)
    msg = await chat.wait_message(world.member_a, "请确认")
    user = chat.user_for(world.member_a)
    data = msg.buttons[0]["callback_data"]
    one = await emulator.press(user, msg, data=data)
    two = await emulator.press(user, msg, data=data)  # a double tap
    await chat.deliver(one)
    await chat.deliver(two)
    answers = {a.query_id: a.text for a in emulator.callback_answers}
    assert "已确认收到" in answers[one["callback_query"]["id"]]
    assert "已确认过" in answers[two["callback_query"]["id"]]


async def test_no_notices_yet(chat, world) -> None:
    reply = await chat.send(world.member_a, "/notices")
    assert "还没有收到过通知" in reply.text


async def test_a_button_for_a_notice_that_is_not_mine_is_refused(
    chat, db, world, session, sessionmaker, bot_app, emulator
) -> None:
    await send_notice(session, world, "只发给本支部。")
    await deliver_outbox(bot_app, sessionmaker, emulator)
    others = await delivery_of(db, world.member_a2)
    # A forged or mistaken button on member_a's side pointing at member_a2's delivery.
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="✅ 已阅", callback_data=f"ack:{others.id}")]]
    )
    msg = await bot_app.bot.send_message(world.member_a.telegram_id, "测试", reply_markup=markup)
    stale = await chat.press(world.member_a, await chat.wait_message(world.member_a, "测试"), "✅ 已阅")
    assert "找不到这条通知" in (stale.alert or "")
    assert (await delivery_of(db, world.member_a2)).acknowledged_at is None
    assert msg.message_id


async def test_pausing_and_resuming_the_monthly_nudge(chat, db, world, bot_app, emulator) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="暂停每月提醒", callback_data=PAUSE_CALLBACK)]]
    )
    chat.user_for(world.member_a)
    await bot_app.bot.send_message(
        world.member_a.telegram_id, "本月还没有登记志愿服务。", reply_markup=markup
    )
    nudge = await chat.wait_message(world.member_a, "本月还没有登记")

    reply = await chat.press(world.member_a, nudge, "暂停每月提醒")
    assert "已暂停" in (reply.alert or "")
    assert [b["text"] for b in nudge.buttons] == ["恢复每月提醒"]
    assert (await db.one(select(Person).where(Person.id == world.member_a.id))).nudges_paused is True

    reply = await chat.press(world.member_a, nudge, "恢复每月提醒")
    assert "已恢复" in (reply.alert or "")
    assert [b["text"] for b in nudge.buttons] == ["暂停每月提醒"]
    assert (await db.one(select(Person).where(Person.id == world.member_a.id))).nudges_paused is False


async def test_someone_who_has_not_joined_is_told_how_to_join(chat, world) -> None:
    reply = await chat.send(chat.user("路人"), "/notices")
    assert "邀请链接" in reply.text


# ---- receipts people can see ----

READ_MARK = "✅ 已阅（2026-11-28 10:00）"  # NOW in the branch's time zone (Shanghai)


async def test_acknowledging_marks_the_notice_read_and_when(
    chat, db, world, session, sessionmaker, bot_app, emulator
) -> None:
    await send_notice(session, world, "周三下午学习党章。")
    await deliver_outbox(bot_app, sessionmaker, emulator)
    notice_msg = await chat.wait_message(world.member_a, "学习党章")
    assert READ_MARK not in notice_msg.text

    reply = await chat.press(world.member_a, notice_msg, "✅ 已阅")
    assert [m.message_id for m in reply.edited] == [notice_msg.message_id]
    assert "学习党章" in notice_msg.text and notice_msg.text.endswith(READ_MARK)
    assert notice_msg.buttons == []
    assert (await delivery_of(db, world.member_a)).acknowledged_at == NOW


async def test_acknowledging_from_the_nudge_marks_the_nudge_and_the_notice(
    chat, db, world, session, sessionmaker, bot_app, emulator
) -> None:
    await send_notice(session, world, "请于月底前交纳党费。")
    await deliver_outbox(bot_app, sessionmaker, emulator)
    notice_msg = await chat.wait_message(world.member_a, "交纳党费")
    notice_id = (await delivery_of(db, world.member_a)).notice_id
    actor = await world.actor(session, world.secretary_a)
    assert await notices.nudge(session, actor, notice_id, now=NOW) == 2
    await session.commit()
    await deliver_outbox(bot_app, sessionmaker, emulator)
    nudge_msg = await chat.wait_message(world.member_a, "还没有确认收到")

    reply = await chat.press(world.member_a, nudge_msg, "✅ 已阅")
    assert "已确认收到" in (reply.alert or "")
    # The nudge no longer asks; it says when it was read.
    assert "还没有确认" not in nudge_msg.text
    assert "您已于 2026-11-28 10:00 确认收到" in nudge_msg.text and "交纳党费" in nudge_msg.text
    assert nudge_msg.buttons == []
    # The original notice carries the same mark and loses its button too.
    assert notice_msg.text.endswith(READ_MARK) and notice_msg.buttons == []
    assert {m.message_id for m in reply.edited} == {nudge_msg.message_id, notice_msg.message_id}
    assert (await delivery_of_kind(db, world.member_a, "notice")).acknowledged_at == NOW
    # The other member's copies are untouched.
    other = await chat.wait_message(world.member_a2, "还没有确认收到")
    assert other.buttons


async def test_acknowledging_from_the_list_marks_the_notice_too(
    chat, db, world, session, sessionmaker, bot_app, emulator
) -> None:
    await send_notice(session, world, "第一条：请按时参加组织生活。")
    await send_notice(session, world, "第二条：本周六党员公益日。")
    await deliver_outbox(bot_app, sessionmaker, emulator)
    first = await chat.wait_message(world.member_a, "第一条")
    listing = await chat.send(world.member_a, "/notices")
    assert listing.buttons == ["✅ 第 1 条已阅", "✅ 第 2 条已阅"]

    await chat.press(world.member_a, listing, "✅ 第 2 条已阅")  # the older one: "第一条"
    assert listing.message.buttons and [b["text"] for b in listing.message.buttons] == ["✅ 第 1 条已阅"]
    assert READ_MARK not in listing.message.text  # a list only loses the pressed item's button
    assert first.text.endswith(READ_MARK) and first.buttons == []


async def delivery_of_kind(db, person: Person, kind: str) -> Delivery:
    return await db.one(
        select(Delivery)
        .where(Delivery.person_id == person.id, Delivery.kind == kind)
        .order_by(Delivery.id.desc())
        .limit(1)
    )
