"""Reports: choose an organization and a period, view the figures, download .xlsx or .csv.

A branch gets the branch report (per member); a committee the subtree report (per branch) with
which branches have submitted (报送) this exact period."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from admin.web import files
from admin.web.context import ABOVE, Ctx, page
from storage import audit, report_files, reports, sent_reports
from storage.errors import Invalid, NotFound
from storage.models import Org, OrgKind
from storage.validation import strict_day


def _day(raw: str, default: date) -> date:
    if not raw:
        return default
    day = strict_day(raw)
    if day is None:
        raise Invalid("web.bad_date", value=raw[:20])
    return day


def _quarter_start(d: date) -> date:
    return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def presets(today: date) -> list[tuple[str, date, date]]:
    month = today.replace(day=1)
    last_month_end = month - timedelta(days=1)
    return [
        ("web.reports.this_month", month, today),
        ("web.reports.last_month", last_month_end.replace(day=1), last_month_end),
        ("web.reports.this_quarter", _quarter_start(today), today),
        ("web.reports.this_year", date(today.year, 1, 1), today),
        ("web.reports.last_year", date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)),
    ]


async def _report(ctx: Ctx, org: Org, start: date, end: date) -> sent_reports.Opened | reports.SubtreeReport:
    """A branch's report as submitted (frozen) when that period was, else fresh; a subtree's."""
    if org.kind is OrgKind.BRANCH:
        return await sent_reports.open_branch_report(
            ctx.db, ctx.me, org.id, start, end, ctx.today, ctx.state.pack
        )
    return await reports.subtree_report(ctx.db, ctx.me, org.id, start, end, ctx.today, ctx.state.pack)


def _period(ctx: Ctx) -> tuple[date, date]:
    today = ctx.today
    return _day(ctx.arg("from"), date(today.year, 1, 1)), _day(ctx.arg("to"), today)


@page()
async def index(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    start, end = _period(ctx)
    made = await _report(ctx, org, start, end)
    opened = made if isinstance(made, sent_reports.Opened) else None
    report = opened.report if opened else made
    submissions = None
    if org.kind is not OrgKind.BRANCH and ctx.me.manages(org, ABOVE):
        submissions = {r.org_id: r for r in await reports.submissions(ctx.db, ctx.me, org.id, start, end)}
    if org.kind is OrgKind.BRANCH:
        await audit.record(ctx.db, ctx.me, "report.view", org_id=org.id, detail={"rows": len(report.members)})  # type: ignore[union-attr]
        await ctx.db.commit()
    return await ctx.render(
        "reports.html",
        org=org,
        orgs=await ctx.managed_orgs(),
        r=report,
        start=start,
        end=end,
        presets=presets(ctx.today),
        submissions=submissions,
        actions=[(a.id, a.title.get(ctx.locale)) for a in ctx.state.pack.actions],
        is_branch=org.kind is OrgKind.BRANCH,
        frozen=opened.submission if opened else None,
        changes=(
            sent_reports.change_lines(ctx._.plain, opened.changes, ctx.locale, ctx.state.pack)
            if opened
            else []
        ),
        checklist_titles={c.id: c.title.get(ctx.locale) for c in ctx.state.pack.checklists},
    )


def _branch_table(ctx: Ctx, r: reports.BranchReport) -> tuple[list[str], list[list[Any]]]:
    t = ctx._.plain
    actions = [(a.id, a.title.get(ctx.locale)) for a in ctx.state.pack.actions]
    headers = [t("report.xlsx.name"), t("report.xlsx.role")]
    headers += [t("report.xlsx.hours_action", action=title) for _, title in actions]
    headers += [
        t("report.xlsx.hours_total"),
        t("report.xlsx.commitments_made"),
        t("report.xlsx.commitments_fulfilled"),
        t("report.xlsx.commitments_overdue"),
    ]
    rows = [
        [
            m.name,
            t(f"report.role.{m.role.value}"),
            *(round(m.minutes_by_action.get(a, 0) / 60, 2) for a, _ in actions),
            round(m.minutes / 60, 2),
            m.commitments.made,
            m.commitments.fulfilled,
            m.commitments.overdue,
        ]
        for m in r.members
    ]
    return headers, rows


def _subtree_table(ctx: Ctx, r: reports.SubtreeReport) -> tuple[list[str], list[list[Any]]]:
    """One row per branch, for the .csv download (the .xlsx is storage.report_files')."""
    t = ctx._.plain
    headers = [
        t("web.branch"),
        t("report.xlsx.members_total"),
        t("report.xlsx.participants"),
        t("report.xlsx.hours_total"),
        t("report.xlsx.hours_joint"),
        t("report.xlsx.commitments_made"),
        t("report.xlsx.commitments_fulfilled"),
        t("report.xlsx.commitments_overdue"),
        t("web.reports.last_score"),
        t("web.reports.submitted"),
    ]
    rows = [
        [
            b.name,
            b.members_total,
            b.participants,
            round(b.minutes / 60, 2),
            round(b.joint_minutes / 60, 2),
            b.commitments.made,
            b.commitments.fulfilled,
            b.commitments.overdue,
            b.last_assessment.score if b.last_assessment else None,
            t("web.yes") if b.submitted else t("web.no"),
        ]
        for b in r.branches
    ]
    return headers, rows


@page()
async def download(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    fmt = ctx.arg("fmt", "xlsx")
    if fmt not in ("xlsx", "csv"):
        raise NotFound()
    start, end = _period(ctx)
    report = await _report(ctx, org, start, end)
    if isinstance(report, sent_reports.Opened):
        # A submitted period downloads the file that was sent, byte for byte.
        if fmt == "xlsx":
            _name, data = report.workbook(
                lambda r: report_files.branch_report_xlsx(r, ctx.state.pack, ctx.locale)
            )
        else:
            data = files.csv_bytes(*_branch_table(ctx, report.report))
    elif fmt == "xlsx":
        # The same compiled workbook the chat's /report sends (storage/report_files.py).
        subs = (
            await reports.submissions(ctx.db, ctx.me, org.id, start, end)
            if ctx.me.manages(org, ABOVE)
            else []
        )
        data = report_files.subtree_report_xlsx(
            report, subs, ctx.state.pack, ctx.locale, ctx.state.settings.tz
        )
    else:
        data = files.csv_bytes(*_subtree_table(ctx, report))
    await audit.record(
        ctx.db,
        ctx.me,
        "report.export",
        org_id=org.id,
        detail={"format": fmt, "from": start.isoformat(), "to": end.isoformat()},
    )
    await ctx.db.commit()
    name = f"{ctx._.plain('web.reports.file')}-{org.id}-{start.isoformat()}-{end.isoformat()}.{fmt}"
    return files.download(data, name, fmt)


routes = [
    Route("/reports", index, methods=["GET"]),
    Route("/reports/download", download, methods=["GET"]),
]
