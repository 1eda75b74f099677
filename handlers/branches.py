"""/branches, for committee staff (and admins): an overview of the branches in their subtree for
this year (members, participation, hours, commitments, last assessment, report submitted), the
pairings (共创共建) and exemplars (标杆) on record, and buttons to record new ones.

The overview's "report submitted" is for the whole year, the period /report's "this year" button
submits, so the two agree.
"""

from __future__ import annotations

from datetime import date

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts, period_label
from content.pack import Pack
from handlers.kit.forms import pack_messages
from handlers.kit.wizard import Stale, refused_answer
from handlers.manage import (
    PAIR_WEAK,
    STAFF_ROLES,
    PickBranch,
    branch_keyboard,
    hours,
    managed_branches,
    message_of,
    picker_excludes,
    staff,
    staff_root,
)
from storage import pairings, reports
from storage.access import Actor, get_org, require_manager
from storage.errors import Refused
from storage.reports import SubtreeReport

router = Router(name=__name__)
router.message.filter(staff())
router.callback_query.filter(staff())

MESSAGE_MAX = 3800
PAIR_STRONG, EXEMPLAR = "pairs", "exem"


class BranchesAction(CallbackData, prefix="sba"):
    action: str  # "pair" | "exemplar"


class BranchesFlow(StatesGroup):
    exemplar_title = State()


def overview_chunks(_: Texts, r: SubtreeReport, pack: Pack, year: int) -> list[str]:
    titles = {cl.id: cl.title.get(_.locale) for cl in pack.checklists}
    head = _(
        "branches_chat.title",
        org=r.org_name,
        year=year,
        branches=len(r.branches),
        members=r.members_total,
        participants=r.participants,
        hours=hours(r.minutes),
        submitted=r.submitted,
    )
    lines: list[str] = []
    for n, b in enumerate(r.branches, start=1):
        last = b.last_assessment
        line = _(
            "branches_chat.branch",
            n=n,
            name=b.name,
            members=b.members_total,
            participants=b.participants,
            pct=f"{b.participants / b.members_total:.0%}" if b.members_total else "—",
            hours=hours(b.minutes),
            made=b.commitments.made,
            fulfilled=b.commitments.fulfilled,
            overdue=b.commitments.overdue,
            assessment=(
                _(
                    "reports_chat.score",
                    title=titles.get(last.checklist_id, last.checklist_id),
                    period=period_label(_, last.period),
                    score=f"{last.score:g}",
                )
                if last
                else _("reports_chat.not_assessed")
            ),
            submitted=_("branches_chat.submitted" if b.submitted else "branches_chat.not_submitted"),
        )
        lines.append(line)
    return pack_messages([head, *lines], MESSAGE_MAX)


async def records_text(s: AsyncSession, actor: Actor, _: Texts, year: int) -> str:
    lines = [_("branches_chat.pairings")]
    pairs = await pairings.list_pairings(s, actor)
    lines += [
        _(
            "branches_chat.pairing",
            strong=p.strong_name,
            weak=p.weak_name,
            since=p.pairing.started_on.isoformat(),
        )
        for p in pairs
    ] or [_("branches_chat.none")]
    lines.append(_("branches_chat.exemplars", year=year))
    found = await pairings.list_exemplars(s, actor, year)
    lines += [_("branches_chat.exemplar", org=e.org_name, title=e.exemplar.title) for e in found] or [
        _("branches_chat.none")
    ]
    return "\n".join(lines)


def actions_keyboard(_: Texts) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("branches_chat.record_pairing"), callback_data=BranchesAction(action="pair").pack()
                )
            ],
            [
                InlineKeyboardButton(
                    text=_("branches_chat.record_exemplar"),
                    callback_data=BranchesAction(action="exemplar").pack(),
                )
            ],
        ]
    )


@router.message(Command("branches"))
async def cmd_branches(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    today: date,
    state: FSMContext,
) -> None:
    await state.clear()
    root = staff_root(actor)
    if root is None:  # pragma: no cover - the router's filter lets only staff and admins in
        await message.answer(_("manage_chat.no_branches"))
        return
    year = today.year
    report = await reports.subtree_report(
        session, actor, root, date(year, 1, 1), date(year, 12, 31), today, pack
    )
    for chunk in overview_chunks(_, report, pack, year):
        await message.answer(chunk)
    await message.answer(await records_text(session, actor, _, year), reply_markup=actions_keyboard(_))


async def _pick(
    msg: Message, s: AsyncSession, actor: Actor, _: Texts, key: str, area: str, **params: object
) -> None:
    excluded = picker_excludes(area)
    branches = [o for o in await managed_branches(s, actor, STAFF_ROLES) if o.id != excluded]
    if not branches:
        await msg.answer(_("manage_chat.no_branches"))
        return
    await msg.answer(_(key, **params), reply_markup=branch_keyboard(branches, area, staff_only=True))


@router.callback_query(BranchesAction.filter())
async def on_action_click(
    query: CallbackQuery, callback_data: BranchesAction, session: AsyncSession, actor: Actor, _: Texts
) -> None:
    await query.answer()
    msg = message_of(query)
    if msg is None:
        return
    if callback_data.action == "pair":
        await _pick(msg, session, actor, _, "branches_chat.pick_strong", PAIR_STRONG)
    else:
        await _pick(msg, session, actor, _, "branches_chat.pick_exemplar", EXEMPLAR)


@router.callback_query(PickBranch.filter(F.area == PAIR_STRONG))
async def on_strong_click(
    query: CallbackQuery, callback_data: PickBranch, session: AsyncSession, actor: Actor, _: Texts
) -> None:
    org = await require_manager(session, actor, callback_data.org_id, STAFF_ROLES)
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await _pick(
            msg, session, actor, _, "branches_chat.pick_weak", f"{PAIR_WEAK}{org.id}", strong=org.name
        )


@router.callback_query(PickBranch.filter(F.area.startswith(PAIR_WEAK)))
async def on_weak_click(
    query: CallbackQuery,
    callback_data: PickBranch,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    today: date,
) -> None:
    try:
        strong = int(callback_data.area[len(PAIR_WEAK) :])
    except ValueError:
        raise Stale() from None
    data = pairings.new_pairing(strong_org_id=strong, weak_org_id=callback_data.org_id, started_on=today)
    row = await pairings.record_pairing(session, actor, data)
    a, b = await get_org(session, row.strong_org_id), await get_org(session, row.weak_org_id)
    await session.commit()
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.answer(
            _("branches_chat.paired", strong=a.name, weak=b.name, since=row.started_on.isoformat())
        )


@router.callback_query(PickBranch.filter(F.area == EXEMPLAR))
async def on_exemplar_branch_click(
    query: CallbackQuery,
    callback_data: PickBranch,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    today: date,
    state: FSMContext,
) -> None:
    org = await require_manager(session, actor, callback_data.org_id, STAFF_ROLES)
    await state.set_state(BranchesFlow.exemplar_title)
    await state.set_data({"org_id": org.id, "year": today.year})
    await session.commit()
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.answer(_("branches_chat.ask_title", org=org.name, year=today.year))


@router.message(BranchesFlow.exemplar_title, F.text, ~F.text.startswith("/"))
async def on_exemplar_title(
    message: Message, session: AsyncSession, actor: Actor, _: Texts, state: FSMContext
) -> None:
    data = await state.get_data()
    try:
        new = pairings.new_exemplar(
            org_id=int(data["org_id"]), title=message.text or "", year=int(data["year"])
        )
        async with session.begin_nested():
            row = await pairings.record_exemplar(session, actor, new)
    except Refused as e:
        await refused_answer(
            message, state, _, e, retry={"exemplar.bad_title"}, again="branches_chat.title_again"
        )
        return
    org = await get_org(session, row.org_id)
    await state.clear()
    await session.commit()
    await message.answer(_("branches_chat.exemplar_recorded", org=org.name, title=row.title, year=row.year))


@router.message(BranchesFlow.exemplar_title, ~F.text.startswith("/"))
async def on_exemplar_not_text(message: Message, _: Texts) -> None:
    await message.answer(_("branches_chat.title_needs_text"))
