"""The branch report as an .xlsx workbook: a summary sheet, a per-member sheet, a checklist sheet.

Plain features only (bold headers, a frozen header row, column widths, number and date
formats), so it opens the same in Excel, WPS and LibreOffice. Headers come from the catalog
(Chinese by default). Text that a spreadsheet would read as a formula (= + - @ at the start)
is prefixed with a quote, so a member named "=HYPERLINK(...)" stays a name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import tzinfo
from io import BytesIO
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from content.i18n import period_label, texts
from content.pack import Pack
from storage.reports import OTHER, BranchReport, SubmissionRow, SubtreeReport
from storage.xlsx_print import period_text, print_ready, sign_off_block

HOURS = "0.00"
COUNT = "0"
DAY = "yyyy-mm-dd"
SCORE = "0.0"

# openpyxl is imported where a workbook is written, so that a bot process that never writes one
# does not carry it (see storage/xlsx_print.py).
if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet
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
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

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


def _summary_sheet(
    ws: Worksheet, t: Callable[..., str], lines: Sequence[tuple[str, Any, str | None]]
) -> None:
    """Two columns, item and value, each value with its own number format."""
    _sheet(ws, [t("report.xlsx.item"), t("report.xlsx.value")], [ln[:2] for ln in lines], [], [36, 40])
    for row, (_label, _value, fmt) in enumerate(lines, start=2):
        if fmt:
            ws.cell(row=row, column=2).number_format = fmt
    sign_off_block(ws, t)


def branch_report_xlsx(report: BranchReport, pack: Pack, locale: str = "zh") -> bytes:
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

    from openpyxl import Workbook

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
    _summary_sheet(summary, t, lines)

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
                period_label(t, s.period),
                s.score,
                s.finished_at.astimezone(zone).date(),
            ]
            for s in report.checklists
        ],
        [None, None, SCORE, DAY],
        [30, 12, 10, 14],
    )

    print_ready(wb, t, org=report.org_name, period=period_text(t, report.date_from, report.date_to))
    out = BytesIO()
    wb.save(out)
    return out.getvalue()


# ---- the compiled report of a subtree ----


def subtree_report_xlsx(
    r: SubtreeReport, subs: Sequence[SubmissionRow], pack: Pack, locale: str, tz: tzinfo
) -> bytes:
    """The compiled report of a subtree: the totals, and one row per branch with its submission."""
    t = texts(locale).plain
    titles = {a.id: a.title.get(locale) for a in pack.actions}
    cl_titles = {cl.id: cl.title.get(locale) for cl in pack.checklists}
    extra = sorted(
        {k for k in r.minutes_by_action if k not in titles}
        | {k for b in r.branches for k in b.minutes_by_action if k not in titles}
    )
    columns = [a.id for a in pack.actions] + extra

    def title(action: str) -> str:
        return titles.get(action) or (t("report.xlsx.other_action") if action == OTHER else action)

    from openpyxl import Workbook

    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = t("report.xlsx.summary")
    c = r.commitments
    lines: list[tuple[str, Any, str | None]] = [
        (t("reports_chat.xlsx.org"), r.org_name, None),
        (t("report.xlsx.date_from"), r.date_from, DAY),
        (t("report.xlsx.date_to"), r.date_to, DAY),
        (t("report.xlsx.generated"), r.today, DAY),
        (t("reports_chat.xlsx.branches"), len(r.branches), COUNT),
        (t("reports_chat.xlsx.submitted_branches"), r.submitted, COUNT),
        (t("report.xlsx.hours_total"), _hours(r.minutes), HOURS),
        *(
            (t("report.xlsx.hours_action", action=title(a)), _hours(r.minutes_by_action.get(a, 0)), HOURS)
            for a in columns
        ),
        (t("report.xlsx.participants"), r.participants, COUNT),
        (t("report.xlsx.members_total"), r.members_total, COUNT),
        (t("report.xlsx.commitments_made"), c.made, COUNT),
        (t("report.xlsx.commitments_reported"), c.reported, COUNT),
        (t("report.xlsx.commitments_evaluated"), c.evaluated, COUNT),
        (t("report.xlsx.commitments_overdue"), c.overdue, COUNT),
    ]
    _summary_sheet(summary, t, lines)

    branches = wb.create_sheet(t("reports_chat.xlsx.branch_sheet"))
    by_id = {x.org_id: x for x in subs}
    headers = [
        t("report.xlsx.branch"),
        t("report.xlsx.members_total"),
        t("report.xlsx.participants"),
        t("report.xlsx.hours_total"),
        *(t("report.xlsx.hours_action", action=title(a)) for a in columns),
        t("report.xlsx.hours_joint"),
        t("report.xlsx.commitments_made"),
        t("report.xlsx.commitments_fulfilled"),
        t("report.xlsx.commitments_overdue"),
        t("reports_chat.xlsx.last_checklist"),
        t("report.xlsx.period"),
        t("report.xlsx.score"),
        t("reports_chat.xlsx.submitted"),
        t("reports_chat.xlsx.submitted_at"),
        t("reports_chat.xlsx.submitted_by"),
        t("reports_chat.xlsx.note"),
    ]
    rows = []
    for b in r.branches:
        sub = by_id.get(b.org_id)
        last = b.last_assessment
        done = sub is not None and sub.submitted_at is not None
        rows.append(
            [
                b.name,
                b.members_total,
                b.participants,
                _hours(b.minutes),
                *(_hours(b.minutes_by_action.get(a, 0)) for a in columns),
                _hours(b.joint_minutes),
                b.commitments.made,
                b.commitments.fulfilled,
                b.commitments.overdue,
                cl_titles.get(last.checklist_id, last.checklist_id) if last else None,
                period_label(t, last.period) if last else None,
                last.score if last else None,
                t("reports_chat.xlsx.yes") if done else t("reports_chat.xlsx.no"),
                sub.submitted_at.astimezone(tz).replace(tzinfo=None)
                if done and sub and sub.submitted_at
                else None,
                sub.submitted_by if done and sub else None,
                sub.note if done and sub else None,
            ]
        )
    n = len(columns)
    formats = [
        None,
        COUNT,
        COUNT,
        HOURS,
        *([HOURS] * n),
        HOURS,
        COUNT,
        COUNT,
        COUNT,
        None,
        None,
        SCORE,
        None,
        "yyyy-mm-dd hh:mm",
        None,
        None,
    ]
    _sheet(branches, headers, rows, formats, [max(10, min(40, len(head) * 2 + 2)) for head in headers])
    print_ready(wb, t, org=r.org_name, period=period_text(t, r.date_from, r.date_to))
    out = BytesIO()
    wb.save(out)
    return out.getvalue()
