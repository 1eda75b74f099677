"""/log: the one-line quick form and the step-by-step wizard, their bad input and stale buttons."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from sqlalchemy import select

from content.pack import get_pack
from storage import service_log
from storage.models import ConversationState, EntryStatus, ServiceEntry
from tests.e2e.forge import forged_button
from tests.e2e.harness import Chat, plain
from tests.factories import add_entry

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

# Enough of a PNG for the emulator to take it as a photo.
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    + (2).to_bytes(4, "big") * 2
    + b"\x08\x02\x00\x00\x00"
    + b"\x00" * 32
)
TODAY = date(2026, 11, 28)


async def entries(db) -> list[ServiceEntry]:
    return list(await db.all(select(ServiceEntry).order_by(ServiceEntry.id)))


# --- quick form -------------------------------------------------------------------------------


async def test_quick_form_records_one_pending_entry(chat, db, world) -> None:
    reply = await chat.send(world.member_a, "/log 2.5 2026-11-20 社区义诊")
    assert "2.5 小时" in reply.text and "2026-11-20" in reply.text and "社区义诊" in reply.text
    assert reply.buttons[0] == "党员志愿服务行动" and len(reply.buttons) == 6
    assert reply.buttons[-1] == "✖ 取消"
    assert await db.count(ServiceEntry) == 0  # nothing before the action is picked

    done = await chat.press(world.member_a, reply, "党员志愿服务行动")
    assert done.alert == "已登记"
    text = plain(done.text)
    assert "待书记审核" in text and "党员志愿服务行动" in text and "2.5 小时" in text and "社区义诊" in text
    assert done.buttons == []
    [row] = await entries(db)
    assert (row.day, row.minutes, row.action, row.status) == (
        date(2026, 11, 20),
        150,
        "volunteer",
        EntryStatus.PENDING,
    )
    assert row.person_id == world.member_a.id and row.org_id == world.branch_a.id
    assert row.place == "" and row.description == "社区义诊"
    assert row.source == f"{world.member_a.telegram_id}:{reply.message.message_id - 1}"
    assert await db.count(ConversationState) == 0


async def test_quick_form_can_be_cancelled_at_the_action_pick(chat, db, world) -> None:
    reply = await chat.send(world.member_a, "/log 2 今天 清扫楼道")
    done = await chat.press(world.member_a, reply, "✖ 取消")
    assert "已取消" in done.text and done.buttons == []
    assert await db.count(ServiceEntry) == 0
    assert await db.count(ConversationState) == 0


@pytest.mark.parametrize(
    ("line", "day", "minutes"),
    [
        ("/log 90m 昨天 入户走访", date(2026, 11, 27), 90),
        ("/log 1h30m 清扫楼道", TODAY, 90),
        ("/log 2h today clean-up", TODAY, 120),
    ],
)
async def test_quick_form_reads_durations_and_days(chat, db, world, line, day, minutes) -> None:
    reply = await chat.send(world.member_a, line)
    await chat.press(world.member_a, reply, "诚信服务计划")
    [row] = await entries(db)
    assert (row.day, row.minutes, row.action) == (day, minutes, "integrity")


@pytest.mark.parametrize(
    ("line", "says", "format_hint"),
    [
        ("/log 0 今天 清扫", "大于 0", True),
        ("/log -1 今天 清扫", "看不懂时长", True),
        ("/log 25 今天 清扫", "不超过 24 小时", True),
        ("/log 2 2026-12-01 清扫", "不能晚于今天", False),  # read right: the day is the problem
        ("/log 2 2026-08-01 清扫", "最近 90 天", False),
        ("/log 2 2026-13-45 清扫", "看不懂日期", True),
        ("/log abc 今天 清扫", "看不懂时长", True),
        ("/log 2", "用法", False),  # the usage text is the example already
        ("/log 2 今天 " + "长" * 501, "最多 500 个字", True),
    ],
)
async def test_bad_line_is_explained_and_stores_nothing(chat, db, world, line, says, format_hint) -> None:
    reply = await chat.send(world.member_a, line)
    assert says in reply.text
    assert ("正确写法" in reply.text) is format_hint  # how to write it, only when it was misread
    assert reply.buttons == []
    assert await db.count(ServiceEntry) == 0
    assert await db.count(ConversationState) == 0


async def test_more_than_24_hours_in_a_day_is_refused_at_once_in_hours(chat, db, world) -> None:
    """The reported case: 4 hours logged, then `/log 23 今天 …`. The day's room is checked as soon
    as the line is read (before any action is picked), said in hours, with no format hint."""
    reply = await chat.send(world.member_a, "/log 4 今天 值守")
    await chat.press(world.member_a, reply, "党员公益日")
    reply = await chat.send(world.member_a, "/log 23 今天 夜间值守")
    assert "24 小时" in reply.text and "最多还能登记 20 小时" in reply.text
    assert "分钟" not in reply.text and "正确写法" not in reply.text
    assert reply.buttons == []  # no action to pick: nothing would fit
    assert [r.minutes for r in await entries(db)] == [240]
    assert await db.count(ConversationState) == 0


async def test_a_full_day_is_said_so(chat, db, world) -> None:
    reply = await chat.send(world.member_a, "/log 24 今天 值守")
    await chat.press(world.member_a, reply, "党员公益日")
    reply = await chat.send(world.member_a, "/log 1 今天 值守")
    assert "2026-11-28 这一天已经登记满 24 小时" in reply.text and reply.buttons == []


@pytest.mark.parametrize(
    ("named", "day"),
    [("今天", TODAY), ("昨天", date(2026, 11, 27)), ("2026-11-20", date(2026, 11, 20))],
    ids=["today", "yesterday", "a week before"],
)
async def test_the_quick_form_counts_what_the_named_day_holds(chat, db, world, session, named, day) -> None:
    """Whichever day the line names (on PostgreSQL today and yesterday are read along with the
    update's claim, an older day with a query of its own): the person's pending and approved
    entries of that day count, a rejected one, another day's and another person's do not."""
    for person, org, on, minutes, status in [
        (world.member_a, world.branch_a, day, 20 * 60, EntryStatus.PENDING),
        (world.member_a, world.branch_a, day, 3 * 60, EntryStatus.APPROVED),
        (world.member_a, world.branch_a, day, 10 * 60, EntryStatus.REJECTED),
        (world.member_a, world.branch_a, date(2026, 11, 26), 10 * 60, EntryStatus.PENDING),
        (world.member_b, world.branch_b, day, 10 * 60, EntryStatus.PENDING),
    ]:
        add_entry(session, person, org, day=on, minutes=minutes, status=status)
    await session.commit()
    reply = await chat.send(world.member_a, f"/log 2 {named} 值守")
    assert "最多还能登记 1 小时" in reply.text and reply.buttons == []
    reply = await chat.send(world.member_a, f"/log 1 {named} 值守")
    assert day.isoformat() in reply.text and len(reply.buttons) == 6  # it fits: pick an action


async def test_wizard_checks_the_day_as_soon_as_the_duration_is_given(chat, db, world) -> None:
    m = world.member_a
    reply = await chat.send(m, "/log 22 今天 值守")
    await chat.press(m, reply, "党员公益日")
    reply = await chat.send(m, "/log")
    reply = await chat.press(m, reply, "党员志愿服务行动")
    reply = await chat.press(m, reply, "今天")
    reply = await chat.press(m, reply, "3 小时")  # a button
    assert "最多还能登记 2 小时" in reply.text and "第 3/6 步" in reply.text
    reply = await chat.send(m, "2.5")  # typed
    assert "最多还能登记 2 小时" in reply.text and "第 3/6 步" in reply.text
    reply = await chat.send(m, "2")
    assert "第 4/6 步" in reply.text


async def test_a_possible_duplicate_is_asked_about_and_logged_only_if_confirmed(chat, db, world) -> None:
    m = world.member_a
    reply = await chat.send(m, "/log 2 今天 社区义诊")
    await chat.press(m, reply, "党员志愿服务行动")
    # The same line again: the bot says so and asks.
    reply = await chat.send(m, "/log 2 今天 社区义诊。")
    asked = await chat.press(m, reply, "党员志愿服务行动")
    [first] = await entries(db)
    assert f"#{first.id}" in asked.text and "可能是重复的" in asked.text and "社区义诊" in asked.text
    assert asked.buttons == ["仍然登记", "不登记"]
    dropped = await chat.press(m, asked, "不登记")
    assert "没有登记" in dropped.text and dropped.buttons == []
    assert len(await entries(db)) == 1
    # Once more, and this time it really was a second time.
    reply = await chat.send(m, "/log 2 今天 社区 义诊")
    asked = await chat.press(m, reply, "党员志愿服务行动")
    yes = asked.message.buttons[0]["callback_data"]
    done = await chat.press(m, asked, "仍然登记")
    assert done.alert == "已登记" and "待书记审核" in done.text
    old_copy = await forged_button(chat, m, yes)  # the same button pressed again later
    again = await chat.press(m, old_copy, "forged")
    assert again.alert and "失效" in again.alert
    assert [(r.minutes, r.description) for r in await entries(db)] == [(120, "社区义诊"), (120, "社区 义诊")]
    assert await db.count(ConversationState) == 0


async def test_the_wizard_asks_about_a_possible_duplicate_too(chat, db, world) -> None:
    m = world.member_a
    reply = await chat.send(m, "/log 1 昨天 看望老人")
    await chat.press(m, reply, "党员与您同行")
    reply = await chat.send(m, "/log")
    reply = await chat.press(m, reply, "党员与您同行")
    reply = await chat.press(m, reply, "昨天")
    reply = await chat.press(m, reply, "1 小时")
    reply = await chat.press(m, reply, "跳过")
    reply = await chat.send(m, "入户走访")
    reply = await chat.press(m, reply, "跳过")
    asked = await chat.press(m, reply, "✅ 提交")
    assert "可能是重复的" in asked.text and asked.buttons == ["仍然登记", "不登记"]
    assert len(await entries(db)) == 1
    done = await chat.press(m, asked, "仍然登记")
    assert "待书记审核" in done.text
    assert [r.description for r in await entries(db)] == ["看望老人", "入户走访"]


async def test_button_of_an_earlier_quick_form_is_stale(chat, db, world) -> None:
    first = await chat.send(world.member_a, "/log 1 今天 第一次")
    second = await chat.send(world.member_a, "/log 2 今天 第二次")
    stale = await chat.press(world.member_a, first, "党员志愿服务行动")
    assert stale.alert and "失效" in stale.alert
    assert await db.count(ServiceEntry) == 0
    await chat.press(world.member_a, second, "党员志愿服务行动")
    assert [r.description for r in await entries(db)] == ["第二次"]


async def test_double_tap_records_once(chat, db, world, emulator) -> None:
    reply = await chat.send(world.member_a, "/log 2 今天 义务植树")
    data = reply.message.buttons[0]["callback_data"]
    user = chat.user_for(world.member_a)
    first = await emulator.press(user, reply.message, data=data)
    second = await emulator.press(user, reply.message, data=data)  # before the first is handled
    await asyncio.gather(chat.deliver(first), chat.deliver(second))
    answers = {a.query_id: a.text for a in emulator.callback_answers}
    assert answers[first["callback_query"]["id"]] == "已登记"
    assert "失效" in (answers[second["callback_query"]["id"]] or "")
    assert len(await entries(db)) == 1


async def test_text_while_the_action_is_awaited_points_to_the_buttons(chat, db, world) -> None:
    await chat.send(world.member_a, "/log 2 今天 义诊")
    reply = await chat.send(world.member_a, "志愿服务")
    assert "按钮" in reply.text and "/cancel" in reply.text
    assert await db.count(ServiceEntry) == 0


# --- wizard -----------------------------------------------------------------------------------


async def test_wizard_with_buttons_and_a_photo(chat, db, world, emulator) -> None:
    m = world.member_a
    reply = await chat.send(m, "/log")
    assert "第 1/6 步" in reply.text and "党员与您同行" in reply.buttons
    reply = await chat.press(m, reply, "党员与您同行")
    assert "第 2/6 步" in reply.text and reply.buttons[:3] == ["今天", "昨天", "其他日期"]
    reply = await chat.press(m, reply, "昨天")
    assert "第 3/6 步" in reply.text and "2 小时" in reply.buttons
    reply = await chat.press(m, reply, "2 小时")
    assert "第 4/6 步" in reply.text
    reply = await chat.send(m, "城东社区服务站")
    assert "第 5/6 步" in reply.text
    reply = await chat.send(m, "陪同独居老人就医")
    assert "第 6/6 步" in reply.text and "跳过" in reply.buttons
    reply = await chat.send_photo(m, PNG)
    text = plain(reply.text)
    assert "请核对" in text and "党员与您同行" in text and "2026-11-27" in text and "2 小时" in text
    assert "城东社区服务站" in text and "陪同独居老人就医" in text and "已附 1 张" in text
    assert await db.count(ServiceEntry) == 0

    done = await chat.press(m, reply, "✅ 提交")
    assert "待书记审核" in done.text and done.buttons == []
    [row] = await entries(db)
    assert (row.action, row.day, row.minutes, row.place, row.description) == (
        "walk_with_you",
        date(2026, 11, 27),
        120,
        "城东社区服务站",
        "陪同独居老人就医",
    )
    assert emulator.files.get(row.evidence_file_id).data == PNG
    assert await db.count(ConversationState) == 0


async def test_wizard_typed_answers_and_skips(chat, db, world) -> None:
    m = world.member_a
    reply = await chat.send(m, "/log")
    reply = await chat.press(m, reply, "党员公益日")
    reply = await chat.press(m, reply, "其他日期")
    assert "请输入服务日期" in reply.text
    reply = await chat.send(m, "11-20")
    assert "第 3/6 步" in reply.text
    reply = await chat.send(m, "1h20m")
    reply = await chat.press(m, reply, "跳过")
    assert "第 5/6 步" in reply.text
    reply = await chat.send(m, "公益日集中清扫")
    reply = await chat.press(m, reply, "跳过")
    assert "1 小时 20 分钟" in reply.text and "未填写" in reply.text and "照片：无" in plain(reply.text)
    await chat.press(m, reply, "✅ 提交")
    [row] = await entries(db)
    assert (row.day, row.minutes, row.place, row.evidence_file_id) == (date(2026, 11, 20), 80, "", None)


async def test_wizard_bad_answers_are_asked_again_and_earlier_answers_kept(chat, db, world) -> None:
    m = world.member_a
    reply = await chat.send(m, "/log")
    reply = await chat.press(m, reply, "诚信服务计划")
    # A typed day straight at the day step: in the future, then unreadable, then right.
    reply = await chat.send(m, "2026-12-25")
    assert "不能晚于今天" in reply.text and "请输入服务日期" in reply.text
    reply = await chat.send(m, "前年某天")
    assert "看不懂日期" in reply.text
    reply = await chat.send(m, "2026-11-01")
    assert "第 3/6 步" in reply.text
    for bad, says in [("0", "大于 0"), ("30h", "不超过 24 小时"), ("很久", "看不懂时长")]:
        reply = await chat.send(m, bad)
        assert says in reply.text and "第 3/6 步" in reply.text, bad
    reply = await chat.send(m, "3")
    reply = await chat.send(m, "地" * 101)
    assert "最多 100 个字" in reply.text and "第 4/6 步" in reply.text
    reply = await chat.send_photo(m, PNG)  # a photo where text is expected
    assert "需要输入文字" in reply.text and "第 4/6 步" in reply.text
    reply = await chat.send(m, "会员单位")
    reply = await chat.send(m, "   ")
    assert "服务内容" in reply.text and "第 5/6 步" in reply.text
    reply = await chat.send(m, "内" * 501)
    assert "500" in reply.text and "第 5/6 步" in reply.text
    reply = await chat.send(m, "诚信经营宣传")
    reply = await chat.send(m, "这是文字不是照片")
    assert "照片" in reply.text and "第 6/6 步" in reply.text
    reply = await chat.press(m, reply, "跳过")
    text = plain(reply.text)
    assert "诚信服务计划" in text and "2026-11-01" in text and "3 小时" in text and "会员单位" in text
    await chat.press(m, reply, "✅ 提交")
    [row] = await entries(db)
    assert (row.action, row.day, row.minutes, row.place, row.description) == (
        "integrity",
        date(2026, 11, 1),
        180,
        "会员单位",
        "诚信经营宣传",
    )


async def test_wizard_text_where_a_button_is_expected(chat, db, world) -> None:
    reply = await chat.send(world.member_a, "/log")
    reply = await chat.send(world.member_a, "志愿服务")
    assert "按钮" in reply.text and "第 1/6 步" in reply.text and "党员志愿服务行动" in reply.buttons
    assert await db.count(ServiceEntry) == 0


async def test_wizard_cancel_button_stores_nothing(chat, db, world) -> None:
    reply = await chat.send(world.member_a, "/log")
    reply = await chat.press(world.member_a, reply, "党员志愿服务行动")
    reply = await chat.press(world.member_a, reply, "✖ 取消")
    assert "已取消" in reply.text and reply.buttons == []
    assert await db.count(ServiceEntry) == 0
    assert await db.count(ConversationState) == 0


async def test_wizard_start_over_keeps_nothing_of_the_first_try(chat, db, world) -> None:
    m = world.member_a
    reply = await chat.send(m, "/log")
    reply = await chat.press(m, reply, "党员志愿服务行动")
    reply = await chat.press(m, reply, "今天")
    reply = await chat.press(m, reply, "1 小时")
    reply = await chat.press(m, reply, "跳过")
    reply = await chat.send(m, "第一次填写")
    reply = await chat.press(m, reply, "跳过")
    reply = await chat.press(m, reply, "✏️ 重填")
    assert "第 1/6 步" in reply.text
    reply = await chat.press(m, reply, "本支部服务项目")
    reply = await chat.press(m, reply, "昨天")
    reply = await chat.press(m, reply, "4 小时")
    reply = await chat.press(m, reply, "跳过")
    reply = await chat.send(m, "第二次填写")
    reply = await chat.press(m, reply, "跳过")
    await chat.press(m, reply, "✅ 提交")
    [row] = await entries(db)
    assert (row.action, row.minutes, row.description) == ("branch_project", 240, "第二次填写")


async def test_command_in_the_middle_leaves_the_wizard(chat, db, world) -> None:
    m = world.member_a
    reply = await chat.send(m, "/log")
    day_step = await chat.press(m, reply, "党员志愿服务行动")
    my = await chat.send(m, "/my")
    assert "我的志愿服务" in my.texts[0]
    stale = await chat.press(m, day_step, "今天")
    assert stale.alert and "失效" in stale.alert
    reply = await chat.send(m, "随便写点什么")
    assert "没有理解" in reply.text  # no wizard is waiting any more
    assert await db.count(ConversationState) == 0


async def test_store_refusal_at_submit_goes_back_to_that_step(chat, db, world, session) -> None:
    m = world.member_a
    reply = await chat.send(m, "/log")
    reply = await chat.press(m, reply, "党员志愿服务行动")
    reply = await chat.press(m, reply, "今天")
    reply = await chat.press(m, reply, "3 小时")
    reply = await chat.press(m, reply, "跳过")
    reply = await chat.send(m, "加班服务")
    reply = await chat.press(m, reply, "跳过")
    # Meanwhile 22 hours of that day were logged another way: the store refuses at submit.
    actor = await world.actor(session, m)
    entry = service_log.new_entry(day=TODAY, minutes=22 * 60, action="welfare_day", description="值守")
    await service_log.log_service(session, actor, entry, source=None, today=TODAY, window_days=90, pack=PACK)
    await session.commit()
    reply = await chat.press(m, reply, "✅ 提交")
    assert "最多还能登记 2 小时" in reply.text and "第 3/6 步" in reply.text
    assert len(await entries(db)) == 1
    reply = await chat.press(m, reply, "2 小时")
    text = plain(reply.text)
    assert "请核对" in text and "加班服务" in text  # the other answers were kept
    await chat.press(m, reply, "✅ 提交")
    assert [r.minutes for r in await entries(db)] == [1320, 120]


async def test_old_wizard_button_after_submit_is_stale(chat, db, world) -> None:
    m = world.member_a
    reply = await chat.send(m, "/log")
    reply = await chat.press(m, reply, "党员志愿服务行动")
    reply = await chat.press(m, reply, "今天")
    reply = await chat.press(m, reply, "1 小时")
    place_prompt = reply
    reply = await chat.send(m, "社区")  # typed, so the prompt above keeps its "skip" button
    reply = await chat.send(m, "服务")
    reply = await chat.press(m, reply, "跳过")
    await chat.press(m, reply, "✅ 提交")
    stale = await chat.press(m, place_prompt, "跳过")
    assert stale.alert and "失效" in stale.alert
    assert len(await entries(db)) == 1


# --- who may log ------------------------------------------------------------------------------


async def test_someone_who_has_not_joined_is_told_how_to_join(chat, db, world) -> None:
    reply = await chat.send(chat.user("路人"), "/log 2 今天 清扫")
    assert "邀请链接" in reply.text and reply.buttons == []
    assert await db.count(ServiceEntry) == 0


async def test_staff_without_a_branch_cannot_log(chat, db, world) -> None:
    reply = await chat.send(world.staff, "/log")
    assert "党支部的党员或书记" in reply.text
    assert await db.count(ConversationState) == 0


async def test_english_member_gets_english(chat, db, world, session) -> None:
    world.member_b.locale = "en"
    session.add(world.member_b)
    await session.commit()
    reply = await chat.send(world.member_b, "/log 1.5 yesterday tutoring")
    assert "1.5 h" in reply.text and "Which service action" in reply.text
    done = await chat.press(world.member_b, reply, "Members' volunteer action")
    assert "awaiting the secretary" in done.text
    [row] = await entries(db)
    assert row.org_id == world.branch_b.id and row.minutes == 90


async def test_a_secretary_is_told_the_committee_reviews_their_entry(chat, db, world) -> None:
    reply = await chat.send(world.secretary_a, "/log 2 今天 支部共建活动")
    done = await chat.press(world.secretary_a, reply, "本支部服务项目")
    assert "待上级党工委审核" in done.text
    [row] = await entries(db)
    assert row.person_id == world.secretary_a.id and row.org_id == world.branch_a.id


async def test_the_log_window_is_the_setting(bots, emulator, db, world) -> None:
    # The store takes the window as a parameter; the chat passes LOG_WINDOW_DAYS down.
    chat = Chat(emulator, await bots.start(log_window_days=5))
    reply = await chat.send(world.member_a, "/log 2 2026-11-22 清扫")
    assert "最近 5 天" in reply.text
    reply = await chat.send(world.member_a, "/log 2 2026-11-23 清扫")
    await chat.press(world.member_a, reply, "诚信服务计划")
    [row] = await entries(db)
    assert row.day == date(2026, 11, 23)
