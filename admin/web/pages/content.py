"""The content pack, read-only: what the notice asks (checklists, actions, categories, directions,
commitment templates, milestones). Changing it is editing the pack's files, not a web form."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from admin.web.context import Ctx, page


@page()
async def index(ctx: Ctx) -> Response:
    return await ctx.render("content.html", pack=ctx.state.pack, loc=ctx.locale, section="overview")


@page()
async def checklists(ctx: Ctx) -> Response:
    return await ctx.render("content.html", pack=ctx.state.pack, loc=ctx.locale, section="checklists")


routes = [
    Route("/content", index, methods=["GET"]),
    Route("/content/checklists", checklists, methods=["GET"]),
]
