"""/packet: the secretary's draft and annex in chat; the staff's 评议 sheet, a rating with its
comment, the release, and the secretary then seeing the rating."""

from __future__ import annotations

from datetime import date
from io import BytesIO

from docx import Document
from openpyxl import load_workbook
from sqlalchemy import select

from content.pack import get_pack
from handlers.packet import parse_year
from storage import reports
from storage.access import load_actor
from storage.models import AuditEntry, EntryStatus, LeaderReview, ServiceEntry, Submission
from storage.packet import fmt_hours
from tests.e2e.forge import forged_button
from tests.storage.packet_scene import YEAR, make_year

PACK = get_pack()


def test_parse_year() -> None:
    today = date(2026, 11, 28)
    assert parse_year(None, today) == 2026
    assert parse_year(" 2025年", today) == 2025
    assert parse_year("2027", today) is None  # not yet
    assert parse_year("26", today) is None
    assert parse_year("1999", today) is None


async def test_secretary_gets_the_draft_and_annex_with_the_reports_figures(chat, db, world, session) -> None:
    await make_year(session, world)
    reply = await chat.send(world.secretary_a, "/packet")
    assert "2026 年度述职材料" in reply.sent[0].text
    assert "党工委的述职评议结果尚未发布" in reply.sent[0].text
    draft, annex = reply.sent[1].document, reply.sent[2].document
    assert draft is not None and draft.file_name == "年检材料-2026-草稿.docx"
    assert annex is not None and annex.file_name == "年检材料-2026-附表.xlsx"

    async with db.sessionmaker() as s:
        actor = await load_actor(s, world.secretary_a.id)
        report = await reports.branch_report(
            s, actor, world.branch_a.id, date(YEAR, 1, 1), date(YEAR, 12, 31), date(2026, 11, 28), PACK
        )
    text = "\n".join(p.text for p in Document(BytesIO(draft.data)).paragraphs)
    assert f"支部党员参加志愿服务{fmt_hours(report.minutes)}小时，{report.participants}名党员参与" in text
    assert (
        f"服务时长 {fmt_hours(report.minutes)} 小时，{report.participants}/{report.members_total}"
        in reply.sent[0].text
    )
    ws = load_workbook(BytesIO(annex.data))["汇总"]
    values = {ws.cell(r, 1).value: ws.cell(r, 2).value for r in range(2, ws.max_row + 1)}
    assert values["服务时长合计（小时）"] == round(report.minutes / 60, 2)
    assert values["承诺（项）"] == report.commitments.made

    bad = await chat.send(world.secretary_a, "/packet 3000")
    assert "请写年份" in bad.text


async def test_staff_rate_comment_release_and_the_secretary_sees_it(chat, db, world, session) -> None:
    await make_year(session, world)
    sheet = await chat.send(world.staff, "/packet 2026")
    head = sheet.sent[0]
    assert "2026 年度述职评议" in head.text and "已完成述职评议 0/2 个支部" in head.text
    assert world.branch_a.name in head.text and world.branch_c.name not in head.text
    assert "“六有”目标 83.3 分" in head.text and "述职材料未报送" in head.text
    assert sheet.sent[-1].document.file_name == "述职评议表-2026.xlsx"
    assert [b["text"] for b in head.buttons][-1] == "📢 发布述职评议结果"

    pick = await chat.press(world.staff, head, f"述职评议：{world.branch_a.name}")
    assert pick.buttons == ["好", "较好", "一般", "差"]
    rated = await chat.press(world.staff, pick, "较好")
    assert "已记录：较好" in rated.text
    saved = await chat.send(world.staff, "服务记录完整，承诺践诺及时")
    assert "评语已保存（较好）" in saved.text
    rows = await db.all(select(LeaderReview))
    assert [(r.org_id, r.rating, r.comment) for r in rows] == [
        (world.branch_a.id, "fairly_good", "服务记录完整，承诺践诺及时")
    ]

    before = await chat.send(world.secretary_a, "/packet")
    assert "尚未发布" in before.sent[0].text
    released = await chat.press(world.staff, head, "📢 发布述职评议结果")
    assert "发布 2026 年度述职评议结果 1 条" in released.text
    after = await chat.send(world.secretary_a, "/packet")
    assert "党工委述职评议等次：较好" in after.sent[0].text
    assert "评语：服务记录完整，承诺践诺及时" in after.sent[0].text
    actions = list(await db.all(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions.count("leader_review.rate") == 2 and actions.count("leader_review.release") == 1


async def test_a_secretary_cannot_rate(chat, db, world, session) -> None:
    await make_year(session, world)
    sheet = await chat.send(world.staff, "/packet")
    pick = await chat.press(world.staff, sheet.sent[0], f"述职评议：{world.branch_a.name}")
    # The secretary of branch A presses a rating button made for staff (a forwarded keyboard).
    data = next(b["callback_data"] for b in pick.message.buttons if b["text"] == "好")
    await chat.send(world.secretary_a, "/packet")
    refused = await chat.press(
        world.secretary_a, await forged_button(chat, world.secretary_a, data), "forged"
    )
    assert refused.alert and "没有权限" in refused.alert
    assert await db.count(LeaderReview) == 0


async def test_submitting_freezes_the_packet_and_a_later_run_says_what_changed(
    chat, db, world, session
) -> None:
    await make_year(session, world)
    first = await chat.send(world.secretary_a, "/packet")
    assert first.sent[0].buttons[0]["text"] == "📤 报送述职材料"
    done = await chat.press(world.secretary_a, first.sent[0], "📤 报送述职材料")
    assert "述职材料已报送西宁市社会组织党工委" in done.text
    sent = (await db.all(select(Submission)))[0]
    assert sent.kind == "duty_packet" and sent.figures["report"]["minutes"] == 420

    again = await chat.send(world.secretary_a, "/packet")
    assert (
        "已于 2026-11-28 10:00 报送党工委" in again.sent[0].text
        and "报送后数字没有变化" in again.sent[0].text
    )
    assert not again.sent[0].buttons  # nothing new to submit
    assert again.sent[-1].document.data == bytes(sent.file_bytes)  # the file as it was sent

    session.add(
        ServiceEntry(
            person_id=world.member_a.id,
            org_id=world.branch_a.id,
            day=date(2026, 11, 20),
            minutes=90,
            action="welfare_day",
            description="补录",
            status=EntryStatus.APPROVED,
        )
    )
    await session.commit()
    later = await chat.send(world.secretary_a, "/packet")
    text = later.sent[0].text
    assert "报送后有变化的数字" in text and "服务时长合计（小时）：7 → 8.5" in text
    assert later.sent[0].buttons[0]["text"] == "📤 重新报送"
    assert later.sent[-1].document.data == bytes(sent.file_bytes)
    assert (await db.all(select(Submission)))[0].figures["report"]["minutes"] == 420

    sheet = await chat.send(world.staff, "/packet")
    assert "述职材料已报送" in sheet.sent[0].text
