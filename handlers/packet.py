"""/packet [year]: the year's packet for a secretary, the 述职评议 sheet for committee staff.

A secretary gets the branch's 述职报告 draft (.docx, from the pack's outline) and its evidence
annex (.xlsx), with a short summary and, once the committee has released it, the committee's
rating of the branch leader. Staff get the 评议 sheet of their subtree (text and .xlsx) with a
button per branch to rate its leader (好 / 较好 / 一般 / 差); after a rating the next text message
becomes its comment (/cancel leaves it without one). A button releases the year's ratings to the
secretaries. Buttons carry the org and the year, so an old sheet rates what it showed.

Files are built from the store (storage.packet, storage.leader_reviews) and drawn by
storage.packet_files; nothing here computes a figure.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, tzinfo

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts
from content.pack import Pack
from handlers.kit.forms import pack_messages
from handlers.kit.sending import File, send_files, send_texts
from handlers.manage import local_time, managers, message_of, secretary_branch, short, staff_root
from storage import leader_reviews, packet, sent_packets
from storage.access import Actor, get_org
from storage.leader_reviews import RATINGS, ReviewSheet

router = Router(name=__name__)
router.message.filter(managers())
router.callback_query.filter(managers())

MESSAGE_MAX = 3800


class PacketRate(CallbackData, prefix="pkr"):
    org_id: int
    year: int
    rating: str = ""  # "": show the ratings to choose from


class PacketRelease(CallbackData, prefix="pkl"):
    org_id: int
    year: int


class PacketSubmit(CallbackData, prefix="pks"):
    org_id: int
    year: int


class PacketFlow(StatesGroup):
    comment = State()


def parse_year(args: str | None, today: date) -> int | None:
    """ "2026" or nothing (this year); None for anything else."""
    text = (args or "").strip().removesuffix("年")
    if not text:
        return today.year
    if text.isdigit() and len(text) == 4:
        year = int(text)
        if leader_reviews.MIN_YEAR <= year <= today.year:
            return year
    return None


@router.message(Command("packet"))
async def cmd_packet(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    today: date,
    tz: tzinfo,
    state: FSMContext,
) -> None:
    await state.clear()
    year = parse_year(command.args, today)
    if year is None:
        await message.answer(_("packet_chat.bad_year", this_year=today.year))
        return
    root = staff_root(actor)
    if root is not None:
        sheet = await leader_reviews.review_sheet(session, actor, root, year, today, pack)
        await _send_sheet(message, sheet, _, pack)
        return
    branch = secretary_branch(actor)
    if branch is None:
        await message.answer(_("manage_chat.no_branches"))
        return
    opened = await sent_packets.open_packet(session, actor, branch, year, today, pack)
    data = opened.data
    review = await leader_reviews.released_review(session, actor, branch, year)
    r = data.report
    lines = [
        _("packet_chat.title", org=data.org_name, year=year),
        _(
            "packet_chat.figures",
            hours=packet.fmt_hours(r.minutes),
            participants=r.participants,
            members=r.members_total,
            made=r.commitments.made,
            fulfilled=r.commitments.fulfilled,
            services=len(data.services),
        ),
        _("packet_chat.rating", rating=_(f"review.rating.{review.rating}"))
        if review
        else _("packet_chat.not_rated"),
    ]
    if review and review.comment:
        lines.append(_("packet_chat.comment", comment=review.comment))
    lines += frozen_lines(_, opened, pack, tz)
    lines.append(_("packet_chat.draft_hint"))
    button = None
    if opened.submission is None or opened.changes:
        key = "packet_chat.resubmit_button" if opened.submission else "packet_chat.submit_button"
        button = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=_(key), callback_data=PacketSubmit(org_id=branch, year=year).pack()
                    )
                ]
            ]
        )
    await message.answer("\n".join(lines), reply_markup=button)
    rating = _(f"review.rating.{review.rating}") if review else None
    # Drawing the files takes CPU time: off the event loop, so other chats are not held up.
    # (python-docx and openpyxl are imported only when a packet is made.)
    from storage import packet_files

    draft = await asyncio.to_thread(packet_files.report_docx, data, pack, _.locale, rating)
    annex = await asyncio.to_thread(packet_files.annex_xlsx, data, pack, _.locale)
    files = [
        File(_.plain("files.packet_draft", year=year), draft, _("packet_chat.file_draft", year=year)),
        File(_.plain("files.packet_annex", year=year), annex, _("packet_chat.file_annex", year=year)),
    ]
    if (sent := opened.submission) is not None:
        files.append(File(sent.file_name, bytes(sent.file_bytes), _("packet_chat.file_submitted", year=year)))
    await send_files(message, *files)


def frozen_lines(_: Texts, opened: sent_packets.OpenedPacket, pack: Pack, tz: tzinfo) -> list[str]:
    """When the packet was submitted, and what a fresh run now gives differently."""
    sent = opened.submission
    if sent is None:
        return []
    lines = [_("packet.frozen", when=local_time(sent.submitted_at, tz), sha=sent.sha256[:16])]
    if not opened.changes:
        return [*lines, _("packet.unchanged")]
    lines.append(_("packet.changed"))
    for change in opened.changes:
        label, then, now = sent_packets.describe(change, pack, _.locale)
        lines.append(_("packet.change_line", label=label, then=then, now=now))
    return lines


def _sheet_lines(sheet: ReviewSheet, _: Texts, pack: Pack) -> list[str]:
    titles = {cl.id: cl.title.get(_.locale) for cl in pack.checklists}
    out = []
    for n, row in enumerate(sheet.rows, start=1):
        b = row.figures
        scores = " · ".join(
            _("packet_chat.score", title=titles.get(cid, cid), score=f"{score:g}")
            for cid, (_period, score) in row.scores.items()
        )
        out.append(
            _(
                "packet_chat.sheet_line",
                n=n,
                name=row.name,
                hours=packet.fmt_hours(b.minutes),
                participants=b.participants,
                members=b.members_total,
                made=b.commitments.made,
                fulfilled=b.commitments.fulfilled,
                scores=scores or _("reports_chat.not_assessed"),
                submitted=_("packet_chat.submitted")
                if row.packet_submitted
                else _("packet_chat.not_submitted"),
                rating=_(f"review.rating.{row.rating}") if row.rating else _("packet_chat.unrated"),
            )
        )
    return out


def _sheet_keyboard(sheet: ReviewSheet, _: Texts) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=_("packet_chat.rate_button", name=short(row.name)),
                callback_data=PacketRate(org_id=row.org_id, year=sheet.year).pack(),
            )
        ]
        for row in sheet.rows
    ]
    rows.append(
        [
            InlineKeyboardButton(
                text=_("packet_chat.release_button"),
                callback_data=PacketRelease(org_id=sheet.org_id, year=sheet.year).pack(),
            )
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def _send_sheet(message: Message, sheet: ReviewSheet, _: Texts, pack: Pack) -> None:
    head = _(
        "packet_chat.sheet_title",
        org=sheet.org_name,
        year=sheet.year,
        rated=sheet.rated,
        branches=len(sheet.rows),
    )
    chunks = pack_messages([head, *_sheet_lines(sheet, _, pack)], MESSAGE_MAX, "\n")
    await send_texts(message, chunks, _sheet_keyboard(sheet, _) if sheet.rows else None)
    from storage import packet_files  # openpyxl is imported only when a sheet is made

    data = await asyncio.to_thread(packet_files.review_sheet_xlsx, sheet, pack, _.locale)
    caption = _("packet_chat.file_sheet", org=sheet.org_name, year=sheet.year)
    await send_files(message, File(_.plain("files.review_sheet", year=sheet.year), data, caption))


@router.callback_query(PacketRate.filter(F.rating == ""))
async def on_rate_pick(query: CallbackQuery, callback_data: PacketRate, _: Texts) -> None:
    cd = callback_data
    msg = message_of(query)
    await query.answer()
    if msg is None:
        return
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_(f"review.rating.{r}"),
                    callback_data=PacketRate(org_id=cd.org_id, year=cd.year, rating=r).pack(),
                )
                for r in RATINGS
            ]
        ]
    )
    await msg.answer(_("packet_chat.pick_rating", year=cd.year), reply_markup=keyboard)


@router.callback_query(PacketRate.filter(F.rating != ""))
async def on_rate(
    query: CallbackQuery,
    callback_data: PacketRate,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    now: datetime,
    state: FSMContext,
) -> None:
    cd = callback_data
    row = await leader_reviews.rate_leader(session, actor, cd.org_id, cd.year, cd.rating, None, now=now)
    await session.commit()
    await state.set_state(PacketFlow.comment)
    await state.set_data({"org_id": cd.org_id, "year": cd.year, "rating": row.rating})
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.answer(_("packet_chat.rated", rating=_(f"review.rating.{row.rating}")))


@router.message(PacketFlow.comment, F.text, ~F.text.startswith("/"))
async def on_comment(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    now: datetime,
    state: FSMContext,
) -> None:
    data = await state.get_data()
    row = await leader_reviews.rate_leader(
        session, actor, int(data["org_id"]), int(data["year"]), str(data["rating"]), message.text, now=now
    )
    await state.clear()
    await session.commit()
    await message.answer(_("packet_chat.comment_saved", rating=_(f"review.rating.{row.rating}")))


@router.callback_query(PacketRelease.filter())
async def on_release(
    query: CallbackQuery,
    callback_data: PacketRelease,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    now: datetime,
) -> None:
    cd = callback_data
    count = await leader_reviews.release_reviews(session, actor, cd.org_id, cd.year, now=now)
    await session.commit()
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.answer(_("packet_chat.released", count=count, year=cd.year))


@router.callback_query(PacketSubmit.filter())
async def on_submit(
    query: CallbackQuery,
    callback_data: PacketSubmit,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    now: datetime,
) -> None:
    cd = callback_data
    sent = await sent_packets.submit_packet(
        session, actor, cd.org_id, cd.year, now=now, pack=pack, locale=_.locale
    )
    org = await get_org(session, cd.org_id)
    parent = await get_org(session, org.parent_id) if org.parent_id is not None else None
    await session.commit()
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.answer(
            _("packet_chat.submitted_now", to=parent.name if parent else "—", sha=sent.sha256[:16])
        )
