"""Service entries: filter, approve or reject in bulk (with a reason), export the volunteer records,
and each entry's evidence photo (served only to those who may see the entry).

Possible duplicates are marked with a link to the other entry (the store's rule,
`service_log.possible_duplicates`); photos are read from the evidence folder named by the
settings, after `evidence.photo_for_viewer` has checked the viewer's scope."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from starlette.responses import Response
from starlette.routing import Route

from admin.web import files
from admin.web.context import Ctx, page
from storage import evidence, exports, service_log
from storage.entry_search import entry_filter, search_entries
from storage.errors import Invalid, NotFound
from storage.evidence import EvidenceStore
from storage.review_notices import enqueue_review_notices
from storage.validation import ascii_int


@page()
async def index(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    status = ctx.arg("status", "pending")
    f = entry_filter(
        org_id=org.id,
        status=None if status == "all" else status,
        date_from=ctx.day_arg("from"),
        date_to=ctx.day_arg("to"),
        q=ctx.arg("q"),
        person_id=ctx.int_arg("person"),
        page=ctx.page_arg(),
    )
    result = await search_entries(ctx.db, ctx.me, f)
    duplicates = await service_log.possible_duplicates(ctx.db, [r.entry for r in result.rows])
    await ctx.db.commit()  # the audit row of this view
    keep = {
        "org": org.id,
        "status": status,
        "from": ctx.arg("from"),
        "to": ctx.arg("to"),
        "q": f.q or "",
        "person": f.person_id or "",
    }
    today = ctx.today
    return await ctx.render(
        "entries.html",
        org=org,
        orgs=await ctx.managed_orgs(),
        entries=result,
        duplicates=duplicates,
        f=f,
        status=status,
        keep=keep,
        base="/entries?" + urlencode({k: v for k, v in keep.items() if v}),
        actions={a.id: a.title.get(ctx.locale) for a in ctx.state.pack.actions},
        selectable=any(r.reviewable for r in result.rows),
        export_from=ctx.arg("from") or date(today.year, 1, 1).isoformat(),
        export_to=ctx.arg("to") or today.isoformat(),
    )


@page()
async def review(ctx: Ctx) -> Response:
    ids = [n for n in (ascii_int(i) for i in ctx.fields("ids")) if n is not None]
    decision = ctx.field("decision")
    if decision not in ("approve", "reject"):
        raise Invalid("error.invalid", field="decision")
    if not ids:
        ctx.flash("error", "web.entries.none_selected")
        return ctx.redirect(ctx.back("/entries"))
    batch = await service_log.review_many(
        ctx.db, ctx.me, ids, decision == "approve", ctx.field("reason") or None, ctx.now
    )
    queued = await enqueue_review_notices(ctx.db, batch.outcomes, now=ctx.now, pack=ctx.state.pack)
    await ctx.db.commit()
    if queued:
        await ctx.state.wake_delivery()
    key = "web.entries.approved" if decision == "approve" else "web.entries.rejected"
    ctx.flash("ok", key, done=batch.done)
    if batch.skipped:
        ctx.flash("info", "web.entries.skipped", skipped=batch.skipped)
    return ctx.redirect(ctx.back("/entries"))


@page()
async def export(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    fmt = ctx.arg("fmt", "xlsx")
    if fmt not in exports.FORMATS:
        raise NotFound()
    start, end = ctx.day_arg("from"), ctx.day_arg("to")
    today = ctx.today
    start = start or date(today.year, 1, 1)
    end = end or today
    data = await exports.export_service_records(
        ctx.db,
        ctx.me,
        org.id,
        start,
        end,
        fmt,
        include_all=ctx.arg("all") == "1",
        locale=ctx.locale,
        pack=ctx.state.pack,
    )
    await ctx.db.commit()  # the audit row
    name = f"{ctx._.plain('records.sheet_title')}-{start.isoformat()}-{end.isoformat()}.{fmt}"
    return files.download(data, name, fmt)


@page()
async def photo(ctx: Ctx) -> Response:
    """The evidence photo of one entry: scope first, then the file."""
    found = await evidence.photo_for_viewer(ctx.db, ctx.me, ctx.path_id("entry_id"))
    await ctx.db.commit()
    got = EvidenceStore(ctx.state.settings.evidence_dir).read(found.key)
    if got is None:
        raise NotFound()
    data, mime = got
    return Response(data, media_type=mime, headers={"Content-Disposition": "inline"})


routes = [
    Route("/entries", index, methods=["GET"]),
    Route("/entries/review", review, methods=["POST"]),
    Route("/entries/export", export, methods=["GET"]),
    Route("/evidence/{entry_id:int}", photo, methods=["GET"]),
]
