"""Members: search, one person's page, export, and roster import (.xlsx/.csv) with a preview of
every bad row; nothing is imported unless every row is good."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from starlette.responses import Response
from starlette.routing import Route

from admin.web import files
from admin.web.context import Ctx, PageError, page
from storage import audit, people, reports, service_log
from storage.entry_search import entry_filter, search_entries
from storage.errors import NotFound, Refused
from storage.invites import may_invite
from storage.member_search import MAX_PER_PAGE, member_profile, people_filter, search_people
from storage.models import Org, OrgKind, Role
from storage.roster import MAX_BYTES, parse_roster_off_loop

UPLOAD_LIMIT = MAX_BYTES + 256 * 1024  # the file plus the form around it


@page()
async def index(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    f = people_filter(org_id=org.id, q=ctx.arg("q"), role=ctx.arg("role"), page=ctx.arg("page") or 1)
    result = await search_people(ctx.db, ctx.me, f)
    await ctx.db.commit()  # the audit row of this view
    keep = {"org": org.id, "q": f.q or "", "role": f.role.value if f.role else ""}
    return await ctx.render(
        "members.html",
        org=org,
        orgs=await ctx.managed_orgs(),
        result=result,
        f=f,
        base="/members?" + urlencode({k: v for k, v in keep.items() if v}),
        can_import=org.kind is OrgKind.BRANCH and may_invite(ctx.me, org, Role.MEMBER),
    )


@page()
async def person(ctx: Ctx) -> Response:
    person_id = ctx.path_id("person_id")
    profile = await member_profile(ctx.db, ctx.me, person_id)
    today = ctx.today
    year = date(today.year, 1, 1)
    summary = await reports.person_report(ctx.db, ctx.me, person_id, year, today, today, ctx.state.pack)
    entries = await search_entries(ctx.db, ctx.me, entry_filter(person_id=person_id, per_page=20))
    duplicates = await service_log.possible_duplicates(ctx.db, [r.entry for r in entries.rows])
    await ctx.db.commit()
    return await ctx.render(
        "person.html",
        profile=profile,
        summary=summary,
        entries=entries,
        duplicates=duplicates,
        actions={a.id: a.title.get(ctx.locale) for a in ctx.state.pack.actions},
        year=today.year,
    )


@page()
async def export(ctx: Ctx) -> Response:
    org = await ctx.pick_org()
    fmt = ctx.arg("fmt", "xlsx")
    if fmt not in ("xlsx", "csv"):
        raise NotFound()
    rows = []
    page_no = 1
    while True:  # page through the store's search: a roster is a few hundred rows at most
        result = await search_people(
            ctx.db, ctx.me, people_filter(org_id=org.id, page=page_no, per_page=MAX_PER_PAGE)
        )
        rows.extend(result.rows)
        if page_no >= result.pages:
            break
        page_no += 1
    t = ctx._.plain
    tz = ctx.state.settings.tz
    headers = [
        t("web.members.name"),
        t("web.branch"),
        t("web.members.role"),
        t("web.members.note"),
        t("web.members.joined"),
        t("web.members.on_telegram"),
        t("web.members.last_active"),
    ]
    table = [
        [
            r.name,
            r.org_name,
            t(f"people.role_{r.role.value}"),
            r.note or "",
            r.joined_at.astimezone(tz).date(),
            t("web.yes") if r.on_telegram else t("web.no"),
            r.last_activity.astimezone(tz).date() if r.last_activity else None,
        ]
        for r in rows
    ]
    data = (
        files.xlsx(
            [(t("web.nav.members"), headers, table)],
            t=t,
            org=org.name,
            period=t("print.as_of", day=ctx.today.isoformat()),
        )
        if fmt == "xlsx"
        else files.csv_bytes(headers, table)
    )
    await audit.record(
        ctx.db, ctx.me, "members.export", org_id=org.id, detail={"rows": len(rows), "format": fmt}
    )
    await ctx.db.commit()
    return files.download(data, f"{t('web.members.file')}-{ctx.today.isoformat()}.{fmt}", fmt)


# ---- roster import --------------------------------------------------------------------------


async def _import_branch(ctx: Ctx) -> tuple[Org, list[Org]]:
    org = await ctx.pick_org()
    if org.kind is not OrgKind.BRANCH:
        return org, await ctx.branches_under(org)
    if not may_invite(ctx.me, org, Role.MEMBER):
        raise NotFound()
    return org, []


@page()
async def import_form(ctx: Ctx) -> Response:
    org, branches = await _import_branch(ctx)
    return await ctx.render("import.html", org=org, branches=branches, preview=None, error=None, token=None)


@page()
async def template(ctx: Ctx) -> Response:
    t = ctx._.plain
    headers = [t("web.import.col_name"), t("web.import.col_role"), t("web.import.col_note")]
    data = files.xlsx(
        [
            (
                t("web.import.sheet"),
                headers,
                [[t("web.import.example_name"), t("people.role_member"), t("web.import.example_note")]],
            )
        ]
    )
    return files.download(data, f"{t('web.import.template_file')}.xlsx", "xlsx")


@page(form_limit=UPLOAD_LIMIT)
async def import_preview(ctx: Ctx) -> Response:
    org, branches = await _import_branch(ctx)
    if branches:
        raise NotFound()
    upload = ctx.upload("file")
    if upload is None or not upload.filename:
        return await ctx.render(
            "import.html",
            http_status=400,
            org=org,
            branches=[],
            preview=None,
            error=ctx._.plain("web.import.no_file"),
            token=None,
        )
    data = await upload.read(MAX_BYTES + 1)
    # The scope is checked (above); end the read before the parse, which runs in a thread for up
    # to PARSE_SECONDS: the database (on SQLite, its only connection) must not wait for it.
    await ctx.db.commit()
    try:
        parsed = await parse_roster_off_loop(data, upload.filename)
        preview = await people.preview_roster(ctx.db, ctx.me, org.id, parsed)
    except Refused as e:
        if e.key in ("error.forbidden", "error.not_found"):
            raise
        return await ctx.render(
            "import.html",
            http_status=400,
            org=org,
            branches=[],
            preview=None,
            error=ctx._.plain(e.key, **e.params),
            token=None,
        )
    token = None
    if preview.ok:
        token = ctx.state.stash.put(ctx.me.person_id, org.id, data, upload.filename, ctx.now)
    await ctx.db.commit()  # nothing was written: a preview only reads
    return await ctx.render(
        "import.html",
        http_status=200 if preview.ok else 422,
        org=org,
        branches=[],
        preview=preview,
        error=None,
        token=token,
        filename=upload.filename,
    )


@page()
async def import_confirm(ctx: Ctx) -> Response:
    item = ctx.state.stash.get(ctx.field("token"), ctx.me.person_id, ctx.now)
    if item is None or item.result is not None:  # unknown, expired, someone else's, or done already
        raise PageError(410, "web.import.expired")
    try:
        # Parsed before the transaction starts (see import_preview).
        parsed = await parse_roster_off_loop(item.data, item.filename)
    except Refused as e:
        ctx.flash("error", e.key, **e.params)
        return ctx.redirect(f"/members/import?org={item.org_id}")
    try:
        imported = await people.import_roster(ctx.db, ctx.me, item.org_id, parsed, now=ctx.now)
    except people.RosterRejected:
        await ctx.db.rollback()
        ctx.flash("error", "web.import.changed")
        return ctx.redirect(f"/members/import?org={item.org_id}")
    branch = await ctx.db.get(Org, item.org_id)
    sheet = people.invite_sheet(
        imported, ctx.state.settings.bot_username, locale=ctx.locale, org_name=branch.name if branch else ""
    )
    await ctx.db.commit()
    item.result = sheet
    item.data = b""
    ctx.flash("ok", "roster.imported", count=len(imported), days=30)
    return await ctx.render(
        "imported.html",
        imported=imported,
        token=ctx.field("token"),
        org_id=item.org_id,
    )


@page()
async def import_sheet(ctx: Ctx) -> Response:
    item = ctx.state.stash.get(ctx.request.path_params["token"], ctx.me.person_id, ctx.now)
    if item is None or item.result is None:
        raise NotFound()
    return files.download(item.result, f"{ctx._.plain('web.import.sheet_file')}.xlsx", "xlsx")


routes = [
    Route("/members", index, methods=["GET"]),
    Route("/members/export", export, methods=["GET"]),
    Route("/members/import", import_form, methods=["GET"]),
    Route("/members/import", import_preview, methods=["POST"]),
    Route("/members/import/template", template, methods=["GET"]),
    Route("/members/import/confirm", import_confirm, methods=["POST"]),
    Route("/members/import/sheet/{token}", import_sheet, methods=["GET"]),
    Route("/members/{person_id:int}", person, methods=["GET"]),
]
