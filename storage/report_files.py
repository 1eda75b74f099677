"""The branch report as an .xlsx workbook: a summary sheet, a per-member sheet, a checklist sheet.

Plain features only (bold headers, a frozen header row, column widths, number and date
formats), so it opens the same in Excel, WPS and LibreOffice. Headers come from the catalog
(Chinese by default). Text that a spreadsheet would read as a formula (= + - @ at the start)
is prefixed with a quote, so a member named "=HYPERLINK(...)" stays a name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from io import BytesIO
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from content.i18n import texts
from content.pack import Pack, get_pack
from storage.reports import OTHER, BranchReport

HOURS = "0.00"
COUNT = "0"
DAY = "yyyy-mm-dd"
SCORE = "0.0"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> str:
    """Text a spreadsheet will never evaluate."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _hours(minutes: int) -> float:
    return round(minutes / 60, 2)


def _cell(value: Any) -> Any:
    return safe_text(value) if isinstance(value, str) else value


def _sheet(
    ws: Worksheet,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    formats: Sequence[str | None],
    widths: Sequence[int],
) -> None:
    ws.append([_cell(h) for h in headers])
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    for row in rows:
        ws.append([_cell(v) for v in row])
    for i, fmt in enumerate(formats, start=1):
        if fmt is None:
            continue
        for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
            cell.number_format = fmt
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "A2"


def branch_report_xlsx(report: BranchReport, pack: Pack | None = None, locale: str = "zh") -> bytes:
    pack = pack or get_pack()
    t = texts(locale).plain
    action_ids = [a.id for a in pack.actions]
    titles = {a.id: a.title.get(locale) for a in pack.actions}
    extra = sorted(
        {k for k in report.minutes_by_action if k not in titles}
        | {k for m in report.members for k in m.minutes_by_action if k not in titles}
    )
    columns = action_ids + extra

    def action_title(action: str) -> str:
        return titles.get(action) or (t("report.xlsx.other_action") if action == OTHER else action)

    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = t("report.xlsx.summary")
    c = report.commitments
    lines: list[tuple[str, Any, str | None]] = [
        (t("report.xlsx.branch"), report.org_name, None),
        (t("report.xlsx.date_from"), report.date_from, DAY),
        (t("report.xlsx.date_to"), report.date_to, DAY),
        (t("report.xlsx.generated"), report.today, DAY),
        (t("report.xlsx.hours_total"), _hours(report.minutes), HOURS),
        *(
            (
                t("report.xlsx.hours_action", action=action_title(a)),
                _hours(report.minutes_by_action.get(a, 0)),
                HOURS,
            )
            for a in columns
        ),
        (t("report.xlsx.hours_joint"), _hours(report.joint_minutes), HOURS),
        (t("report.xlsx.pending"), report.pending_entries, COUNT),
        (t("report.xlsx.pending_hours"), _hours(report.pending_minutes), HOURS),
        (t("report.xlsx.participants"), report.participants, COUNT),
        (t("report.xlsx.members_total"), report.members_total, COUNT),
        (t("report.xlsx.commitments_made"), c.made, COUNT),
        (t("report.xlsx.commitments_reported"), c.reported, COUNT),
        (t("report.xlsx.commitments_evaluated"), c.evaluated, COUNT),
        (t("report.xlsx.commitments_overdue"), c.overdue, COUNT),
    ]
    _sheet(summary, [t("report.xlsx.item"), t("report.xlsx.value")], [ln[:2] for ln in lines], [], [36, 40])
    for row, (_label, _value, fmt) in enumerate(lines, start=2):
        if fmt:
            summary.cell(row=row, column=2).number_format = fmt

    members = wb.create_sheet(t("report.xlsx.members"))
    headers = [
        t("report.xlsx.name"),
        t("report.xlsx.role"),
        *(t("report.xlsx.hours_action", action=action_title(a)) for a in columns),
        t("report.xlsx.hours_total"),
        t("report.xlsx.commitments_made"),
        t("report.xlsx.commitments_fulfilled"),
        t("report.xlsx.commitments_overdue"),
    ]
    rows = [
        [
            m.name,
            t(f"report.role.{m.role.value}"),
            *(_hours(m.minutes_by_action.get(a, 0)) for a in columns),
            _hours(m.minutes),
            m.commitments.made,
            m.commitments.fulfilled,
            m.commitments.overdue,
        ]
        for m in report.members
    ]
    formats = [None, None, *([HOURS] * (len(columns) + 1)), COUNT, COUNT, COUNT]
    _sheet(members, headers, rows, formats, [16, 10, *([14] * (len(columns) + 1)), 10, 10, 12])

    checklists = wb.create_sheet(t("report.xlsx.checklists"))
    zone = ZoneInfo(report.timezone)
    cl_titles = {cl.id: cl.title.get(locale) for cl in pack.checklists}
    _sheet(
        checklists,
        [
            t("report.xlsx.checklist"),
            t("report.xlsx.period"),
            t("report.xlsx.score"),
            t("report.xlsx.finished"),
        ],
        [
            [
                cl_titles.get(s.checklist_id, s.checklist_id),
                s.period,
                s.score,
                s.finished_at.astimezone(zone).date(),
            ]
            for s in report.checklists
        ],
        [None, None, SCORE, DAY],
        [30, 12, 10, 14],
    )

    out = BytesIO()
    wb.save(out)
    return out.getvalue()
