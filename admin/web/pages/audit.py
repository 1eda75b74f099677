"""The audit log: who viewed or changed whose personal data, when, through which surface."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.responses import Response
from starlette.routing import Route

from admin.web.context import ABOVE, Ctx, page
from content.i18n import catalog
from storage.audit_view import audit_view

CHANNELS = ("bot", "web", "cli")


@page(roles=ABOVE)
async def index(ctx: Ctx) -> Response:
    action = ctx.arg("action")[:40] or None
    via = ctx.arg("via") if ctx.arg("via") in CHANNELS else None
    org = ctx.int_arg("org")
    person = ctx.int_arg("person")
    page_no = ctx.page_arg()
    view = await audit_view(
        ctx.db,
        ctx.me,
        person_id=person,
        action=action,
        via=via,
        org_id=org,
        date_from=ctx.day_arg("from"),
        date_to=ctx.day_arg("to"),
        page=min(page_no, 100_000),
    )
    keep = {
        "action": action or "",
        "via": via or "",
        "org": org or "",
        "person": person or "",
        "from": ctx.arg("from"),
        "to": ctx.arg("to"),
    }
    prefix = "web.audit.a."
    known = sorted(k.removeprefix(prefix) for k in catalog(ctx.locale) if k.startswith(prefix))
    return await ctx.render(
        "audit.html",
        known_actions=known,
        channels=CHANNELS,
        orgs=await ctx.managed_orgs(),
        view=view,
        p=view.page,
        keep=keep,
        base="/audit?" + urlencode({k: v for k, v in keep.items() if v} or {"page": 1}),
    )


routes = [Route("/audit", index, methods=["GET"])]
