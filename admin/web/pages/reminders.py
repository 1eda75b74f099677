"""Reminder rules of a branch: see when each runs next, switch it on or off, change its time."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from admin.web.context import Ctx, page
from storage import reminders
from storage.models import OrgKind, ReminderKind
from storage.validation import ascii_int


@page()
async def index(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    if org.kind is not OrgKind.BRANCH:
        return await ctx.render(
            "reminders.html",
            org=org,
            orgs=await ctx.managed_orgs(),
            branches=await ctx.branches_under(org),
            rules=[],
        )
    rules = await reminders.list_rules(ctx.db, ctx.me, org.id)  # checks the scope
    if len(rules) < len(reminders.DEFAULT_RULES):
        # A branch gets the default rules the first time anyone looks (as in the chat's /reminders).
        await reminders.ensure_default_rules(ctx.db, org, now=ctx.now)
        rules = await reminders.list_rules(ctx.db, ctx.me, org.id)
        await ctx.db.commit()
    return await ctx.render(
        "reminders.html", org=org, orgs=await ctx.managed_orgs(), branches=[], rules=rules
    )


@page()
async def update(ctx: Ctx) -> Response:
    rule_id = ctx.path_id("rule_id")
    params = None
    days = ctx.field("days_before")
    if ctx.field("kind") == ReminderKind.COMMITMENT_DUE.value and days:
        n = ascii_int(days, hi=10_000)
        params = {"days_before": n if n is not None else days}
    await reminders.set_rule(
        ctx.db,
        ctx.me,
        rule_id,
        enabled=ctx.field("enabled") == "1",
        cron=ctx.field("cron") or None,
        params=params,
        now=ctx.now,
    )
    await ctx.db.commit()
    ctx.flash("ok", "web.reminders.saved")
    return ctx.redirect(ctx.back("/reminders"))


routes = [
    Route("/reminders", index, methods=["GET"]),
    Route("/reminders/{rule_id:int}", update, methods=["POST"]),
]
