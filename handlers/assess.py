"""/assess: the branch assesses itself against one of the pack's checklists, item by item
(met, partly, not yet, with an optional note), then sees the score and what changed since the
last assessment of the same checklist.

One message walks through the items, edited in place. A note is typed before choosing the
answer; it is kept in the conversation until that item is answered. An assessment left half
way is resumed where it stopped (the store returns the unfinished one).
"""

from __future__ import annotations

from datetime import date, datetime

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts, period_label
from content.pack import Checklist, Pack
from handlers.kit.wizard import Stale
from handlers.manage import PickBranch, ask_branch, managers, message_of
from storage import checklists
from storage.access import Actor, require_manager
from storage.checklists import Comparison
from storage.models import Assessment, ItemStatus

router = Router(name=__name__)
router.message.filter(managers())
router.callback_query.filter(managers())

NOTE_MAX = 500
STATUS_ICON = {ItemStatus.MET: "✅", ItemStatus.PARTLY: "🔶", ItemStatus.NOT_YET: "⭕"}


class AssessPick(CallbackData, prefix="sap"):
    org_id: int
    checklist_id: str


class AssessPeriod(CallbackData, prefix="sat"):
    org_id: int
    checklist_id: str
    period: str


class AssessAnswer(CallbackData, prefix="saa"):
    assessment_id: int
    index: int
    status: ItemStatus


class AssessGo(CallbackData, prefix="sag"):
    assessment_id: int
    index: int


class AssessFlow(StatesGroup):
    item = State()


def periods(today: date) -> list[str]:
    """The periods offered: this quarter, this month, this year."""
    quarter = (today.month - 1) // 3 + 1
    return [f"{today.year}-Q{quarter}", f"{today.year}-{today.month:02d}", f"{today.year}"]


async def _checklist_menu(
    s: AsyncSession, actor: Actor, org_id: int, _: Texts, pack: Pack
) -> tuple[str, InlineKeyboardMarkup]:
    org = await require_manager(s, actor, org_id)
    rows = []
    for cl in pack.checklists:
        history = await checklists.history(s, actor, org_id, cl.id)
        title = cl.title.get(_.locale)
        label = (
            _(
                "assess_chat.checklist_last",
                title=title,
                period=period_label(_, history[0].period),
                score=f"{history[0].score:g}",
            )
            if history
            else title
        )
        rows.append(
            [
                InlineKeyboardButton(
                    text=label, callback_data=AssessPick(org_id=org_id, checklist_id=cl.id).pack()
                )
            ]
        )
    return _("assess_chat.pick_checklist", org=org.name), InlineKeyboardMarkup(inline_keyboard=rows)


@router.message(Command("assess"))
async def cmd_assess(
    message: Message, session: AsyncSession, actor: Actor, _: Texts, pack: Pack, state: FSMContext
) -> None:
    await state.clear()
    org_id = await ask_branch(message, session, actor, _, "assess")
    if org_id is not None:
        text, markup = await _checklist_menu(session, actor, org_id, _, pack)
        await message.answer(text, reply_markup=markup)


@router.callback_query(PickBranch.filter(F.area == "assess"))
async def on_assess_branch_click(
    query: CallbackQuery, callback_data: PickBranch, session: AsyncSession, actor: Actor, _: Texts, pack: Pack
) -> None:
    text, markup = await _checklist_menu(session, actor, callback_data.org_id, _, pack)
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.answer(text, reply_markup=markup)


@router.callback_query(AssessPick.filter())
async def on_checklist_click(
    query: CallbackQuery,
    callback_data: AssessPick,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    today: date,
) -> None:
    cd = callback_data
    await require_manager(session, actor, cd.org_id)
    cl = pack.checklist(cd.checklist_id)
    if cl is None:
        await query.answer(_("checklist.unknown"), show_alert=True)
        return
    rows = [
        [
            InlineKeyboardButton(
                text=period_label(_, p),
                callback_data=AssessPeriod(org_id=cd.org_id, checklist_id=cl.id, period=p).pack(),
            )
        ]
        for p in periods(today)
    ]
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.edit_text(
            _(
                "assess_chat.pick_period",
                title=cl.title.get(_.locale),
                description=cl.description.get(_.locale),
            ),
            reply_markup=InlineKeyboardMarkup(inline_keyboard=rows),
        )


def item_view(
    _: Texts, a: Assessment, cl: Checklist, index: int, answers: dict[str, ItemStatus], note: str | None
) -> tuple[str, InlineKeyboardMarkup]:
    item = cl.items[index]
    parts = [
        _(
            "assess_chat.item",
            title=cl.title.get(_.locale),
            period=period_label(_, a.period),
            k=index + 1,
            n=len(cl.items),
            done=len([i for i in cl.items if i.id in answers]),
            item=item.title.get(_.locale),
            explanation=item.explanation.get(_.locale),
        )
    ]
    if item.id in answers:
        parts.append(_("assess_chat.answered", status=_(f"checklist.status.{answers[item.id].value}")))
    parts.append(_("assess_chat.note_kept", note=note) if note else _("assess_chat.note_hint"))
    buttons = [
        InlineKeyboardButton(
            text=f"{STATUS_ICON[st]} {_(f'checklist.status.{st.value}')}",
            callback_data=AssessAnswer(assessment_id=a.id, index=index, status=st).pack(),
        )
        for st in ItemStatus
    ]
    nav = []
    if index > 0:
        nav.append(
            InlineKeyboardButton(
                text=_("assess_chat.previous"),
                callback_data=AssessGo(assessment_id=a.id, index=index - 1).pack(),
            )
        )
    if index < len(cl.items) - 1:
        nav.append(
            InlineKeyboardButton(
                text=_("assess_chat.next"), callback_data=AssessGo(assessment_id=a.id, index=index + 1).pack()
            )
        )
    rows = [buttons] + ([nav] if nav else [])
    return "\n\n".join(parts), InlineKeyboardMarkup(inline_keyboard=rows)


async def _answers(s: AsyncSession, assessment_id: int) -> dict[str, ItemStatus]:
    a = await s.get(Assessment, assessment_id, populate_existing=True)
    return {i.item_id: i.status for i in a.items} if a is not None else {}


async def _show_item(
    msg: Message,
    s: AsyncSession,
    a: Assessment,
    cl: Checklist,
    index: int,
    _: Texts,
    state: FSMContext,
    note: str | None = None,
) -> None:
    await state.set_state(AssessFlow.item)
    await state.set_data({"assessment_id": a.id, "index": index, "note": note})
    await s.commit()
    text, markup = item_view(_, a, cl, index, await _answers(s, a.id), note)
    try:
        await msg.edit_text(text, reply_markup=markup)
    except TelegramBadRequest:
        await msg.answer(text, reply_markup=markup)


@router.callback_query(AssessPeriod.filter())
async def on_period_click(
    query: CallbackQuery,
    callback_data: AssessPeriod,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    now: datetime,
    state: FSMContext,
) -> None:
    cd = callback_data
    a = await checklists.start_assessment(session, actor, cd.org_id, cd.checklist_id, cd.period, now, pack)
    cl = pack.checklist(a.checklist_id)
    assert cl is not None  # start_assessment checked it
    left = await checklists.unanswered(session, actor, a.id, pack)
    index = next(i for i, item in enumerate(cl.items) if item.id == left[0]) if left else 0
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await _show_item(msg, session, a, cl, index, _, state)


async def _load(
    s: AsyncSession, actor: Actor, assessment_id: int, pack: Pack
) -> tuple[Assessment, Checklist]:
    # `unanswered` checks the actor's scope (NotFound / Forbidden) before anything is shown.
    await checklists.unanswered(s, actor, assessment_id, pack)
    a = await s.get(Assessment, assessment_id)
    assert a is not None
    cl = pack.checklist(a.checklist_id)
    assert cl is not None
    return a, cl


@router.callback_query(AssessGo.filter())
async def on_go_click(
    query: CallbackQuery,
    callback_data: AssessGo,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    state: FSMContext,
) -> None:
    a, cl = await _load(session, actor, callback_data.assessment_id, pack)
    if a.finished_at is not None:
        await query.answer(_("checklist.already_finished"), show_alert=True)
        return
    index = min(max(0, callback_data.index), len(cl.items) - 1)
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await _show_item(msg, session, a, cl, index, _, state)


@router.message(AssessFlow.item, F.text, ~F.text.startswith("/"))
async def on_note_text(message: Message, _: Texts, state: FSMContext) -> None:
    note = " ".join((message.text or "").split())
    if len(note) > NOTE_MAX:
        await message.answer(_("checklist.bad_note") + "\n" + _("assess_chat.note_again", max=NOTE_MAX))
        return
    await state.update_data(note=note)
    await message.answer(_("assess_chat.note_saved"))


@router.message(AssessFlow.item, ~F.text.startswith("/"))
async def on_note_not_text(message: Message, _: Texts) -> None:
    await message.answer(_("assess_chat.note_needs_text"))


@router.callback_query(AssessAnswer.filter())
async def on_answer_click(
    query: CallbackQuery,
    callback_data: AssessAnswer,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    now: datetime,
    state: FSMContext,
) -> None:
    cd = callback_data
    a, cl = await _load(session, actor, cd.assessment_id, pack)
    if not 0 <= cd.index < len(cl.items):
        raise Stale()
    data = await state.get_data()
    # The typed note belongs to the item on screen when it was typed, in this assessment.
    same = data.get("assessment_id") == a.id and data.get("index") == cd.index
    note = data.get("note") if same else None
    await checklists.set_item(session, actor, a.id, cl.items[cd.index].id, cd.status.value, note, pack=pack)
    left = await checklists.unanswered(session, actor, a.id, pack)
    msg = message_of(query)
    if left:
        after = [i for i, item in enumerate(cl.items) if item.id in left]
        index = next((i for i in after if i > cd.index), after[0])
        await query.answer()
        if msg is not None:
            await _show_item(msg, session, a, cl, index, _, state)
        return
    await checklists.finish(session, actor, a.id, now, pack)
    comparison = await checklists.compare_with_previous(session, actor, a.id, pack)
    await state.clear()
    await session.commit()
    await query.answer()
    if msg is not None:
        await msg.edit_text(result_text(_, a, cl, comparison))


def result_text(_: Texts, a: Assessment, cl: Checklist, c: Comparison) -> str:
    lines = [
        _(
            "assess_chat.result",
            title=cl.title.get(_.locale),
            period=period_label(_, a.period),
            score=f"{c.score or 0:g}",
        )
    ]
    if c.previous_period is None or c.previous_score is None:
        lines.append(_("assess_chat.first_time"))
        return "\n".join(lines)
    delta = c.delta or 0
    lines.append(
        _(
            "assess_chat.compared",
            period=period_label(_, c.previous_period),
            score=f"{c.previous_score:g}",
            delta=f"{delta:+g}" if delta else "±0",
        )
    )
    if c.changes:
        lines.append(_("assess_chat.changes"))
        for ch in c.changes:
            item = cl.item(ch.item_id)
            lines.append(
                _(
                    "assess_chat.change",
                    item=item.title.get(_.locale) if item else ch.item_id,
                    before=_(f"checklist.status.{ch.before.value}") if ch.before else "—",
                    after=_(f"checklist.status.{ch.after.value}") if ch.after else "—",
                )
            )
    else:
        lines.append(_("assess_chat.no_changes"))
    return "\n".join(lines)
