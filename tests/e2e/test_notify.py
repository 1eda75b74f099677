"""/notify (compose, audience, preview, send now or later) and the sender's /notices."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from handlers.notify import WhenError, next_morning, parse_when
from storage import notices, outbox
from storage.models import Audience, Delivery, Membership, Notice, NoticeStatus, Person, Role
from tests.e2e.forge import forged_button
from tests.e2e.harness import NOW
from tests.factories import make_person

TZ = ZoneInfo("Asia/Shanghai")
PNG = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + (20).to_bytes(4, "big") + (10).to_bytes(4, "big") + b"\0" * 8


# ---- reading a send time (pure) ----


@pytest.mark.parametrize(
    ("text", "local"),
    [
        ("2026-12-01 09:00", datetime(2026, 12, 1, 9, 0)),
        ("12-01 9:00", datetime(2026, 12, 1, 9, 0)),
        ("明天 18:30", datetime(2026, 11, 29, 18, 30)),
        ("tomorrow 7:05", datetime(2026, 11, 29, 7, 5)),
        ("18:30", datetime(2026, 11, 28, 18, 30)),
        ("9:00", datetime(2026, 11, 29, 9, 0)),  # 9:00 today has passed: tomorrow
        ("01-05 08:00", datetime(2027, 1, 5, 8, 0)),  # 5 January: next year's
    ],
)
def test_parse_when_reads_the_branchs_local_time(text: str, local: datetime) -> None:
    assert parse_when(text, TZ, NOW) == local.replace(tzinfo=TZ).astimezone(UTC)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("soon", "notify_chat.bad_when"),
        ("2026-13-01 09:00", "notify_chat.bad_when"),
        ("明天 25:00", "notify_chat.bad_when"),
        ("2026-11-27 09:00", "notify_chat.when_past"),
        ("2027-06-01 09:00", "notify_chat.when_too_far"),
    ],
)
def test_parse_when_explains_what_is_wrong(text: str, key: str) -> None:
    with pytest.raises(WhenError) as e:
        parse_when(text, TZ, NOW)
    assert e.value.key == key


def test_next_morning_is_nine_tomorrow_local() -> None:
    assert next_morning(TZ, NOW) == datetime(2026, 11, 29, 1, 0, tzinfo=UTC)


def test_after_midnight_the_morning_is_this_mornings_nine() -> None:
    # 00:30 on 29 November in Shanghai is 16:30 UTC on the 28th: the coming 9:00 is 01:00 UTC.
    assert next_morning(TZ, datetime(2026, 11, 28, 16, 30, tzinfo=UTC)) == datetime(
        2026, 11, 29, 1, 0, tzinfo=UTC
    )
    # At 9:00 sharp that morning has begun: the next is tomorrow's.
    assert next_morning(TZ, datetime(2026, 11, 29, 1, 0, tzinfo=UTC)) == datetime(
        2026, 11, 30, 1, 0, tzinfo=UTC
    )


# ---- the wizard ----


async def test_secretary_sends_a_text_notice_to_the_branch_now(chat, db, world) -> None:
    asked = await chat.send(world.secretary_a, "/notify")
    assert "本支部全体党员" in asked.text
    preview = await chat.send(world.secretary_a, "本周五下午3点在协会会议室开展主题党日活动,请准时参加。")
    assert world.branch_a.name in preview.sent[0].text and "主题党日" in preview.sent[0].text
    confirm = preview.sent[-1]
    assert "共 2 人" in confirm.text
    assert [b["text"] for b in confirm.buttons] == [
        "📤 立即发送",
        "🌅 明早 9:00 发送",
        "🕘 指定时间…",
        "✖️ 取消",
    ]
    assert await db.count(Notice) == 0  # nothing stored before the sender confirms

    sent = await chat.press(world.secretary_a, confirm, "📤 立即发送")
    notice = await db.one(select(Notice))
    assert (notice.org_id, notice.audience, notice.sender_id) == (
        world.branch_a.id,
        Audience.BRANCH_MEMBERS,
        world.secretary_a.id,
    )
    assert notice.status is NoticeStatus.SENDING and notice.scheduled_at is None
    assert (notice.status_chat_id, notice.status_message_id) == (
        world.secretary_a.telegram_id,
        confirm.message_id,
    )
    rows = await db.all(select(Delivery).order_by(Delivery.person_id))
    assert [r.person_id for r in rows] == sorted([world.member_a.id, world.member_a2.id])
    assert all(
        r.payload["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == f"ack:{r.id}" for r in rows
    )
    status = sent.edited[-1]
    assert status.message_id == confirm.message_id and "共 2 人" in status.text and not status.buttons


async def test_the_preview_says_who_will_not_get_the_notice(chat, db, world, session) -> None:
    # The count left the sender and members who had not joined out without saying so: a
    # secretary saw 共 2 人 against 4 on the roster.
    blocked = await session.get(Person, world.member_a2.id)
    blocked.blocked_at = NOW - timedelta(days=3)
    waiting = Person(name="王六", telegram_id=None)
    session.add(waiting)
    await session.flush()
    session.add(Membership(person_id=waiting.id, org_id=world.branch_a.id, role=Role.MEMBER))
    await session.commit()

    await chat.send(world.secretary_a, "/notify")
    confirm = (await chat.send(world.secretary_a, "周五下午开会。")).sent[-1]
    assert "共 1 人（不含您自己）" in confirm.text
    assert "另有 2 人收不到" in confirm.text and "/members" in confirm.text


async def test_pressing_send_on_an_old_preview_sends_nothing_more(chat, db, world) -> None:
    await chat.send(world.secretary_a, "/notify")
    first = (await chat.send(world.secretary_a, "第一稿")).sent[-1]
    second = (await chat.send(world.secretary_a, "第二稿")).sent[-1]
    old = await chat.press(world.secretary_a, first, "📤 立即发送")
    assert old.alert and "过期" in old.alert
    await chat.press(world.secretary_a, second, "📤 立即发送")
    assert [n.text for n in await db.all(select(Notice))] == ["第二稿"]
    assert await db.count(Delivery) == 2


async def test_after_midnight_the_button_says_this_morning_and_means_it(chat, db, world, clock) -> None:
    clock.set(datetime(2026, 11, 28, 16, 30, tzinfo=UTC))  # 00:30 on the 29th in Shanghai
    await chat.send(world.secretary_a, "/notify")
    confirm = (await chat.send(world.secretary_a, "今天上午十点开会。")).sent[-1]
    labels = [b["text"] for b in confirm.buttons]
    assert "🌅 今早 9:00 发送" in labels and "🌅 明早 9:00 发送" not in labels
    done = await chat.press(world.secretary_a, confirm, "🌅 今早 9:00 发送")
    assert "2026-11-29 09:00" in done.edited[-1].text
    notice = await db.one(select(Notice))
    assert notice.scheduled_at == datetime(2026, 11, 29, 1, 0, tzinfo=UTC)


async def test_staff_choose_an_audience_and_schedule_for_tomorrow_morning(
    chat, db, world, session, clock
) -> None:
    asked = await chat.send(world.staff, "/notify")
    assert asked.buttons == ["所辖各支部书记", "所辖各支部全体党员"]
    await chat.press(world.staff, asked, "所辖各支部书记")
    confirm = (await chat.send(world.staff, "请各支部书记于12月5日前报送年度总结。")).sent[-1]
    assert "共 2 人" in confirm.text  # the secretaries of branches A and B, not C
    done = await chat.press(world.staff, confirm, "🌅 明早 9:00 发送")
    assert "2026-11-29 09:00" in done.edited[-1].text
    assert done.edited[-1].buttons[0]["text"] == "撤销这条定时通知"
    notice = await db.one(select(Notice))
    assert notice.audience is Audience.SUBTREE_SECRETARIES and notice.org_id == world.committee.id
    assert notice.status is NoticeStatus.SCHEDULED
    assert notice.scheduled_at == datetime(2026, 11, 29, 1, 0, tzinfo=UTC)
    assert await db.count(Delivery) == 0

    # The scheduler releases it at its time.
    assert await notices.release_scheduled(session, NOW + timedelta(hours=23)) == [notice.id]
    await session.commit()
    recipients = await db.all(select(Delivery.person_id).order_by(Delivery.person_id))
    assert recipients == sorted([world.secretary_a.id, world.secretary_b.id])


async def test_a_typed_time_is_checked_and_confirmed(chat, db, world) -> None:
    await chat.send(world.secretary_a, "/notify")
    confirm = (await chat.send(world.secretary_a, "12月1日上午9点开会")).sent[-1]
    asked = await chat.press(world.secretary_a, confirm, "🕘 指定时间…")
    assert "2026-12-05 09:00" in asked.text  # a week from today: always ahead
    assert "发送发送" not in asked.text and "按本支部所在时区" in asked.text
    bad = await chat.send(world.secretary_a, "下周吧")
    assert "没看懂" in bad.text and "2026-12-05 09:00" in bad.text
    past = await chat.send(world.secretary_a, "2026-11-01 09:00")
    assert "已经过去" in past.text
    ok = await chat.send(world.secretary_a, "2026-12-01 08:30")
    assert "2026-12-01 08:30" in ok.text
    await chat.press(world.secretary_a, ok, "✅ 确认定时发送")
    notice = await db.one(select(Notice))
    assert notice.scheduled_at == datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    assert notice.status is NoticeStatus.SCHEDULED


async def test_a_photo_with_a_caption_is_a_notice_and_without_one_is_explained(chat, db, world) -> None:
    await chat.send(world.secretary_a, "/notify")
    bare = await chat.send_photo(world.secretary_a, PNG)
    assert "说明" in bare.text
    preview = await chat.send_photo(world.secretary_a, PNG, caption="活动海报,欢迎参加")
    assert preview.sent[0].photo is not None and "活动海报" in (preview.sent[0].caption or "")
    await chat.press(world.secretary_a, preview.sent[-1], "📤 立即发送")
    notice = await db.one(select(Notice))
    assert notice.file_kind == "photo" and notice.file_id and notice.text == "活动海报,欢迎参加"
    payloads = [d.payload for d in await db.all(select(Delivery))]
    assert {p["method"] for p in payloads} == {"sendPhoto"} and len(payloads) == 2


async def test_too_long_a_notice_is_explained_and_nothing_is_stored(chat, db, world) -> None:
    await chat.send(world.secretary_a, "/notify")
    reply = await chat.send(world.secretary_a, "长" * 4001)
    assert "4000" in reply.text and not reply.buttons
    assert await db.count(Notice) == 0


async def test_cancel_button_and_a_command_both_leave_the_wizard(chat, db, world) -> None:
    await chat.send(world.secretary_a, "/notify")
    confirm = (await chat.send(world.secretary_a, "草稿")).sent[-1]
    cancelled = await chat.press(world.secretary_a, confirm, "✖️ 取消")
    assert "不会发出" in cancelled.edited[-1].text
    await chat.send(world.secretary_a, "/notify")
    pending = await chat.send(world.secretary_a, "/pending")
    assert "审核" in pending.all_text
    after = await chat.send(world.secretary_a, "这句话不是通知")
    assert "预览" not in after.all_text
    assert await db.count(Notice) == 0


async def test_outside_scope_audiences_are_refused(chat, db, world) -> None:
    for person, data in (
        (world.other_staff, f"sna:subtree_all:{world.committee.id}"),
        (world.secretary_a, f"sna:branch_members:{world.branch_b.id}"),
        (world.secretary_a, f"sna:subtree_all:{world.committee.id}"),
    ):
        await chat.send(person, "/notices")
        pressed = await chat.press(person, await forged_button(chat, person, data), "forged")
        assert pressed.alert and "没有权限" in pressed.alert
    assert await db.count(Notice) == 0


@pytest.mark.parametrize("days_later", [0, 40, 400])
async def test_the_time_example_is_always_in_the_future_and_accepted(
    chat, db, world, clock, days_later
) -> None:
    clock.advance(timedelta(days=days_later))
    now = NOW + timedelta(days=days_later)
    await chat.send(world.secretary_a, "/notify")
    confirm = (await chat.send(world.secretary_a, "开会通知")).sent[-1]
    asked = await chat.press(world.secretary_a, confirm, "🕘 指定时间…")
    example = re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", asked.text)
    assert example is not None
    assert datetime.strptime(example[0], "%Y-%m-%d %H:%M").replace(tzinfo=TZ) > now
    ok = await chat.send(world.secretary_a, example[0])  # the example, typed back, is accepted
    assert "将在" in ok.text and example[0] in ok.text


async def test_a_committees_time_prompt_speaks_of_the_committee(chat, world) -> None:
    asked = await chat.send(world.staff, "/notify")
    await chat.press(world.staff, asked, "所辖各支部书记")
    confirm = (await chat.send(world.staff, "请报送年度总结。")).sent[-1]
    prompt = await chat.press(world.staff, confirm, "🕘 指定时间…")
    assert "本支部" not in prompt.text and "党工委" in prompt.text and "发送发送" not in prompt.text
    empty = await chat.send(world.other_staff, "/notices")
    assert "本支部" not in empty.text and "所辖支部" in empty.text


# ---- /notices for senders ----


async def sent_notice(
    session, world, sender, text="请于周五前提交材料", audience=Audience.BRANCH_MEMBERS, org=None
):
    actor = await world.actor(session, sender)
    n = await notices.create_notice(session, actor, (org or world.branch_a).id, audience, text, now=NOW)
    await notices.send_notice(session, actor, n.id, now=NOW)
    rows = await session.scalars(
        select(Delivery).where(Delivery.notice_id == n.id).order_by(Delivery.person_id)
    )
    ids = []
    for d in rows:
        await outbox.mark_sent(session, d.id, 1000 + d.id, NOW)
        ids.append(d.id)
    await session.commit()
    return n, ids


async def test_sender_sees_the_acknowledged_ratio_and_nudges_only_the_others(
    chat, db, world, session
) -> None:
    _notice, deliveries = await sent_notice(session, world, world.secretary_a)
    await notices.acknowledge(session, world.member_a.telegram_id, deliveries[0], NOW)
    await session.commit()

    reply = await chat.send(world.secretary_a, "/notices")
    listing = reply.sent[0]
    assert "请于周五前提交材料" in listing.text and "已阅 1/2（50%）" in listing.text
    assert listing.buttons[0]["text"] == "🔔 提醒第 1 条未阅的 1 人"
    nudged = await chat.press(world.secretary_a, listing, "🔔 提醒第 1 条未阅的 1 人")
    assert "已私信提醒 1 人：李四" in nudged.text
    rows = await db.all(select(Delivery).where(Delivery.kind == "nudge"))
    assert [
        (r.person_id, r.payload["reply_markup"]["inline_keyboard"][0][0]["callback_data"]) for r in rows
    ] == [(world.member_a2.id, f"ack:{deliveries[1]}")]
    again = await chat.press(world.secretary_a, listing, "🔔 提醒第 1 条未阅的 1 人")
    assert again.alert and "今天已经提醒过" in again.alert
    assert await db.count(Delivery, Delivery.kind == "nudge") == 1


async def test_sender_sees_who_has_not_read_the_first_few_then_how_many_more(
    chat, db, world, session
) -> None:
    for name in ("甲一", "乙二", "丙三", "丁四", "戊五"):
        await make_person(session, name, world.branch_a)
    await session.commit()
    _notice, deliveries = await sent_notice(session, world, world.secretary_a)
    assert len(deliveries) == 7
    first = await db.one(select(Delivery).where(Delivery.person_id == world.member_a.id))
    await notices.acknowledge(session, world.member_a.telegram_id, first.id, NOW)
    await session.commit()
    waiting = sorted(
        await db.all(
            select(Person.name)
            .join(Delivery, Delivery.person_id == Person.id)
            .where(Delivery.acknowledged_at.is_(None))
        )
    )
    listing = (await chat.send(world.secretary_a, "/notices")).sent[0]
    assert "已阅 1/7（14%）" in listing.text
    assert f"未阅：{'、'.join(waiting[:5])}，另有 1 人" in listing.text
    assert "张三" not in listing.text.split("未阅：")[1]


async def test_sender_with_few_unread_sees_all_their_names(chat, world, session) -> None:
    await sent_notice(session, world, world.secretary_a)
    listing = (await chat.send(world.secretary_a, "/notices")).sent[0]
    assert "未阅：张三、李四" in listing.text and "另有" not in listing.text


async def test_committee_sees_a_branch_notice_labelled_by_branch_and_sender(chat, world, session) -> None:
    await sent_notice(session, world, world.secretary_a, "支部的通知：周五学习")
    await sent_notice(
        session, world, world.staff, "党工委的通知：报送总结", Audience.SUBTREE_SECRETARIES, world.committee
    )
    listing = (await chat.send(world.staff, "/notices")).sent[0]
    assert "所辖范围内最近的通知" in listing.text and "最近发出的通知" not in listing.text
    branch_item = next(p for p in listing.text.split("\n\n") if "支部的通知" in p)
    assert f"{world.branch_a.name}（李书记）发给该支部全体党员" in branch_item
    assert "本支部全体党员" not in listing.text
    own_item = next(p for p in listing.text.split("\n\n") if "党工委的通知" in p)
    assert "所辖各支部书记" in own_item and "（李书记）" not in own_item


async def test_notices_shows_a_secretarys_own_received_notices_with_ack_buttons(chat, world, session) -> None:
    _n, deliveries = await sent_notice(
        session, world, world.staff, "请报送年度总结", Audience.SUBTREE_SECRETARIES, world.committee
    )
    reply = await chat.send(world.secretary_a, "/notices")
    received = reply.sent[-1]
    assert "我收到的通知" in received.text and "请报送年度总结" in received.text and "未阅" in received.text
    mine = [d for d in await notices.recipient_notices(session, world.secretary_a)]
    assert received.buttons[0]["callback_data"] == f"ack:{mine[0].delivery_id}"
    assert mine[0].delivery_id in deliveries


async def test_scheduled_notice_can_be_cancelled_from_notices(chat, db, world, session) -> None:
    actor = await world.actor(session, world.secretary_a)
    n = await notices.create_notice(
        session,
        actor,
        world.branch_a.id,
        Audience.BRANCH_MEMBERS,
        "明天的通知",
        scheduled_at=NOW + timedelta(days=1),
        now=NOW,
    )
    await notices.send_notice(session, actor, n.id, now=NOW)
    await session.commit()
    listing = (await chat.send(world.secretary_a, "/notices")).sent[0]
    assert "定时发送" in listing.text
    pressed = await chat.press(world.secretary_a, listing, "撤销第 1 条定时通知")
    assert pressed.alert and "不会发出" in pressed.alert
    assert (await db.one(select(Notice))).status is NoticeStatus.CANCELLED


async def test_notices_for_someone_with_none(chat, world) -> None:
    reply = await chat.send(world.secretary_b, "/notices")
    assert "还没有通知" in reply.text
