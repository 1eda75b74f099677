"""Notices: compose and send (or schedule) to a branch or a subtree, follow delivery and
acknowledgement per recipient, nudge those who have not acknowledged, cancel a scheduled one."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from starlette.responses import Response
from starlette.routing import Route

from admin.web.context import ABOVE, Ctx, page
from storage import notices
from storage.errors import Invalid
from storage.models import Audience, Org, OrgKind
from storage.notice_tracking import notice_detail
from storage.validation import DAY_MAX, DAY_MIN


def _audiences(ctx: Ctx, org: Org) -> list[Audience]:
    if org.kind is OrgKind.BRANCH:
        return [Audience.BRANCH_MEMBERS]
    if ctx.me.manages(org, ABOVE):
        return [Audience.SUBTREE_SECRETARIES, Audience.SUBTREE_ALL]
    return []


def _when(ctx: Ctx, raw: str) -> datetime | None:
    if not raw:
        return None
    try:
        local = datetime.fromisoformat(raw)
        if local.tzinfo is None:
            local = local.replace(tzinfo=ctx.state.settings.tz)
        # In UTC, as the store keeps it: 9999-12-31T23:59-14:00 is past year 9999 there.
        at = local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Invalid("web.notices.bad_time") from None
    if not (DAY_MIN <= at.date() <= DAY_MAX) or not raw.isascii():
        raise Invalid("web.notices.bad_time")
    return at


@page()
async def index(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    rows = await notices.list_notices(ctx.db, ctx.me, org.id, limit=50)
    return await ctx.render(
        "notices.html",
        org=org,
        orgs=await ctx.managed_orgs(),
        rows=rows,
        audiences=_audiences(ctx, org),
        nonce=secrets.token_urlsafe(12),
        max_len=notices.TEXT_MAX,
    )


@page()
async def create(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    nonce = ctx.field("nonce")
    notice = await notices.create_notice(
        ctx.db,
        ctx.me,
        org.id,
        ctx.field("audience"),
        ctx.field("text"),
        scheduled_at=_when(ctx, ctx.field("when")),
        now=ctx.now,
        # A second click on "send" (or a reload) finds the same notice instead of a copy.
        source=f"web:{nonce}" if nonce and len(nonce) <= 40 else None,
    )
    queued = await notices.send_notice(ctx.db, ctx.me, notice.id, now=ctx.now)
    await ctx.db.commit()
    if queued:
        await ctx.state.wake_delivery()
    if notice.status.value == "scheduled":
        ctx.flash(
            "ok",
            "web.notices.scheduled",
            when=notice.scheduled_at.astimezone(ctx.state.settings.tz).strftime("%Y-%m-%d %H:%M")
            if notice.scheduled_at
            else "",
        )
    else:
        ctx.flash("ok", "web.notices.sent", count=queued)
    return ctx.redirect(f"/notices/{notice.id}")


@page()
async def detail(ctx: Ctx) -> Response:
    d = await notice_detail(ctx.db, ctx.me, ctx.path_id("notice_id"))
    return await ctx.render("notice.html", d=d, n=d.notice)


@page()
async def nudge(ctx: Ctx) -> Response:
    notice_id = ctx.path_id("notice_id")
    queued = await notices.nudge(ctx.db, ctx.me, notice_id, now=ctx.now)
    await ctx.db.commit()
    if queued:
        await ctx.state.wake_delivery()
        ctx.flash("ok", "web.notices.nudged", count=queued)
    else:
        ctx.flash("info", "web.notices.nobody_to_nudge")
    return ctx.redirect(f"/notices/{notice_id}")


@page()
async def cancel(ctx: Ctx) -> Response:
    notice_id = ctx.path_id("notice_id")
    await notices.cancel_notice(ctx.db, ctx.me, notice_id)
    await ctx.db.commit()
    ctx.flash("ok", "web.notices.cancelled")
    return ctx.redirect(f"/notices/{notice_id}")


routes = [
    Route("/notices", index, methods=["GET"]),
    Route("/notices", create, methods=["POST"]),
    Route("/notices/{notice_id:int}", detail, methods=["GET"]),
    Route("/notices/{notice_id:int}/nudge", nudge, methods=["POST"]),
    Route("/notices/{notice_id:int}/cancel", cancel, methods=["POST"]),
]
