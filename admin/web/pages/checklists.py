"""Checklist self-assessments (六有, 五化, 六抓六服务): a branch's history per checklist with what
changed since the previous one, or a committee's grid of its branches' latest scores."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from admin.web.context import Ctx, page
from storage import checklists, dashboard
from storage.models import OrgKind


@page()
async def index(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    pack = ctx.state.pack
    titles = {c.id: c.title.get(ctx.locale) for c in pack.checklists}
    if org.kind is not OrgKind.BRANCH:
        scores = await dashboard.latest_checklist_scores(ctx.db, ctx.me, org.id)
        grid: dict[int, dict[str, dashboard.BranchScore]] = {}
        for sc in scores:
            grid.setdefault(sc.org_id, {})[sc.checklist_id] = sc
        return await ctx.render(
            "checklists.html",
            org=org,
            orgs=await ctx.managed_orgs(),
            branches=await ctx.branches_under(org),
            grid=grid,
            titles=titles,
            sections=[],
        )
    sections = []
    for cl in pack.checklists:
        rows = await checklists.history(ctx.db, ctx.me, org.id, cl.id)
        comparison = (
            await checklists.compare_with_previous(ctx.db, ctx.me, rows[0].id, pack) if rows else None
        )
        items = {i.id: i.title.get(ctx.locale) for i in cl.items}
        sections.append(
            {"checklist": cl, "title": titles[cl.id], "rows": rows, "comparison": comparison, "items": items}
        )
    await ctx.db.commit()  # nothing was changed; ends the transaction (and the row lock compare takes)
    return await ctx.render(
        "checklists.html",
        org=org,
        orgs=await ctx.managed_orgs(),
        branches=[],
        grid={},
        titles=titles,
        sections=sections,
    )


routes = [Route("/checklists", index, methods=["GET"])]
