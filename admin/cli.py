"""Admin commands for the `branchbot` command line: organizations, invites, roster import and
volunteer record exports.

The command line acts as the system operator (`storage.audit.system_actor`: an admin everywhere,
audited with via="cli"). Each command opens its own engine from the settings, runs in one
transaction and commits only if it succeeded. A user's mistake prints one clear line and
exits 1, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import get_settings
from content.i18n import texts
from content.pack import Pack, get_pack
from storage.db import make_engine, make_sessionmaker, utcnow
from storage.errors import Refused
from storage.models import Org, OrgKind, Role
from storage.validation import ascii_int, control_chars, strict_day

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[int]]


def _t(key: str, **params: Any) -> str:
    return texts(get_settings().default_locale).plain(key, **params)


def _local(at: datetime) -> str:
    """A time as people at the branches read it: in the configured time zone, which is named."""
    tz = get_settings().tz
    return f"{at.astimezone(tz).strftime('%Y-%m-%d %H:%M')} ({tz.key})"


def _pack() -> Pack:
    """The configured content pack (CONTENT_PACK), which the store operations take as a parameter."""
    return get_pack(get_settings().content_pack)


def _fail(key: str, **params: Any) -> int:
    print(_t(key, **params), file=sys.stderr)
    return 1


# ---- strict arguments: argparse answers a bad one with the usage and one line (exit 2) ----------


def cli_id(value: str) -> int:
    """An id: ASCII digits within an id's range (argparse's int takes "٣" and 23 digits)."""
    n = ascii_int(value)
    if n is None:
        raise argparse.ArgumentTypeError(_t("error.invalid", field=value[:30]))
    return n


def cli_count(value: str) -> int:
    """A small whole number (uses, days): ASCII digits; the store checks the range."""
    n = ascii_int(value, hi=1_000_000)
    if n is None:
        raise argparse.ArgumentTypeError(_t("error.invalid", field=value[:30]))
    return n


def cli_text(value: str) -> str:
    """Free text (a name): no control characters."""
    if control_chars(value, allow_newlines=False):
        raise argparse.ArgumentTypeError(_t("error.control_chars"))
    return value


def _progress(desc: str) -> Callable[[list[T]], Iterable[T]]:
    def wrap(items: list[T]) -> Iterable[T]:
        from tqdm import tqdm

        # disable=None: a bar on a terminal, silence when the output is a file or a pipe.
        return tqdm(items, desc=desc, file=sys.stderr, disable=None, unit="")

    return wrap


async def _run(work: Work) -> int:
    """One engine, one session, one transaction: commit on 0, roll back on anything else."""
    engine = make_engine(get_settings().database_url)
    try:
        async with make_sessionmaker(engine)() as s:
            try:
                code = await work(s)
            except Refused as e:
                await s.rollback()
                return _fail(e.key, **e.params)
            if code == 0:
                await s.commit()
            else:
                await s.rollback()
            return code
    finally:
        await engine.dispose()


# ---- org ------------------------------------------------------------------------------------


async def _org_add(args: argparse.Namespace) -> int:
    from storage.orgs import add_org_system

    async def work(s: AsyncSession) -> int:
        org = await add_org_system(
            s, args.name, args.kind, args.parent, args.category, args.timezone, pack=_pack()
        )
        print(_t("org.added", id=org.id, name=org.name, kind=_t(f"org.kind_{org.kind.value}")))
        return 0

    return await _run(work)


async def _org_list(args: argparse.Namespace) -> int:
    from content.pack import get_pack
    from storage.audit import system_actor
    from storage.orgs import org_tree

    settings = get_settings()
    pack = get_pack(settings.content_pack)

    def category_name(category_id: str) -> str:
        # The pack's name for the category, in the default locale; an id the pack no longer
        # knows is shown as it is rather than hidden.
        found = pack.category(category_id)
        return found.title.get(settings.default_locale) if found else category_id

    async def work(s: AsyncSession) -> int:
        roots = await org_tree(s, system_actor())
        if not roots:
            print(_t("org.tree_empty"))
        for root in roots:
            for depth, org in root.walk():
                kind = _t(f"org.kind_{org.kind.value}")
                line = (
                    _t(
                        "org.line_category",
                        id=org.id,
                        name=org.name,
                        kind=kind,
                        category=category_name(org.category),
                    )
                    if org.category
                    else _t("org.line", id=org.id, name=org.name, kind=kind)
                )
                print(f"{'    ' * depth}{line}")
        return 0

    return await _run(work)


# ---- invite ---------------------------------------------------------------------------------


async def _invite_create(args: argparse.Namespace) -> int:
    from storage.audit import system_actor
    from storage.invites import create_invite, deep_link

    async def work(s: AsyncSession) -> int:
        inv = await create_invite(s, system_actor(), args.org, args.role, args.uses, args.days, now=utcnow())
        settings = get_settings()
        link = deep_link(settings.bot_username, inv.code)
        expires = _local(inv.expires_at)
        print(_t("invite.created", code=inv.code, link=link, uses=inv.uses_left, expires=expires))
        return 0

    return await _run(work)


# ---- member import --------------------------------------------------------------------------


async def _member_import(args: argparse.Namespace) -> int:
    from storage.audit import system_actor
    from storage.invites import deep_link
    from storage.people import RosterRejected, import_roster, invite_sheet
    from storage.roster import MAX_BYTES, parse_roster_off_loop

    path = Path(args.file)
    try:
        if (await asyncio.to_thread(path.stat)).st_size > MAX_BYTES:
            return _fail("roster.too_big", mb=MAX_BYTES // (1024 * 1024))
        data = await asyncio.to_thread(path.read_bytes)
    except OSError:
        return _fail("roster.cannot_read", path=str(path))
    try:
        # Before the transaction: on SQLite the bot must not wait for the parse.
        parsed = await parse_roster_off_loop(data, path.name)
    except Refused as e:
        return _fail(e.key, **e.params)

    async def work(s: AsyncSession) -> int:
        try:
            imported = await import_roster(
                s,
                system_actor(),
                args.org,
                parsed,
                path.name,
                now=utcnow(),
                days=args.days,
                track=_progress(path.name),
            )
        except RosterRejected as e:
            for p in e.preview.sorted_problems():
                print(_t("roster.row", line=p.line, reason=_t(p.key, **p.params)))
            return _fail(e.key, **e.params)
        settings = get_settings()
        print(_t("roster.preview_ok", count=len(imported)))
        if args.sheet:
            branch = await s.get(Org, args.org)
            sheet = invite_sheet(
                imported,
                settings.bot_username,
                locale=settings.default_locale,
                org_name=branch.name if branch else "",
            )
            out = Path(args.sheet)
            try:
                await asyncio.to_thread(out.write_bytes, sheet)
            except OSError:
                return _fail("records.cannot_write", path=str(out))
            print(_t("roster.sheet_written", path=str(out)))
        else:
            # Without a sheet the links are printed: each is the only way that person can join.
            print(_t("roster.links_header"))
            for i in imported:
                role = _t(f"people.role_{i.role.value}")
                print(f"{i.name}\t{role}\t{deep_link(settings.bot_username, i.code)}")
        expires = _local(imported[0].expires_at) if imported else "—"
        print(_t("roster.imported_until", count=len(imported), expires=expires))
        return 0

    return await _run(work)


# ---- export ---------------------------------------------------------------------------------


def _date(value: str) -> date | None:
    return strict_day(value)


async def _export(args: argparse.Namespace) -> int:
    from storage.audit import system_actor
    from storage.exports import export_service_records

    start, end = _date(args.date_from), _date(args.date_to)
    if start is None:
        return _fail("records.bad_date", value=args.date_from)
    if end is None:
        return _fail("records.bad_date", value=args.date_to)
    out = Path(args.out or f"service-records-{args.org}-{start}-{end}.{args.format}")

    async def work(s: AsyncSession) -> int:
        counted: list[int] = []

        def track(rows: list[Any]) -> Iterable[Any]:
            counted.append(len(rows))
            return _progress(out.name)(rows)

        data = await export_service_records(
            s,
            system_actor(),
            args.org,
            start,
            end,
            args.format,
            include_all=args.all,
            track=track,
            pack=_pack(),
        )
        try:
            await asyncio.to_thread(out.write_bytes, data)
        except OSError:
            return _fail("records.cannot_write", path=str(out))
        print(_t("records.written", rows=counted[0] if counted else 0, path=str(out)))
        return 0

    return await _run(work)


# ---- packet ---------------------------------------------------------------------------------


async def _packet(args: argparse.Namespace) -> int:
    """年检 evidence: each branch's one-page summary for the year, as .docx and .pdf. For a
    committee, every branch of its subtree, with a progress bar."""
    from content.pack import get_pack
    from storage import leader_reviews, packet, packet_files
    from storage.access import get_org
    from storage.audit import record, system_actor

    settings = get_settings()
    locale = settings.default_locale
    out = Path(args.out or ".")
    today = utcnow().astimezone(settings.tz).date()
    year = args.year or today.year
    formats = [f for f in args.format.split(",") if f]
    if not formats or any(f not in ("docx", "pdf") for f in formats):
        return _fail("packet.cli.bad_format", value=args.format)

    async def work(s: AsyncSession) -> int:
        actor = system_actor()
        leader_reviews.check_year(year)
        org = await get_org(s, args.org)
        branches = list(
            await s.scalars(
                select(Org.id)
                .where(Org.path.like(org.path + "%"), Org.kind == OrgKind.BRANCH)
                .order_by(Org.path)
            )
        )
        if not branches:
            return _fail("packet.cli.no_branches", org=org.name)
        pack = get_pack(settings.content_pack)
        try:
            await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
        except OSError:
            return _fail("records.cannot_write", path=str(out))
        written = 0
        for branch_id in _progress(_t("packet.cli.progress", year=year))(branches):
            data = await packet.branch_packet(s, actor, branch_id, year, today, pack)
            review = await leader_reviews.released_review(s, actor, branch_id, year)
            rating = _t(f"review.rating.{review.rating}") if review else None
            for fmt in formats:
                render = packet_files.inspection_docx if fmt == "docx" else packet_files.inspection_pdf
                blob = await asyncio.to_thread(render, data, pack, locale, rating)
                path = out / f"inspection-{year}-{branch_id}.{fmt}"
                try:
                    await asyncio.to_thread(path.write_bytes, blob)
                except OSError:
                    return _fail("records.cannot_write", path=str(path))
                written += 1
            await record(
                s, actor, "packet.export", org_id=branch_id, detail={"year": year, "kind": "inspection"}
            )
        print(_t("packet.cli.written", files=written, branches=len(branches), path=str(out)))
        return 0

    return await _run(work)


# ---- registration ---------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    org = sub.add_parser("org", help="organizations (committees and branches)")
    osub = org.add_subparsers(dest="org_cmd", required=True)
    add = osub.add_parser("add", help="add an organization")
    add.add_argument("name", type=cli_text)
    add.add_argument("--kind", required=True, choices=[k.value for k in OrgKind])
    add.add_argument("--parent", type=cli_id, default=None, help="id of the parent organization")
    add.add_argument(
        "--category", type=cli_text, default=None, help="organization category id from the content pack"
    )
    add.add_argument("--timezone", type=cli_text, default=None, help="IANA time zone (default: the parent's)")
    add.set_defaults(func=_org_add)
    lst = osub.add_parser("list", help="print the organization tree")
    lst.set_defaults(func=_org_list)

    inv = sub.add_parser("invite", help="invite links")
    isub = inv.add_subparsers(dest="invite_cmd", required=True)
    create = isub.add_parser("create", help="create an invite link")
    create.add_argument("--org", type=cli_id, required=True)
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--uses", type=cli_count, default=1, help="how many people may join with it (1-1000)")
    create.add_argument("--days", type=cli_count, default=7, help="days until it expires (1-365)")
    create.set_defaults(func=_invite_create)

    member = sub.add_parser("member", help="branch members")
    msub = member.add_subparsers(dest="member_cmd", required=True)
    imp = msub.add_parser("import", help="import a roster (.xlsx or .csv) into a branch")
    imp.add_argument("file")
    imp.add_argument("--org", type=cli_id, required=True)
    imp.add_argument("--sheet", default=None, help="write the printable invite sheet (.xlsx) here")
    imp.add_argument("--days", type=cli_count, default=30, help="days the personal links stay valid")
    imp.set_defaults(func=_member_import)

    exp = sub.add_parser("export", help="export volunteer service records")
    exp.add_argument("--org", type=cli_id, required=True)
    exp.add_argument("--from", dest="date_from", required=True, metavar="YYYY-MM-DD")
    exp.add_argument("--to", dest="date_to", required=True, metavar="YYYY-MM-DD")
    exp.add_argument("--format", choices=["xlsx", "csv"], default="xlsx")
    exp.add_argument("--out", default=None, help="output file (default: service-records-<org>-<from>-<to>)")
    exp.add_argument("--all", action="store_true", help="include pending and rejected entries")
    exp.set_defaults(func=_export)

    pk = sub.add_parser(
        "packet", help="年检 evidence: each branch's one-page summary of the year (.docx, .pdf)"
    )
    pk.add_argument("--org", type=int, required=True, help="a branch, or a committee for its whole subtree")
    pk.add_argument("--year", type=int, default=None, help="the calendar year (default: this year)")
    pk.add_argument("--out", default=None, help="folder to write the files into (default: here)")
    pk.add_argument("--format", default="docx,pdf", help="docx, pdf or both (default: docx,pdf)")
    pk.set_defaults(func=_packet)
