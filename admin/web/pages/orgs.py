"""The organization tree, and adding an org (admins anywhere, staff under their subtree)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from admin.web.context import ABOVE, Ctx, page
from storage import orgs
from storage.models import OrgKind
from storage.validation import ascii_int


@page()
async def tree(ctx: Ctx) -> Response:
    rows = []
    for root in await orgs.org_tree(ctx.db, ctx.me):
        rows.extend(root.walk())
    parents = [(d, o) for d, o in await ctx.managed_orgs() if o.kind is not OrgKind.BRANCH]
    can_add = bool(ctx.me.roles() & set(ABOVE)) and bool(parents)
    categories = {c.id: c.title.get(ctx.locale) for c in ctx.state.pack.categories}
    return await ctx.render(
        "orgs.html",
        rows=rows,
        parents=parents,
        can_add=can_add,
        categories=categories,
        manages={o.id for _, o in await ctx.managed_orgs()},
    )


@page(roles=ABOVE)
async def add(ctx: Ctx) -> Response:
    parent = ctx.field("parent")
    org = await orgs.add_org(
        ctx.db,
        ctx.me,
        ctx.field("name"),
        ctx.field("kind") or OrgKind.BRANCH.value,
        ascii_int(parent),
        ctx.field("category") or None,
        pack=ctx.state.pack,
    )
    await ctx.db.commit()
    ctx.flash("ok", "web.orgs.added", name=org.name)
    return ctx.redirect("/orgs")


routes = [
    Route("/orgs", tree, methods=["GET"]),
    Route("/orgs", add, methods=["POST"]),
]
