"""The branch report workbook: sheets, Chinese headers, real numbers and dates, no formulas."""

from __future__ import annotations

import zipfile
from datetime import UTC, date, datetime
from io import BytesIO

import pytest
from openpyxl import load_workbook

from content.pack import get_pack
from storage.models import Role
from storage.report_files import branch_report_xlsx, safe_text
from storage.reports import BranchReport, ChecklistScore, CommitmentCounts, MemberRow

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK


def report(**kw) -> BranchReport:
    data = {
        "org_id": 1,
        "org_name": "西宁市餐饮行业协会党支部",
        "date_from": date(2026, 11, 1),
        "date_to": date(2026, 11, 30),
        "today": date(2026, 11, 20),
        "minutes_by_action": {"volunteer": 190, "integrity": 30, "other": 25},
        "minutes": 245,
        "joint_minutes": 120,
        "pending_entries": 1,
        "pending_minutes": 45,
        "participants": 2,
        "members_total": 3,
        "members": [
            MemberRow(
                1, "张三", Role.MEMBER, {"volunteer": 60, "integrity": 30}, 90, CommitmentCounts(3, 1, 1, 1)
            ),
            MemberRow(
                2, '=HYPERLINK("http://x","点我")', Role.MEMBER, {"volunteer": 10}, 10, CommitmentCounts()
            ),
            MemberRow(3, "李书记", Role.SECRETARY, {}, 0, CommitmentCounts(1)),
        ],
        "commitments": CommitmentCounts(5, 1, 1, 1),
        # 16:30 UTC on 30 November is 1 December in the branch's time zone.
        "checklists": [
            ChecklistScore("six_haves", "2026-Q4", 80.0, datetime(2026, 11, 30, 16, 30, tzinfo=UTC))
        ],
    }
    data.update(kw)
    return BranchReport(**data)


def load(raw: bytes):
    return load_workbook(BytesIO(raw))


def test_three_sheets_with_chinese_headers_and_frozen_header_rows() -> None:
    wb = load(branch_report_xlsx(report(), PACK))
    assert wb.sheetnames == ["汇总", "党员明细", "清单自评"]
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2"
        assert ws["A1"].font.bold
        assert ws.column_dimensions["A"].width >= 10
    members = wb["党员明细"]
    headers = [c.value.replace("\n", "") for c in members[1]]  # the unit prints on its own line
    volunteer = get_pack().action("volunteer").title.zh
    assert headers[:3] == ["姓名", "身份", f"{volunteer}(小时)".replace("(", "（").replace(")", "）")]
    assert headers[-4:] == ["服务时长合计（小时）", "承诺（项）", "已践诺（项）", "逾期未践诺（项）"]


def test_numbers_are_numbers_and_dates_are_dates() -> None:
    wb = load(branch_report_xlsx(report(), PACK))
    summary = {row[0].value: row[1] for row in wb["汇总"].iter_rows(min_row=2)}
    assert summary["服务时长合计（小时）"].value == pytest.approx(245 / 60, abs=0.01)
    assert summary["服务时长合计（小时）"].number_format == "0.00"
    assert summary["参与服务党员（人）"].value == 2
    assert summary["开始日期"].value == datetime(2026, 11, 1)  # Excel dates load as datetimes
    assert summary["开始日期"].is_date
    assert summary["其他（小时）"].value == pytest.approx(25 / 60, abs=0.01)
    members = wb["党员明细"]
    first = [c.value for c in members[2]]
    assert first[0] == "张三" and first[1] == "党员"
    assert all(c.data_type == "n" for c in members[2][2:])
    assert first[2] == 1.0
    assert first[-4:] == [1.5, 3, 1, 1]  # fulfilled = reported in the period
    checklist = [c.value for c in wb["清单自评"][2]]
    assert checklist[0] == get_pack().checklist("six_haves").title.zh
    assert checklist[1:] == ["2026年第四季度", 80.0, datetime(2026, 12, 1)]


def test_formula_looking_text_stays_text() -> None:
    raw = branch_report_xlsx(report(org_name="+86 支部"), PACK)
    wb = load(raw)
    name = wb["党员明细"]["A3"]
    assert name.data_type == "s"
    assert name.value == '\'=HYPERLINK("http://x","点我")'
    assert wb["汇总"]["B2"].value == "'+86 支部"
    with zipfile.ZipFile(BytesIO(raw)) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/")]
        assert not any(b"<f>" in z.read(n) for n in sheets)


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+86", "'+86"),
        ("-3", "'-3"),
        ("@sum", "'@sum"),
        ("\tx", "'\tx"),
        ("张三", "张三"),
        ("", ""),
    ],
)
def test_safe_text(text: str, safe: str) -> None:
    assert safe_text(text) == safe


def test_english_workbook_uses_english_headers() -> None:
    wb = load(branch_report_xlsx(report(), locale="en", pack=PACK))
    assert wb.sheetnames == ["Summary", "Members", "Checklists"]


def test_empty_report_still_makes_a_workbook() -> None:
    raw = branch_report_xlsx(report(members=[], checklists=[], minutes_by_action={}, minutes=0), PACK)
    wb = load(raw)
    assert wb["党员明细"].max_row == 1


def test_every_catalog_key_these_store_modules_use_exists_in_both_languages() -> None:
    import re
    from pathlib import Path

    from content.i18n import catalog

    root = Path(__file__).resolve().parents[2] / "storage"
    modules = [
        "service_log",
        "commitments",
        "checklists",
        "service_list",
        "pairings",
        "reports",
        "report_files",
    ]
    pattern = r'"((?:log|commitment|checklist|services|pairing|exemplar|report|error)\.[a-z_.]+)"'
    keys = {k for m in modules for k in re.findall(pattern, (root / f"{m}.py").read_text(encoding="utf-8"))}
    keys |= {f"report.role.{r.value}" for r in (Role.MEMBER, Role.SECRETARY)}
    # Audit action names look like keys; they are labelled under web.audit.a.* instead.
    keys = {k for k in keys if f"web.audit.a.{k}" not in catalog("zh")}
    assert len(keys) > 60
    for locale in ("zh", "en"):
        assert sorted(keys - set(catalog(locale))) == [], locale
