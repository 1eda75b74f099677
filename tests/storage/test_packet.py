"""The year's packet: the 述职报告 draft, the annex and the 年检 summary say what the branch report
says, in the pack's order, with the records behind each figure."""

from __future__ import annotations

import re
from datetime import date
from io import BytesIO

import pytest
from docx import Document
from docx.oxml.ns import qn
from openpyxl import load_workbook

from content.pack import PACKS_DIR, PackError, get_pack, load_pack_dir
from storage import reports
from storage.errors import Forbidden
from storage.packet import branch_packet, fmt_hours
from storage.packet_files import annex_xlsx, inspection_docx, packet_tables, report_docx
from storage.report_files import branch_report_xlsx
from tests.storage.packet_scene import TODAY, YEAR, make_year

PACK = get_pack("qh-2015")


def doc_text(raw: bytes) -> tuple[list[tuple[str, str]], list[list[list[str]]]]:
    """(style, text) of each paragraph, and each table's rows."""
    doc = Document(BytesIO(raw))
    paras = [(p.style.name, p.text) for p in doc.paragraphs]
    tables = [[[c.text for c in row.cells] for row in t.rows] for t in doc.tables]
    return paras, tables


def summary_values(raw: bytes, sheet: str) -> dict[str, object]:
    ws = load_workbook(BytesIO(raw))[sheet]
    return {row[0].value: row[1].value for row in ws.iter_rows(min_row=2)}


@pytest.fixture
async def packet(session, world):
    await make_year(session, world)
    actor = await world.actor(session, world.secretary_a)
    data = await branch_packet(session, actor, world.branch_a.id, YEAR, TODAY, PACK)
    report = await reports.branch_report(
        session, actor, world.branch_a.id, date(YEAR, 1, 1), date(YEAR, 12, 31), TODAY, PACK
    )
    return data, report


async def test_draft_figures_are_the_branch_reports(packet) -> None:
    data, report = packet
    # The scene's expectations, worked out by hand: 150 + 120 + 90 own, 60 joint from branch B.
    assert report.minutes == 420 and report.joint_minutes == 60 and report.participants == 2
    assert report.commitments.made == 5 and report.commitments.fulfilled == 3
    paras, tables = doc_text(report_docx(data, PACK))
    text = "\n".join(t for _s, t in paras)
    assert (
        f"支部党员参加志愿服务{fmt_hours(report.minutes)}小时，{report.participants}名党员参与；"
        f"公开承诺{report.commitments.made}项，已践诺{report.commitments.fulfilled}项，"
        f"已评诺{report.commitments.evaluated}项" in text
    )
    assert "全年服务7小时，2名党员参与" in text
    assert "评诺为优秀1项、良好1项、一般0项、较差0项；服务清单公开服务项目2项" in text
    assert f"结对联合服务计入本支部{fmt_hours(report.joint_minutes)}小时" in text
    assert f"支部现有党员{report.members_total}名" in text

    # The hours table: one row per pack action, the same as the report, and its total.
    by_action = next(t for t in tables if t[0][0] == "服务行动")
    titles = {a.title.zh: a.id for a in PACK.actions}
    for name, hours in by_action[1:-1]:
        assert hours == fmt_hours(report.minutes_by_action.get(titles[name], 0))
    assert by_action[-1] == ["合计", fmt_hours(report.minutes)]

    # The annex says the same, and so does the branch report's own workbook for the period.
    annex = summary_values(annex_xlsx(data, PACK), "汇总")
    own = summary_values(branch_report_xlsx(report, PACK), "汇总")
    shared = set(annex) & set(own)
    assert {"服务时长合计（小时）", "参与服务党员（人）", "党员总数（人）", "承诺（项）"} <= shared
    for label in shared:
        assert annex[label] == own[label], label
    assert annex["服务时长合计（小时）"] == pytest.approx(float(fmt_hours(report.minutes)))
    hours_sheet = load_workbook(BytesIO(annex_xlsx(data, PACK)))["服务时长"]
    annex_rows = [[c.value for c in row] for row in hours_sheet.iter_rows(min_row=2)]
    assert [[n, fmt_hours(round(h * 60))] for n, h in annex_rows] == by_action[1:]


async def test_draft_follows_the_conventional_order_and_marks_the_secretarys_places(packet) -> None:
    data, _report = packet
    paras, _tables = doc_text(report_docx(data, PACK))
    headings = [t for s, t in paras if s == "Heading 1"]
    assert headings == [
        "一、基本情况",
        "二、主要工作及成效",
        "（一）对照“六有”目标",
        "（二）对照“五化”目标",
        "（三）“六抓六服务”开展情况",
        "三、存在的问题",
        "四、下一步打算",
    ]
    items = [t for s, t in paras if s == "Heading 3"]
    for checklist in ("six_haves", "five_standards", "six_grasps"):
        for item in PACK.checklist(checklist).items:
            assert any(item.title.zh in h for h in items), item.id
    title = next(t for s, t in paras if s == "Title")
    assert title == "西宁市餐饮行业协会党支部书记2026年度抓服务型党组织建设述职报告"
    blanks = [t for _s, t in paras if t.startswith("（请书记")]
    assert any("问题" in b for b in blanks) and any("下一年度" in b for b in blanks)
    text = [t for _s, t in paras]
    # The self-assessment of an item, with its note; items of an unassessed checklist say so.
    assert "自评：部分达到。说明：与社区共用活动室" in text
    assert text.count("自评：本年度尚未自评。") == 5 + 6
    assert text[-2:] == ["书记：李书记", "　　年　　月　　日"]

    # 有群众满意的服务业绩 is backed by the hours by action, the members who took part, the
    # commitments with their ratings and the service list, in that order, before the 五化 part.
    start = text.index("6. 有群众满意的服务业绩")
    end = text.index("（二）对照“五化”目标")
    titles = [
        t
        for t in text[start:end]
        if t in ("各服务行动服务时长", "参与服务的党员", "公开承诺及践诺、评诺情况", "服务清单")
    ]
    assert titles == ["各服务行动服务时长", "参与服务的党员", "公开承诺及践诺、评诺情况", "服务清单"]
    assert any("党员志愿服务行动（2.5小时）" in t for t in text)

    # Tables print whole: rows never split, the header row repeats, a short table keeps together.
    doc = Document(BytesIO(report_docx(data, PACK)))
    for table in doc.tables:
        rows = table.rows
        assert all(r._tr.trPr.find(qn("w:cantSplit")) is not None for r in rows)
        assert rows[0]._tr.trPr.find(qn("w:tblHeader")) is not None
        assert all(c.paragraphs[0].paragraph_format.keep_with_next for r in rows[:-1] for c in r.cells)


async def test_records_behind_the_figures(packet) -> None:
    data, _report = packet
    tables = packet_tables(data, PACK, "zh")
    commitments = tables["commitments"].rows
    assert len(commitments) == 5  # the withdrawn one is not in force
    assert [r[4] for r in commitments if r[4] != "—"] == ["优秀", "良好"]
    assert any(r[0] == "支部" and r[3] == "已亮诺" for r in commitments)
    assert any(r[3] == "已逾期" or "逾期" in r[3] for r in commitments)
    assert [r[0] for r in tables["service_list"].rows] == ["餐饮企业食品安全咨询", "从业人员技能培训"]
    assert [(r[0], r[1], str(r[3])) for r in tables["pairings"].rows] == [
        ("青海省地理学会党支部", "以强带弱（带）", "1")
    ]
    assert [r[2:] for r in tables["notices"].rows] == [[2, 1]]
    assert tables["exemplars"].rows == [["全市社会组织服务型党组织示范点"]]
    assert tables["scores"].rows == [["“六有”目标", "2026年第四季度", 83.3, 50.0]]
    assert [r[:2] for r in tables["submissions"].rows] == [[date(2026, 6, 1), date(2026, 6, 30)]]
    assert [r[0] for r in tables["members"].rows] == ["张三", "李四"]


async def test_english_draft_and_inspection_summary(packet) -> None:
    data, report = packet
    paras, _ = doc_text(report_docx(data, PACK, "en"))
    headings = [t for s, t in paras if s == "Heading 1"]
    assert headings[0] == "1. Basic situation" and headings[-1] == "4. Plans for next year"
    assert not any(re.search(r"[\u4e00-\u9fff]", h) for h in headings)
    paras, tables = doc_text(inspection_docx(data, PACK, leader_rating="好"))
    fields = {row[0]: row[1] for t in tables for row in t}
    assert fields["社会组织名称"] == "西宁市餐饮行业协会"
    assert fields["党员志愿服务"] == f"{fmt_hours(report.minutes)}小时，{report.participants}名党员参与"
    assert fields["“六有”自评得分"] == "83.3分（2026年第四季度）"
    assert fields["“五化”自评得分"] == "本年度未自评"
    assert fields["书记述职评议等次"] == "好"


async def test_packet_is_scoped(session, world) -> None:
    await make_year(session, world)
    outsider = await world.actor(session, world.other_staff)
    with pytest.raises(Forbidden):
        await branch_packet(session, outsider, world.branch_a.id, YEAR, TODAY, PACK)
    staff = await world.actor(session, world.staff)
    data = await branch_packet(session, staff, world.branch_a.id, YEAR, TODAY, PACK)
    assert data.report.minutes == 420


def test_an_outline_naming_an_unknown_item_stops_the_pack(tmp_path) -> None:
    for f in PACKS_DIR.joinpath("qh-2015").iterdir():
        tmp_path.joinpath(f.name).write_bytes(f.read_bytes())
    outline = tmp_path / "packet.yaml"
    outline.write_text(
        outline.read_text("utf-8").replace("            carriers:", "            vehicles:"), "utf-8"
    )
    with pytest.raises(PackError, match="unknown item 'vehicles'"):
        load_pack_dir(tmp_path)


async def test_the_years_commitments_are_those_with_an_event_in_it(session, world) -> None:
    from datetime import UTC, datetime

    from storage.models import Commitment, CommitmentStatus

    def utc(*a: int) -> datetime:
        return datetime(*a, tzinfo=UTC)

    a = world.branch_a
    session.add_all(
        [
            Commitment(  # all of it in 2025: not this year's
                person_id=world.member_a.id,
                org_id=a.id,
                text="去年的承诺",
                deadline=date(2025, 10, 1),
                status=CommitmentStatus.EVALUATED,
                rating="good",
                created_at=utc(2025, 3, 1),
                reported_at=utc(2025, 9, 1),
                evaluated_at=utc(2025, 9, 2),
            ),
            Commitment(  # made last year, evaluated this year
                person_id=world.member_a.id,
                org_id=a.id,
                text="跨年评诺的承诺",
                deadline=date(2025, 12, 31),
                status=CommitmentStatus.EVALUATED,
                rating="excellent",
                created_at=utc(2025, 6, 1),
                reported_at=utc(2025, 12, 20),
                evaluated_at=utc(2026, 1, 8),
            ),
        ]
    )
    await session.commit()
    actor = await world.actor(session, world.secretary_a)
    data = await branch_packet(session, actor, a.id, YEAR, TODAY, PACK)
    assert [c.text for c in data.commitments] == ["跨年评诺的承诺"]
    assert data.report.commitments.evaluated == 1 and data.rated("excellent") == 1
