"""A branch report as submitted (报送), frozen, and what has changed since.

`submit` records the submission for the committee (`reports.submit_report`) and freezes what
was sent through the generic `storage.submissions`: the report's full figures and the
workbook's bytes. `open_branch_report` is what every surface shows for a branch and period:
the frozen report and file when that exact period was submitted (so the chat's /report and the
admin web show what the committee received, however the data moved since), with the figures a
fresh run would now give differently; otherwise the fresh report.

It lives apart from storage/reports.py because it needs the workbook writer, which itself
depends on storage/reports.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from content.pack import Pack
from storage import reports, submissions
from storage.access import Actor
from storage.models import Report, Submission
from storage.report_files import branch_report_xlsx
from storage.submissions import Change

KIND = "branch_report"


def file_name(date_from: date, date_to: date) -> str:
    return f"branch-report_{date_from.isoformat()}_{date_to.isoformat()}.xlsx"


async def submit(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    date_from: date,
    date_to: date,
    note: str | None,
    now: datetime,
    *,
    pack: Pack,
    locale: str = "zh",
) -> tuple[Report, Submission]:
    """报送, frozen: the committee's summary row and the stored figures and workbook."""
    row, report = await reports.submit_branch(s, actor, org_id, date_from, date_to, note, now, pack)
    frozen = await submissions.freeze(
        s,
        actor,
        kind=KIND,
        org_id=org_id,
        period_start=report.date_from,
        period_end=report.date_to,
        figures=reports.report_json(report),
        file_name=file_name(report.date_from, report.date_to),
        data=branch_report_xlsx(report, pack, locale),
        now=now,
    )
    return row, frozen


@dataclass(frozen=True, slots=True)
class Opened:
    """A branch report as a surface shows it: frozen if submitted, fresh otherwise."""

    report: reports.BranchReport
    submission: Submission | None = None
    changes: list[Change] = field(default_factory=list)  # frozen → fresh, when submitted

    def workbook(self, render: Callable[[reports.BranchReport], bytes]) -> tuple[str, bytes]:
        """The file: the bytes sent when submitted, else `render` of the fresh report."""
        if self.submission is not None:
            return self.submission.file_name, self.submission.file_bytes
        return file_name(self.report.date_from, self.report.date_to), render(self.report)


async def open_branch_report(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    date_from: date,
    date_to: date,
    today: date,
    pack: Pack,
) -> Opened:
    fresh = await reports.branch_report(s, actor, org_id, date_from, date_to, today, pack)
    sent = await submissions.latest(
        s, actor, kind=KIND, org_id=org_id, period_start=fresh.date_from, period_end=fresh.date_to
    )
    if sent is None:
        return Opened(fresh)
    changes = submissions.changes(
        reports.compared_figures(sent.figures), reports.compared_figures(reports.report_json(fresh))
    )
    return Opened(reports.report_from_json(sent.figures), sent, changes)


_LABELS = {
    "minutes": "report.xlsx.hours_total",
    "joint_minutes": "report.xlsx.hours_joint",
    "pending_entries": "report.xlsx.pending",
    "pending_minutes": "report.xlsx.pending_hours",
    "participants": "report.xlsx.participants",
    "members_total": "report.xlsx.members_total",
}
_HOURS = {"minutes", "minutes_by_action", "joint_minutes", "pending_minutes"}


def _value(change_path: tuple[str, ...], v: object) -> str:
    if v is None and change_path[0] in _HOURS:
        v = 0  # an action with no service is left out of the figures: it is zero hours
    if v is None:
        return "—"
    if change_path[0] in _HOURS and isinstance(v, int | float):
        return f"{round(v / 60, 2):g}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def change_lines(t: Callable[..., str], changes: list[Change], locale: str, pack: Pack) -> list[str]:
    """One line per changed figure ("服务时长合计（小时）：3.5 → 4"), in the reader's language;
    `t` is the catalog (`Texts`, or `Texts.plain` for the web, which escapes by itself)."""
    actions = {a.id: a for a in pack.actions}
    checklists = {c.id: c for c in pack.checklists}
    out = []
    for c in changes:
        head, rest = c.path[0], c.path[1:]
        if head == "minutes_by_action" and rest:
            a = actions.get(rest[0])
            title = a.title.get(locale) if a else t("report.xlsx.other_action")
            label = t("report.xlsx.hours_action", action=title)
        elif head == "commitments" and rest:
            label = t(f"report.xlsx.commitments_{rest[0]}")
        elif head == "checklists" and rest:
            cl = checklists.get(rest[0])
            label = f"{cl.title.get(locale) if cl else rest[0]} {t('report.xlsx.score')}"
        else:
            label = t(_LABELS.get(head, "report.xlsx.value"))
        out.append(
            t("report.changed_line", label=label, then=_value(c.path, c.then), now=_value(c.path, c.now))
        )
    return out
