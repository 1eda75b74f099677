"""Workbooks that print: every workbook the project hands out, converted to PDF by LibreOffice
Calc headless, is A4, one page wide, repeats its header row on every page, names the organization,
the period and the page number, and keeps each summary label on the same line as its value; the
summary sheet ends with the sign-off block (填报人、审核人、报送日期、盖章)."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, date, datetime, timedelta

from openpyxl import load_workbook

from admin.web import files
from content.i18n import texts
from content.pack import get_pack
from storage import exports, people, reports
from storage.access import load_actor
from storage.models import Role
from storage.report_files import branch_report_xlsx, subtree_report_xlsx
from storage.reports import CommitmentCounts, MemberRow
from tests.browser.seed import NAMES, seed
from tests.printing.conftest import Pdf, convert
from tests.storage.test_report_files import report as made_up_report

TODAY = date(2026, 11, 28)
FROM, TO = date(2026, 1, 1), TODAY
A4 = (595.3, 841.9)
t = texts("zh").plain


def _a4(pdf: Pdf) -> None:
    assert pdf.sizes and len(pdf.sizes) == len(pdf.pages), pdf.path
    for w, h in pdf.sizes:
        assert sorted((round(w), round(h))) == [595, 842], f"{pdf.path.name}: page {w}x{h} is not A4"


def _pages_with(pdf: Pdf, text: str) -> list[int]:
    return [i for i, page in enumerate(pdf.pages) if text in page]


def _one_page_wide(pdf: Pdf, first: str, last: str, after: int = 0) -> list[int]:
    """The pages (from page index `after` on, past the summary) of a table whose header row
    starts with `first` and ends with `last`: each shows both (the header row repeats, and no
    column ran onto a page of its own)."""
    with_first = [i for i in _pages_with(pdf, first) if i >= after]
    with_last = [i for i in _pages_with(pdf, last) if i >= after]
    assert with_first, f"{pdf.path.name}: no page shows {first!r}"
    assert with_first == with_last, f"{pdf.path.name}: {first!r} on {with_first}, {last!r} on {with_last}"
    return with_first


def _label_beside_value(pdf: Pdf, label: str, value: str) -> None:
    lines = [ln for page in pdf.pages for ln in page.splitlines() if label in ln]
    assert lines, f"{pdf.path.name}: no line holds {label!r}"
    assert any(re.search(re.escape(label) + r"\s+" + re.escape(value) + r"(\s|$)", ln) for ln in lines), (
        f"{pdf.path.name}: {label!r} is not beside {value!r}: {lines}"
    )


def _header_footer(pdf: Pdf, org: str, period: str) -> None:
    for i, page in enumerate(pdf.pages, start=1):
        assert org in page and period in page, f"{pdf.path.name} page {i}: no organization or period"
        assert re.search(rf"第 {i} 页，共 \d+ 页", page), f"{pdf.path.name} page {i}: no page number"


async def _books(session) -> dict[str, bytes]:
    lived = await seed(session, TODAY)
    w = lived.world
    pack = get_pack()
    staff = await load_actor(session, w.staff.id)
    secretary = await load_actor(session, w.secretary_a.id)
    branch = await reports.branch_report(session, secretary, w.branch_a.id, FROM, TO, TODAY, pack)
    subtree = await reports.subtree_report(session, staff, w.committee.id, FROM, TO, TODAY, pack)
    subs = await reports.submissions(session, staff, w.committee.id, FROM, TO)
    records = await exports.export_service_records(
        session, staff, w.committee.id, FROM, TO, "xlsx", pack=pack
    )
    # A branch of 80 members: the member sheet runs over several pages.
    many = [
        MemberRow(i, NAMES[i % len(NAMES)], Role.MEMBER, {"volunteer": 60 * i}, 60 * i, CommitmentCounts(1))
        for i in range(1, 81)
    ]
    long = made_up_report(members=many)
    headers = [t("web.members.name"), t("web.branch"), t("web.members.role"), t("web.members.note")]
    roster = [[n, w.branch_a.name, t("people.role_member"), "会员企业负责人"] for n in NAMES]
    imported = [
        people.ImportedPerson(
            i, n, Role.MEMBER, None, f"c{i:030d}", datetime(2026, 12, 28, tzinfo=UTC) + timedelta(days=i)
        )
        for i, n in enumerate(NAMES[:12])
    ]
    return {
        "branch": branch_report_xlsx(branch, pack, "zh"),
        "branch-long": branch_report_xlsx(long, pack, "zh"),
        "subtree": subtree_report_xlsx(subtree, subs, pack, "zh", UTC),
        "records": records,
        "members": files.xlsx(
            [(t("web.nav.members"), headers, roster)],
            t=t,
            org=w.branch_a.name,
            period=t("print.as_of", day=TODAY.isoformat()),
        ),
        "links": people.invite_sheet(imported, "branchbot_test_bot", org_name=w.branch_a.name),
    }


def _summary(pdf: Pdf, raw: bytes) -> None:
    """Each summary label on the same line as its value, then the sign-off block, on page 1."""
    ws = load_workbook(io.BytesIO(raw)).worksheets[0]
    for label, value in ws.iter_rows(min_row=2, max_col=2):
        if label.value is None or value.value is None:
            continue
        v = value.value
        if isinstance(v, datetime):
            shown = v.date().isoformat()
        elif value.number_format == "0.00":
            shown = f"{v:.2f}"
        else:
            shown = str(v)
        _label_beside_value(pdf, label.value, shown)
    first = pdf.pages[0]
    for key in ("print.filled_by", "print.reviewed_by", "print.submitted_on", "print.seal"):
        assert t(key) in first, f"{pdf.path.name}: {t(key)} not on the summary page"


async def test_every_workbook_prints_a4_one_page_wide_with_labels_beside_values(session, tmp_path) -> None:
    books = await _books(session)
    pdfs = await asyncio.to_thread(convert, books, tmp_path)
    for pdf in pdfs.values():
        _a4(pdf)
    org, period = "西宁市餐饮行业协会党支部", "2026-01-01 至 2026-11-28"
    # The branch report: summary (labels beside values, sign-off), members, checklists.
    branch = pdfs["branch"]
    _header_footer(branch, org, period)
    _summary(branch, books["branch"])
    _one_page_wide(branch, "身份", "逾期未践诺", after=1)
    _one_page_wide(branch, "自评期间", "完成日期")
    for page in branch.pages:  # a header's unit is never split ("（小" / "时）")
        assert "（小\n" not in page and not re.search(r"^\s*时）", page, re.M)
    # 80 members run down several pages, each with the header row and one page wide.
    long = pdfs["branch-long"]
    member_pages = _one_page_wide(long, "身份", "逾期未践诺", after=1)
    assert len(member_pages) >= 2
    assert all(NAMES[0] in long.pages[i] or NAMES[1] in long.pages[i] for i in member_pages)
    assert len(long.sizes) == len(long.pages)
    # The wide member sheet prints landscape, the two-column summary portrait.
    assert long.sizes[member_pages[0]][0] > long.sizes[member_pages[0]][1]
    assert long.sizes[0][0] < long.sizes[0][1]
    # The subtree report of the committee: 16+ columns, still one page wide, names not cut off.
    subtree = pdfs["subtree"]
    _header_footer(subtree, "西宁市社会组织党工委", period)
    _summary(subtree, books["subtree"])
    branch_pages = _one_page_wide(subtree, "党员总数", "报送说明", after=1)
    assert "青海省民营经济研究会党支部" in subtree.pages[branch_pages[0]]
    # The records export for the national system, the member list and the sheet of invite links.
    records = pdfs["records"]
    _header_footer(records, "西宁市社会组织党工委", period)
    assert len(_one_page_wide(records, "志愿者姓名", "状态")) == len(records.pages) >= 2
    members = pdfs["members"]
    _header_footer(members, org, "截至 2026-11-28")
    _one_page_wide(members, "姓名", "备注")
    links = pdfs["links"]
    _header_footer(links, org, "链接有效期至 2026-12-28")
    assert len(_one_page_wide(links, "专属邀请链接", "扫码加入")) == len(links.pages) >= 2
