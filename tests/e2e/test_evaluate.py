"""评诺 and 公示 from /pending: rate with or without a comment, send back, publish as a notice."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from content.pack import get_pack
from storage import commitments
from storage.models import Audience, Commitment, CommitmentStatus, Delivery, Notice, NoticeStatus
from tests.e2e.forge import forged_button
from tests.e2e.harness import NOW

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

TODAY = date(2026, 11, 28)


async def make(
    session, world, person, text="每月参加一次社区志愿服务", *, report=True, for_branch=False, **kw
) -> int:
    actor = await world.actor(session, person)
    data = commitments.new_commitment(
        text=text, deadline=TODAY + timedelta(days=kw.pop("days", 20)), for_branch=for_branch, **kw
    )
    row = await commitments.make_commitment(session, actor, data, today=TODAY, pack=PACK)
    if report:
        await commitments.report_fulfilment(session, actor, row.id, "11月参加了3次义诊", None, NOW)
    await session.commit()
    return row.id


async def commitment(db, cid: int) -> Commitment:
    return await db.one(select(Commitment).where(Commitment.id == cid))


async def open_first(chat, who):
    reply = await chat.send(who, "/pending")
    inbox = reply.sent[-1]
    assert "待评诺的践诺报告" in inbox.text
    return inbox, await chat.press(who, inbox, "评诺 1")


async def test_rating_with_a_comment_evaluates_and_tells_the_owner(chat, db, world, session) -> None:
    cid = await make(session, world, world.member_a)
    inbox, detail = await open_first(chat, world.secretary_a)
    assert "张三" in inbox.text and "每月参加一次社区志愿服务" in inbox.text
    assert "11月参加了3次义诊" in detail.text
    assert detail.buttons == ["优秀", "良好", "一般", "较差", "↩️ 退回补充"]

    asked = await chat.press(world.secretary_a, detail, "优秀")
    assert "评语" in asked.text
    done = await chat.send(world.secretary_a, "坚持得很好,值得大家学习")
    assert "已评诺" in done.text and "优秀" in done.text
    row = await commitment(db, cid)
    assert (row.status, row.rating, row.evaluation) == (
        CommitmentStatus.EVALUATED,
        "excellent",
        "坚持得很好,值得大家学习",
    )
    assert row.evaluated_by_id == world.secretary_a.id and row.evaluated_at == NOW
    told = await db.one(select(Delivery).where(Delivery.dedupe_key == f"commitment:{cid}:evaluated"))
    assert told.chat_id == world.member_a.telegram_id
    assert "优秀" in told.payload["text"] and "值得大家学习" in told.payload["text"]


async def test_rating_without_a_comment(chat, db, world, session) -> None:
    cid = await make(session, world, world.member_a)
    _inbox, detail = await open_first(chat, world.secretary_a)
    asked = await chat.press(world.secretary_a, detail, "良好")
    done = await chat.press(world.secretary_a, asked, "不写评语，直接提交")
    assert "已评诺" in done.text
    row = await commitment(db, cid)
    assert (row.status, row.rating, row.evaluation) == (CommitmentStatus.EVALUATED, "good", None)
    assert await db.count(Delivery, Delivery.dedupe_key == f"commitment:{cid}:evaluated") == 1


async def test_sending_back_needs_a_comment_and_makes_it_open_again(chat, db, world, session) -> None:
    cid = await make(session, world, world.member_a)
    _inbox, detail = await open_first(chat, world.secretary_a)
    asked = await chat.press(world.secretary_a, detail, "↩️ 退回补充")
    assert "补充" in asked.text
    too_long = await chat.send(world.secretary_a, "补" * 501)
    assert "重新" in too_long.text
    assert (await commitment(db, cid)).status is CommitmentStatus.REPORTED
    done = await chat.send(world.secretary_a, "请补充活动照片")
    assert "已退回" in done.text
    row = await commitment(db, cid)
    assert (row.status, row.evaluation) == (CommitmentStatus.MADE, "请补充活动照片")
    told = await db.one(select(Delivery).where(Delivery.dedupe_key.like(f"commitment:{cid}:returned:%")))
    assert "请补充活动照片" in told.payload["text"]


async def test_an_old_evaluate_button_is_refused(chat, db, world, session) -> None:
    cid = await make(session, world, world.member_a)
    inbox, detail = await open_first(chat, world.secretary_a)
    await chat.press(world.secretary_a, await chat.press(world.secretary_a, detail, "一般"), "不写评语")
    again = await chat.press(world.secretary_a, inbox, "评诺 1")
    assert again.alert and "已经评诺过" in again.alert
    late = await chat.press(world.secretary_a, detail, "优秀")
    assert late.alert and "已经评诺过" in late.alert
    assert (await commitment(db, cid)).rating == "fair"


async def test_a_secretarys_own_commitment_is_for_staff_to_evaluate(chat, db, world, session) -> None:
    own = await make(session, world, world.secretary_a, "带头开展结对帮扶")
    branch = await make(session, world, world.secretary_a, "公布支部服务清单", for_branch=True)
    reply = await chat.send(world.secretary_a, "/pending")
    assert "没有待评诺" in reply.text
    inbox, detail = await open_first(chat, world.staff)
    assert "带头开展结对帮扶" in inbox.text and "公布支部服务清单" in inbox.text
    await chat.press(world.staff, await chat.press(world.staff, detail, "优秀"), "不写评语")
    done = [await commitment(db, i) for i in (own, branch)]
    assert [c.status for c in done].count(CommitmentStatus.EVALUATED) == 1
    assert {c.evaluated_by_id for c in done} == {world.staff.id, None}


async def test_outside_the_subtree_evaluation_is_refused(chat, db, world, session) -> None:
    cid = await make(session, world, world.member_a)
    reply = await chat.send(world.other_staff, "/pending")
    assert "待评诺" not in reply.all_text
    for data in (
        f"sev:{world.branch_a.id}:{cid}",
        f"ser:{world.branch_a.id}:{cid}:excellent:1",
        f"spb:{world.branch_a.id}:0",
    ):
        pressed = await chat.press(
            world.other_staff, await forged_button(chat, world.other_staff, data), "forged"
        )
        assert pressed.alert and "没有权限" in pressed.alert, data
    assert (await commitment(db, cid)).status is CommitmentStatus.REPORTED
    assert await db.count(Delivery) == 0 and await db.count(Notice) == 0


async def test_publication_goes_to_the_branch_as_one_notice(chat, db, world, session) -> None:
    await make(session, world, world.secretary_a, "公布支部服务清单", for_branch=True, report=False)
    await make(session, world, world.member_a, "每月参加一次社区志愿服务", report=False, days=40)
    await make(session, world, world.member_a2, "私下的承诺", report=False, is_public=False)
    await make(session, world, world.member_b, "别的支部的承诺", report=False)

    reply = await chat.send(world.secretary_a, "/pending")
    preview = await chat.press(world.secretary_a, reply.sent[-1], "📢 公示本支部的承诺")
    shown = preview.sent[0].text
    assert "【支部承诺】" in shown and "公布支部服务清单" in shown
    assert "张三：每月参加一次社区志愿服务" in shown and "期限 2027-01-07" in shown
    assert "私下的承诺" not in shown and "别的支部的承诺" not in shown
    assert preview.buttons == ["📢 发给本支部 2 人"]

    sent = await chat.press(world.secretary_a, preview, "📢 发给本支部 2 人")
    notice = await db.one(select(Notice))
    assert notice.audience is Audience.BRANCH_MEMBERS and notice.org_id == world.branch_a.id
    assert notice.status is NoticeStatus.SENDING and "公布支部服务清单" in notice.text
    assert notice.status_message_id == preview.message.message_id
    recipients = await db.all(select(Delivery.person_id).order_by(Delivery.person_id))
    assert recipients == sorted([world.member_a.id, world.member_a2.id])
    assert "共 2 人" in sent.edited[-1].text and not sent.edited[-1].buttons
    assert await db.count(Notice) == 1


async def test_nothing_to_publish_is_said(chat, db, world) -> None:
    reply = await chat.send(world.secretary_a, "/pending")
    pressed = await chat.press(world.secretary_a, reply, "📢 公示本支部的承诺")
    assert pressed.alert and "没有公开的承诺" in pressed.alert
    assert await db.count(Notice) == 0
