"""The year's packet on the web: a branch's figures and records with its documents (述职报告 draft,
evidence annex, 年检 summary as .docx and .pdf); a committee's 述职评议 sheet with a rating form
per branch, a release button and the sheet as .xlsx.

Everything is read through the store (storage.packet, storage.leader_reviews) and drawn by
storage.packet_files, the same as the chat's /packet and the CLI's `branchbot packet`.
"""

from __future__ import annotations

import asyncio

from starlette.responses import Response
from starlette.routing import Route

from admin.web import files
from admin.web.context import Ctx, page
from storage import audit, leader_reviews, packet, packet_files, sent_packets, submissions
from storage.errors import NotFound
from storage.models import OrgKind, Role

KINDS = {
    "draft": "docx",
    "annex": "xlsx",
    "inspection": "docx",
    "inspection_pdf": "pdf",
    "sheet": "xlsx",
    "submitted": "zip",
}


def _year(ctx: Ctx) -> int:
    raw = ctx.arg("year") or (ctx.field("year") if ctx.form is not None else "")
    if not raw:
        return ctx.today.year
    if not raw.isdigit() or len(raw) != 4:
        raise NotFound()
    return leader_reviews.check_year(int(raw))


def _org_field(ctx: Ctx) -> int:
    raw = ctx.field("org")
    if not raw.isdigit() or len(raw) > 12:
        raise NotFound()
    return int(raw)


async def _rating_words(ctx: Ctx, org_id: int, year: int) -> str | None:
    review = await leader_reviews.released_review(ctx.db, ctx.me, org_id, year)
    return ctx._.plain(f"review.rating.{review.rating}") if review else None


@page()
async def index(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    year = _year(ctx)
    pack = ctx.state.pack
    if org.kind is OrgKind.BRANCH:
        opened = await sent_packets.open_packet(ctx.db, ctx.me, org.id, year, ctx.today, pack)
        data = opened.data
        review = await leader_reviews.released_review(ctx.db, ctx.me, org.id, year)
        await audit.record(ctx.db, ctx.me, "packet.view", org_id=org.id, detail={"year": year})
        await ctx.db.commit()
        return await ctx.render(
            "packet.html",
            org=org,
            orgs=await ctx.managed_orgs(),
            year=year,
            data=data,
            tables=packet_files.packet_tables(data, pack, ctx.locale),
            review=review,
            sheet=None,
            submission=opened.submission,
            changes=[sent_packets.describe(c, pack, ctx.locale) for c in opened.changes],
            can_submit=ctx.me.manages(org, (Role.SECRETARY,)),
        )
    sheet = await leader_reviews.review_sheet(ctx.db, ctx.me, org.id, year, ctx.today, pack)
    # The sheet names each branch's secretary: a read of personal data on the admin surface.
    await audit.record(ctx.db, ctx.me, "leader_review.view", org_id=org.id, detail={"year": year})
    await ctx.db.commit()
    return await ctx.render(
        "packet.html",
        org=org,
        orgs=await ctx.managed_orgs(),
        year=year,
        data=None,
        sheet=sheet,
        ratings=leader_reviews.RATINGS,
        checklists=[(c.id, c.title.get(ctx.locale)) for c in pack.checklists],
    )


@page()
async def download(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    year = _year(ctx)
    kind = ctx.arg("kind", "draft")
    if kind not in KINDS:
        raise NotFound()
    pack = ctx.state.pack
    if kind == "submitted":
        if org.kind is not OrgKind.BRANCH:
            raise NotFound()
        start, end = packet.year_period(year)
        sent = await submissions.latest(
            ctx.db, ctx.me, kind=sent_packets.KIND, org_id=org.id, period_start=start, period_end=end
        )
        if sent is None:
            raise NotFound()
        data = bytes(sent.file_bytes)
    elif kind == "sheet":
        if org.kind is OrgKind.BRANCH:
            raise NotFound()
        sheet = await leader_reviews.review_sheet(ctx.db, ctx.me, org.id, year, ctx.today, pack)
        data = await asyncio.to_thread(
            packet_files.review_sheet_xlsx, sheet, pack, ctx.locale, ctx.state.settings.timezone
        )
    else:
        if org.kind is not OrgKind.BRANCH:
            raise NotFound()
        got = await packet.branch_packet(ctx.db, ctx.me, org.id, year, ctx.today, pack)
        rating = await _rating_words(ctx, org.id, year)
        # Drawing the file takes CPU time (a PDF about 2 s): off the event loop.
        if kind == "annex":
            data = await asyncio.to_thread(packet_files.annex_xlsx, got, pack, ctx.locale)
        else:
            render = {
                "draft": packet_files.report_docx,
                "inspection": packet_files.inspection_docx,
                "inspection_pdf": packet_files.inspection_pdf,
            }[kind]
            data = await asyncio.to_thread(render, got, pack, ctx.locale, rating)
    fmt = KINDS[kind]
    await audit.record(
        ctx.db, ctx.me, "packet.export", org_id=org.id, detail={"year": year, "kind": kind, "format": fmt}
    )
    await ctx.db.commit()
    name = f"{ctx._.plain(f'packet.file.{kind}', year=year)}-{org.id}.{fmt}"
    return files.download(data, name, fmt)


@page(leader_reviews.REVIEWERS)
async def rate(ctx: Ctx) -> Response:
    org_id = _org_field(ctx)
    year = _year(ctx)
    await leader_reviews.rate_leader(
        ctx.db, ctx.me, org_id, year, ctx.field("rating"), ctx.field("comment") or None, now=ctx.now
    )
    await ctx.db.commit()
    ctx.flash("ok", "web.packet.rated")
    return ctx.redirect(ctx.back("/packet"))


@page(leader_reviews.REVIEWERS)
async def release(ctx: Ctx) -> Response:
    org_id = _org_field(ctx)
    year = _year(ctx)
    count = await leader_reviews.release_reviews(ctx.db, ctx.me, org_id, year, now=ctx.now)
    await ctx.db.commit()
    ctx.flash("ok", "web.packet.released", count=count, year=year)
    return ctx.redirect(ctx.back("/packet"))


@page((Role.SECRETARY,))
async def submit(ctx: Ctx) -> Response:
    org_id = _org_field(ctx)
    year = _year(ctx)
    await sent_packets.submit_packet(
        ctx.db, ctx.me, org_id, year, now=ctx.now, pack=ctx.state.pack, locale=ctx.locale
    )
    await ctx.db.commit()
    ctx.flash("ok", "web.packet.submitted_ok")
    return ctx.redirect(ctx.back("/packet"))


routes = [
    Route("/packet", index, methods=["GET"]),
    Route("/packet/download", download, methods=["GET"]),
    Route("/packet/rate", rate, methods=["POST"]),
    Route("/packet/release", release, methods=["POST"]),
    Route("/packet/submit", submit, methods=["POST"]),
]
