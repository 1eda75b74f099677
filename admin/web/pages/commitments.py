"""Commitments (亮诺、践诺、评诺): a branch's list with status, and evaluating reported ones."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from admin.web.context import Ctx, page
from storage import commitments
from storage.models import CommitmentStatus, OrgKind

FILTERS = ("open", "overdue", "reported", "evaluated", "withdrawn", "all")


def _keep(view: commitments.CommitmentView, status: str) -> bool:
    c = view.commitment
    if status == "open":
        return c.status in (CommitmentStatus.MADE, CommitmentStatus.REPORTED)
    if status == "overdue":
        return view.overdue
    if status == "all":
        return True
    return c.status.value == status


@page()
async def index(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    status = ctx.arg("status", "open")
    if status not in FILTERS:
        status = "open"
    if org.kind is not OrgKind.BRANCH:
        return await ctx.render(
            "commitments.html",
            org=org,
            orgs=await ctx.managed_orgs(),
            branches=await ctx.branches_under(org),
            rows=[],
            status=status,
            filters=FILTERS,
        )
    views = await commitments.list_commitments(
        ctx.db, ctx.me, "branch", ctx.today, org_id=org.id, include_withdrawn=status in ("withdrawn", "all")
    )
    return await ctx.render(
        "commitments.html",
        org=org,
        orgs=await ctx.managed_orgs(),
        branches=[],
        rows=[v for v in views if _keep(v, status)],
        status=status,
        filters=FILTERS,
        ratings=commitments.RATINGS,
        templates={t.id: t.title.get(ctx.locale) for t in ctx.state.pack.templates},
    )


@page()
async def evaluate(ctx: Ctx) -> Response:
    commitment_id = ctx.path_id("commitment_id")
    await commitments.evaluate(
        ctx.db, ctx.me, commitment_id, ctx.field("rating"), ctx.field("comment") or None, ctx.now
    )
    await ctx.db.commit()
    ctx.flash("ok", "web.commitments.evaluated")
    return ctx.redirect(ctx.back("/commitments"))


routes = [
    Route("/commitments", index, methods=["GET"]),
    Route("/commitments/{commitment_id:int}/evaluate", evaluate, methods=["POST"]),
]
