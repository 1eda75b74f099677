"""The dashboard: key figures for the year so far, and four charts (hours per month,
participation by branch, commitments by status, latest checklist scores)."""

from __future__ import annotations

from datetime import date

from starlette.responses import Response
from starlette.routing import Route

from admin.web import charts
from admin.web.context import Ctx, page
from storage import dashboard, notices, reports
from storage.models import Org


def _year_start(today: date) -> date:
    return date(today.year, 1, 1)


def _month_label(ctx: Ctx, m: dashboard.MonthTotal, first: bool) -> str:
    """ "11月" or "Nov"; the first month and each January also carry the year on a second line."""
    name = f"{m.month}月" if ctx.locale == "zh" else date(m.year, m.month, 1).strftime("%b")
    return f"{name}\n{m.year}" if first or m.month == 1 else name


@page()
async def home(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    today = ctx.today
    report = await reports.subtree_report(
        ctx.db, ctx.me, org.id, _year_start(today), today, today, ctx.state.pack
    )
    months = await dashboard.monthly_minutes(ctx.db, ctx.me, org.id, today=today)
    scores = await dashboard.latest_checklist_scores(ctx.db, ctx.me, org.id)
    averages = await dashboard.checklist_averages(ctx.db, ctx.me, org.id)
    recent = await notices.list_notices(ctx.db, ctx.me, org.id, limit=5)
    checklist_ids = [c.id for c in ctx.state.pack.checklists]
    grid: dict[int, dict[str, dashboard.BranchScore]] = {}
    for sc in scores:
        grid.setdefault(sc.org_id, {})[sc.checklist_id] = sc
    await ctx.db.commit()  # nothing written; ends the read transaction promptly
    return await ctx.render(
        "dashboard.html",
        org=org,
        orgs=await ctx.managed_orgs(),
        report=report,
        months=months,
        slices=await dashboard.commitment_states(
            ctx.db, ctx.me, org.id, date_from=_year_start(today), today=today
        ),
        averages=averages,
        grid=grid,
        checklist_ids=checklist_ids,
        checklist_titles={c.id: c.title.get(ctx.locale) for c in ctx.state.pack.checklists},
        recent=recent,
        year_start=_year_start(today),
        actions=[(a.id, a.title.get(ctx.locale)) for a in ctx.state.pack.actions],
    )


async def _done_reading(ctx: Ctx) -> None:
    """End the read transaction before drawing: on SQLite it holds the lock the bot writes with."""
    await ctx.db.commit()


def _svg(data: bytes) -> Response:
    # Not cached by the browser: a chart follows the data (and the language) at once. Drawing is
    # cached on the server by its data, so a reload costs the queries only.
    return Response(data, media_type="image/svg+xml")


async def _chart_org(ctx: Ctx) -> Org:
    return await ctx.pick_org()


@page()
async def chart_hours(ctx: Ctx) -> Response:
    org = await _chart_org(ctx)
    months = await dashboard.monthly_minutes(ctx.db, ctx.me, org.id, today=ctx.today)
    bars = [charts.Bar(_month_label(ctx, m, i == 0), m.hours) for i, m in enumerate(months)]
    unit = ctx._.plain("web.dash.hours_unit")
    await _done_reading(ctx)
    return _svg(await charts.render("hours", [bars, unit], lambda: charts.columns(bars, unit)))


@page()
async def chart_participation(ctx: Ctx) -> Response:
    org = await _chart_org(ctx)
    today = ctx.today
    report = await reports.subtree_report(
        ctx.db, ctx.me, org.id, _year_start(today), today, today, ctx.state.pack
    )
    bars = [
        charts.Bar(
            b.name,
            round(100 * b.participants / b.members_total, 1) if b.members_total else 0.0,
            f"{b.participants}/{b.members_total}",
        )
        for b in report.branches
    ]
    await _done_reading(ctx)
    return _svg(
        await charts.render("participation", bars, lambda: charts.hbars(bars, limit=100, percent=True))
    )


@page()
async def chart_actions(ctx: Ctx) -> Response:
    """Hours by service action: a branch's second chart (one branch needs no comparison)."""
    org = await _chart_org(ctx)
    today = ctx.today
    report = await reports.subtree_report(
        ctx.db, ctx.me, org.id, _year_start(today), today, today, ctx.state.pack
    )
    bars = [
        charts.Bar(a.title.get(ctx.locale), round(report.minutes_by_action.get(a.id, 0) / 60, 1))
        for a in ctx.state.pack.actions
    ]
    if report.minutes_by_action.get(reports.OTHER):
        bars.append(
            charts.Bar(
                ctx._.plain("web.other_action"), round(report.minutes_by_action[reports.OTHER] / 60, 1)
            )
        )
    await _done_reading(ctx)
    return _svg(await charts.render("actions", bars, lambda: charts.hbars(bars, color=charts.RED)))


@page()
async def chart_commitments(ctx: Ctx) -> Response:
    org = await _chart_org(ctx)
    today = ctx.today
    # The state of the year's commitments today (a report counts its period's events instead).
    sl = await dashboard.commitment_states(ctx.db, ctx.me, org.id, date_from=_year_start(today), today=today)
    t = ctx._.plain
    parts = [
        (t("web.dash.c_in_progress"), float(sl.in_progress), charts.BLUE),
        (t("web.dash.c_overdue"), float(sl.overdue), charts.RED),
        (t("web.dash.c_reported"), float(sl.reported), charts.AMBER),
        (t("web.dash.c_evaluated"), float(sl.evaluated), charts.GREEN),
    ]
    center = str(sl.total)
    await _done_reading(ctx)
    return _svg(await charts.render("commitments", [parts, center], lambda: charts.donut(parts, center)))


@page()
async def chart_checklists(ctx: Ctx) -> Response:
    org = await _chart_org(ctx)
    averages = {a.checklist_id: a for a in await dashboard.checklist_averages(ctx.db, ctx.me, org.id)}
    bars = []
    for cl in ctx.state.pack.checklists:
        a = averages.get(cl.id)
        note = ctx._.plain("web.dash.score_note", score=f"{a.average:g}", n=a.branches) if a else "—"
        bars.append(charts.Bar(cl.title.get(ctx.locale), a.average if a else 0.0, note))
    await _done_reading(ctx)
    return _svg(
        await charts.render("checklists", bars, lambda: charts.hbars(bars, limit=100, color=charts.GREEN))
    )


routes = [
    Route("/", home, methods=["GET"]),
    Route("/charts/hours.svg", chart_hours, methods=["GET"]),
    Route("/charts/participation.svg", chart_participation, methods=["GET"]),
    Route("/charts/actions.svg", chart_actions, methods=["GET"]),
    Route("/charts/commitments.svg", chart_commitments, methods=["GET"]),
    Route("/charts/checklists.svg", chart_checklists, methods=["GET"]),
]
