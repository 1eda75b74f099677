"""Commitments, the member's side: /commit from a template or in one's own words, /commitments,
reporting fulfilment with text and an optional photo, withdrawing."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import delete, select

from storage.models import Commitment, CommitmentStatus, ConversationState, Membership
from tests.e2e.harness import NOW

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    + (2).to_bytes(4, "big") * 2
    + b"\x08\x02\x00\x00\x00"
    + b"\x00" * 32
)
MONTHLY = "本人承诺每月至少参加一次党员志愿服务活动，并如实记录服务内容和时长。"


async def all_commitments(db) -> list[Commitment]:
    return list(await db.all(select(Commitment).order_by(Commitment.id)))


def commitment(person, org, text: str, deadline: date, status=CommitmentStatus.MADE, **kw) -> Commitment:
    return Commitment(person_id=person.id, org_id=org.id, text=text, deadline=deadline, status=status, **kw)


# --- /commit ----------------------------------------------------------------------------------


async def test_commit_from_a_template_with_its_suggested_deadline(chat, db, world) -> None:
    m = world.member_a
    reply = await chat.send(m, "/commit")
    assert "亮诺" in reply.text
    assert "每月参加志愿服务" in reply.buttons and "✍️ 自己写" in reply.buttons
    assert not any("支部名义" in b for b in reply.buttons)  # the branch's templates are the secretary's
    reply = await chat.press(m, reply, "每月参加志愿服务")
    assert MONTHLY in reply.text
    assert reply.buttons[0] == "建议期限：90 天（2027-02-26）"
    assert await db.count(Commitment) == 0
    done = await chat.press(m, reply, "建议期限")
    assert "已亮诺" in done.text and "2027-02-26" in done.text and "/commitments" in done.text
    [c] = await all_commitments(db)
    assert (c.person_id, c.org_id, c.template_id, c.text, c.deadline, c.status, c.is_branch) == (
        m.id,
        world.branch_a.id,
        "volunteer_monthly",
        MONTHLY,
        date(2027, 2, 26),
        CommitmentStatus.MADE,
        False,
    )
    assert await db.count(ConversationState) == 0


async def test_commit_in_my_own_words_with_a_typed_deadline(chat, db, world) -> None:
    m = world.member_a
    reply = await chat.send(m, "/commit")
    reply = await chat.press(m, reply, "✍️ 自己写")
    assert "500" in reply.text
    reply = await chat.send(m, "本人承诺今年为社区老人义诊不少于 4 次。")
    assert "本人承诺今年为社区老人义诊不少于 4 次。" in reply.text and "2027-03-31" in reply.text
    assert reply.buttons[0].startswith("1 个月")
    done = await chat.send(m, "2027年3月31日")
    assert "已亮诺" in done.text
    [c] = await all_commitments(db)
    assert (c.template_id, c.text, c.deadline) == (
        None,
        "本人承诺今年为社区老人义诊不少于 4 次。",
        date(2027, 3, 31),
    )


async def test_bad_text_and_deadlines_are_asked_again(chat, db, world) -> None:
    m = world.member_a
    reply = await chat.send(m, "/commit")
    reply = await chat.press(m, reply, "✍️ 自己写")
    reply = await chat.send_photo(m, PNG)
    assert "需要输入文字" in reply.text
    reply = await chat.send(m, "诺" * 501)
    assert "最多 500 个字" in reply.text
    reply = await chat.send(m, "本人承诺带头学习。")
    for typed, says in [
        ("2026-01-01", "不能早于今天"),
        ("2030-01-01", "2028-11-28"),
        ("明年", "看不懂日期"),
    ]:
        reply = await chat.send(m, typed)
        assert says in reply.text and "请选择完成期限" in reply.text, typed
        assert await db.count(Commitment) == 0
    await chat.press(m, reply, "年底前")
    [c] = await all_commitments(db)
    assert (c.text, c.deadline) == ("本人承诺带头学习。", date(2026, 12, 31))


async def test_text_where_a_template_is_expected_and_cancel(chat, db, world) -> None:
    reply = await chat.send(world.member_a, "/commit")
    hint = await chat.send(world.member_a, "我要承诺")
    assert "模板" in hint.text and "/cancel" in hint.text
    done = await chat.press(world.member_a, reply, "✖ 取消")
    assert "已取消" in done.text and done.buttons == []
    assert await db.count(Commitment) == 0
    assert await db.count(ConversationState) == 0


async def test_buttons_of_an_earlier_commit_are_stale(chat, db, world) -> None:
    first = await chat.send(world.member_a, "/commit")
    await chat.send(world.member_a, "/commit")
    stale = await chat.press(world.member_a, first, "每月参加志愿服务")
    assert "失效" in (stale.alert or "")
    assert await db.count(Commitment) == 0


async def test_secretary_can_commit_for_the_branch(chat, db, world) -> None:
    s = world.secretary_a
    reply = await chat.send(s, "/commit")
    assert "🏛 公布支部服务清单（以支部名义）" in reply.buttons
    reply = await chat.press(s, reply, "🏛 公布支部服务清单")
    done = await chat.press(s, reply, "建议期限")
    assert "以支部名义" in done.text
    [c] = await all_commitments(db)
    assert c.is_branch and c.org_id == world.branch_a.id and c.template_id == "branch_service_list"


async def test_staff_without_a_branch_is_told_why(chat, world) -> None:
    reply = await chat.send(world.staff, "/commit")
    assert "党支部的党员或书记" in reply.text


async def test_someone_who_has_not_joined_is_told_how_to_join(chat, world) -> None:
    for command in ("/commit", "/commitments"):
        reply = await chat.send(chat.user("路人"), command)
        assert "邀请链接" in reply.text


# --- /commitments -----------------------------------------------------------------------------


async def test_list_shows_status_evaluation_and_returns(chat, session, world) -> None:
    a, org = world.member_a, world.branch_a
    session.add_all(
        [
            commitment(a, org, "逾期的承诺", date(2026, 11, 1)),
            commitment(
                a,
                org,
                "已评诺的承诺",
                date(2026, 10, 1),
                CommitmentStatus.EVALUATED,
                rating="excellent",
                evaluation="带头作用明显",
            ),
            commitment(a, org, "被退回的承诺", date(2026, 12, 20), evaluation="请补充照片"),
            commitment(a, org, "已撤回的承诺", date(2026, 12, 1), CommitmentStatus.WITHDRAWN),
            commitment(world.member_a2, org, "别人的承诺", date(2026, 12, 1)),
        ]
    )
    await session.commit()
    reply = await chat.send(a, "/commitments")
    text = reply.text
    assert "我的承诺" in text and "共 3 项" in text
    assert "逾期的承诺" in text and "已逾期" in text
    assert "已评诺的承诺" in text and "优秀" in text and "带头作用明显" in text
    assert "被退回的承诺" in text and "请补充照片" in text
    assert "已撤回的承诺" not in text and "别人的承诺" not in text
    # Only the open ones (made: overdue or returned) can be reported or withdrawn.
    assert reply.buttons == ["📣 第 2 项报告践诺", "撤回第 2 项", "📣 第 3 项报告践诺", "撤回第 3 项"]


async def test_nothing_yet(chat, world) -> None:
    reply = await chat.send(world.member_a, "/commitments")
    assert "/commit" in reply.text


async def test_report_fulfilment_with_text_then_a_photo(chat, db, session, world, emulator) -> None:
    session.add(commitment(world.member_a, world.branch_a, "每月参加志愿服务", date(2027, 1, 31)))
    await session.commit()
    m = world.member_a
    listing = await chat.send(m, "/commitments")
    reply = await chat.press(m, listing, "📣 第 1 项报告践诺")
    assert "报告践诺" in reply.text and "每月参加志愿服务" in reply.text
    reply = await chat.send(m, "11 月参加了两次社区服务。")
    assert "照片" in reply.text and "📨 不附照片，提交" in reply.buttons
    reply = await chat.send(m, "还有一段文字")  # text where a photo is expected
    assert "照片" in reply.text
    done = await chat.send_photo(m, PNG)
    assert "已报告践诺" in done.text
    [c] = await all_commitments(db)
    assert c.status is CommitmentStatus.REPORTED and c.fulfilment_text == "11 月参加了两次社区服务。"
    assert emulator.files.get(c.fulfilment_file_id).data == PNG and c.reported_at == NOW
    assert await db.count(ConversationState) == 0

    stale = await chat.press(m, listing, "📣 第 1 项报告践诺")  # the list is older than the report
    assert "不能再这样操作" in (stale.alert or "")


async def test_report_with_a_captioned_photo_or_without_a_photo(chat, db, session, world) -> None:
    a, org = world.member_a, world.branch_a
    session.add_all(
        [commitment(a, org, "第一项", date(2027, 1, 1)), commitment(a, org, "第二项", date(2027, 2, 1))]
    )
    await session.commit()
    listing = await chat.send(a, "/commitments")
    await chat.press(a, listing, "📣 第 1 项报告践诺")
    done = await chat.send_photo(a, PNG, caption="照片为证：已完成。")
    assert "已报告践诺" in done.text
    listing = await chat.send(a, "/commitments")
    await chat.press(a, listing, "📣 第 2 项报告践诺")
    reply = await chat.send(a, "已完成，无照片。")
    done = await chat.press(a, reply, "📨 不附照片，提交")
    assert "已报告践诺" in done.text and done.buttons == []
    rows = await all_commitments(db)
    assert [(c.fulfilment_text, c.fulfilment_file_id is not None) for c in rows] == [
        ("照片为证：已完成。", True),
        ("已完成，无照片。", False),
    ]


async def test_report_with_too_long_text_is_asked_again(chat, db, session, world) -> None:
    session.add(commitment(world.member_a, world.branch_a, "一项承诺", date(2027, 1, 1)))
    await session.commit()
    listing = await chat.send(world.member_a, "/commitments")
    await chat.press(world.member_a, listing, "📣 第 1 项报告践诺")
    reply = await chat.send(world.member_a, "长" * 1001)
    assert "1000" in reply.text
    assert (await all_commitments(db))[0].status is CommitmentStatus.MADE


async def test_withdraw_after_confirmation(chat, db, session, world) -> None:
    session.add(commitment(world.member_a, world.branch_a, "想撤回的承诺", date(2027, 1, 1)))
    await session.commit()
    listing = await chat.send(world.member_a, "/commitments")
    confirm = await chat.press(world.member_a, listing, "撤回第 1 项")
    assert "确定撤回" in confirm.text
    kept = await chat.press(world.member_a, confirm, "不撤回")
    assert "保留" in kept.text
    assert (await all_commitments(db))[0].status is CommitmentStatus.MADE

    confirm = await chat.press(world.member_a, listing, "撤回第 1 项")
    done = await chat.press(world.member_a, confirm, "确定撤回")
    assert "已撤回" in done.text
    [c] = await all_commitments(db)
    assert c.status is CommitmentStatus.WITHDRAWN and c.withdrawn_at == NOW
    reply = await chat.send(world.member_a, "/commitments")
    assert "想撤回的承诺" not in reply.text


async def test_reported_meanwhile_makes_the_report_button_stale(chat, db, session, world) -> None:
    c = commitment(world.member_a, world.branch_a, "一项承诺", date(2027, 1, 1))
    session.add(c)
    await session.commit()
    listing = await chat.send(world.member_a, "/commitments")
    c.status = CommitmentStatus.REPORTED
    c.reported_at = datetime(2026, 11, 27, tzinfo=UTC)
    await session.commit()
    stale = await chat.press(world.member_a, listing, "撤回第 1 项")
    assert "不能再这样操作" in (stale.alert or "")
    assert (await all_commitments(db))[0].status is CommitmentStatus.REPORTED


async def test_a_refusal_on_the_deadline_button_reaches_the_member(chat, db, session, world) -> None:
    # Regression: the button was answered before the commitment was made, so a refusal found an
    # answered query, its alert was dropped as too old, and the member was not told why.
    m = world.member_a
    reply = await chat.send(m, "/commit")
    reply = await chat.press(m, reply, "每月参加志愿服务")
    await session.execute(delete(Membership).where(Membership.person_id == m.id))  # left meanwhile
    await session.commit()
    done = await chat.press(m, reply, "建议期限")
    assert done.alert == "只有党支部的党员或书记才能作出承诺。"
    assert await db.count(Commitment) == 0
