"""Commitments, the reviewer's side: evaluate a reported fulfilment (评诺) with a rating and a
comment, or send it back for more work; publish the branch's commitments as one message (公示).

The commitments awaiting evaluation are listed under /pending (handlers/review.py calls `inbox`),
the reviewer's one place for what waits on them. The owner hears the outcome through the outbox,
queued in the same transaction as the evaluation (see handlers/review.py for why).

公示 goes out as a notice to the branch's members: one message, with the acknowledge button,
followed by the sender like any notice (/notices).
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from aiogram import Bot, F, Router
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts, texts
from handlers.kit.keyboards import button, picker
from handlers.kit.wizard import Stale, refused_answer
from handlers.manage import local_time, managed_branches, managers, message_of, secretary_branch, short
from handlers.notify import edit_status, reach_text, recipient_reach, status_text
from storage import commitments, notices, outbox
from storage.access import Actor, require_manager
from storage.commitments import RATINGS, CommitmentView, Outcome, PublicItem
from storage.errors import Refused
from storage.models import Audience, CommitmentStatus, NoticeStatus, Role

router = Router(name=__name__)
router.message.filter(managers())
router.callback_query.filter(managers())

INBOX_SHOWN = 8
PUBLICATION_MAX = 3800  # below a notice's 4000 characters, with room for the "and more" line
KIND = "text"


class EvalOpen(CallbackData, prefix="sev"):
    org_id: int
    commitment_id: int


class EvalRate(CallbackData, prefix="ser"):
    org_id: int
    commitment_id: int
    rating: str
    skip_comment: bool = False


class EvalReturn(CallbackData, prefix="set"):
    org_id: int
    commitment_id: int


class Publish(CallbackData, prefix="spb"):
    org_id: int
    send: bool = False


class EvalFlow(StatesGroup):
    comment = State()
    return_reason = State()


def _is_owner(actor: Actor, c: commitments.Commitment) -> bool:
    if c.is_branch:
        return any(g.org_id == c.org_id and g.role is Role.SECRETARY for g in actor.grants)
    return c.person_id == actor.person_id


async def awaiting(s: AsyncSession, actor: Actor, today: date) -> list[CommitmentView]:
    """Reported commitments in the actor's branches that someone other than their owner must evaluate."""
    out: list[CommitmentView] = []
    for org in await managed_branches(s, actor):
        views = await commitments.list_commitments(s, actor, "branch", today, org_id=org.id)
        out += [
            v
            for v in views
            if v.commitment.status is CommitmentStatus.REPORTED and not _is_owner(actor, v.commitment)
        ]
    return out


async def inbox(
    s: AsyncSession, actor: Actor, _: Texts, today: date
) -> tuple[str, InlineKeyboardMarkup | None] | None:
    """The /pending part about commitments; None when there is nothing to show to this actor."""
    views = await awaiting(s, actor, today)
    own_branch = secretary_branch(actor)
    if not views and own_branch is None:
        return None
    rows: list[list[InlineKeyboardButton]] = []
    if views:
        text, rows = picker(
            _("evaluate.inbox_header", count=len(views)),
            views[:INBOX_SHOWN],
            lambda n, v: _(
                "evaluate.inbox_item",
                n=n,
                owner=v.owner_name or "—",
                text=short(v.commitment.text, 80),
                deadline=v.commitment.deadline.isoformat(),
            ),
            lambda n, v: button(
                _("evaluate.open_n", n=n),
                EvalOpen(org_id=v.commitment.org_id, commitment_id=v.commitment.id).pack(),
            ),
            per_row=4,
        )
    else:
        text = _("evaluate.inbox_empty")
    if own_branch is not None:
        rows.append(
            [
                InlineKeyboardButton(
                    text=_("evaluate.publish_button"), callback_data=Publish(org_id=own_branch).pack()
                )
            ]
        )
    return text, InlineKeyboardMarkup(inline_keyboard=rows)


async def _reported(
    s: AsyncSession, actor: Actor, org_id: int, commitment_id: int, today: date
) -> CommitmentView:
    """The commitment a button names, while it still awaits evaluation; else the button is stale."""
    views = await commitments.list_commitments(s, actor, "branch", today, org_id=org_id)
    view = next((v for v in views if v.commitment.id == commitment_id), None)
    if view is None or view.commitment.status is not CommitmentStatus.REPORTED:
        raise Stale("evaluate.not_reported")
    return view


def rating_keyboard(_: Texts, org_id: int, commitment_id: int) -> InlineKeyboardMarkup:
    rates = [
        InlineKeyboardButton(
            text=_(f"commitment.rating.{r}"),
            callback_data=EvalRate(org_id=org_id, commitment_id=commitment_id, rating=r).pack(),
        )
        for r in RATINGS
    ]
    back = InlineKeyboardButton(
        text=_("evaluate.return_button"),
        callback_data=EvalReturn(org_id=org_id, commitment_id=commitment_id).pack(),
    )
    return InlineKeyboardMarkup(inline_keyboard=[rates, [back]])


@router.callback_query(EvalOpen.filter())
async def on_open_click(
    query: CallbackQuery,
    callback_data: EvalOpen,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    today: date,
    tz: tzinfo,
    bot: Bot,
) -> None:
    view = await _reported(session, actor, callback_data.org_id, callback_data.commitment_id, today)
    c = view.commitment
    await query.answer()
    msg = message_of(query)
    chat_id = msg.chat.id if msg else query.from_user.id
    text = _(
        "evaluate.detail",
        owner=view.owner_name or "—",
        text=c.text,
        deadline=c.deadline.isoformat(),
        fulfilment=c.fulfilment_text or "—",
        reported=local_time(c.reported_at, tz),
    )
    await bot.send_message(chat_id, text, reply_markup=rating_keyboard(_, c.org_id, c.id))
    if c.fulfilment_file_id:
        # Telegram's file ids tell a photo ("AgAC…") from a document.
        if c.fulfilment_file_id.startswith("AgAC"):
            await bot.send_photo(chat_id, c.fulfilment_file_id, caption=_("evaluate.evidence"))
        else:
            await bot.send_document(chat_id, c.fulfilment_file_id, caption=_("evaluate.evidence"))


@router.callback_query(EvalRate.filter(~F.skip_comment))
async def on_rating_click(
    query: CallbackQuery,
    callback_data: EvalRate,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    today: date,
    state: FSMContext,
) -> None:
    cd = callback_data
    if cd.rating not in RATINGS:
        raise Stale()
    await _reported(session, actor, cd.org_id, cd.commitment_id, today)
    await state.set_state(EvalFlow.comment)
    await state.set_data({"org_id": cd.org_id, "commitment_id": cd.commitment_id, "rating": cd.rating})
    await session.commit()
    await query.answer()
    skip = EvalRate(org_id=cd.org_id, commitment_id=cd.commitment_id, rating=cd.rating, skip_comment=True)
    msg = message_of(query)
    if msg is not None:
        await msg.answer(
            _("evaluate.ask_comment", rating=_(f"commitment.rating.{cd.rating}")),
            reply_markup=InlineKeyboardMarkup(
                inline_keyboard=[
                    [InlineKeyboardButton(text=_("evaluate.no_comment"), callback_data=skip.pack())]
                ]
            ),
        )


async def _tell_owner(s: AsyncSession, outcome: Outcome, key: str, dedupe: str, now: datetime) -> bool:
    """Queue the owner's message; False when the owner cannot be reached."""
    if not outcome.reachable or outcome.telegram_id is None:
        return False
    c = outcome.commitment
    t = texts(outcome.locale)
    text = t(
        key,
        text=short(c.text, 200),
        rating=t(f"commitment.rating.{c.rating}") if c.rating else "",
        comment=c.evaluation or t("evaluate.no_comment_given"),
    )
    await outbox.enqueue(
        s,
        kind=KIND,
        chat_id=outcome.telegram_id,
        person_id=c.person_id,
        dedupe_key=dedupe,
        payload={"method": "sendMessage", "text": text, "parse_mode": "HTML"},
        not_before=now,
    )
    return True


async def _evaluate(
    s: AsyncSession, actor: Actor, commitment_id: int, rating: str, comment: str | None, now: datetime
) -> tuple[Outcome, bool]:
    outcome = await commitments.evaluate(s, actor, commitment_id, rating, comment, now)
    told = await _tell_owner(
        s, outcome, "evaluate.owner_evaluated", f"commitment:{commitment_id}:evaluated", now
    )
    return outcome, told


@router.callback_query(EvalRate.filter(F.skip_comment))
async def on_no_comment_click(
    query: CallbackQuery,
    callback_data: EvalRate,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    now: datetime,
    state: FSMContext,
) -> None:
    outcome, told = await _evaluate(
        session, actor, callback_data.commitment_id, callback_data.rating, None, now
    )
    await state.clear()
    await session.commit()
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.edit_text(_done_text(_, outcome, told))


def _done_text(_: Texts, outcome: Outcome, told: bool) -> str:
    c = outcome.commitment
    text = _("evaluate.done", rating=_(f"commitment.rating.{c.rating}"), text=short(c.text, 80))
    return text + ("\n" + _("evaluate.owner_told" if told else "evaluate.owner_unreachable"))


@router.message(EvalFlow.comment, F.text, ~F.text.startswith("/"))
async def on_comment_text(
    message: Message, session: AsyncSession, actor: Actor, _: Texts, now: datetime, state: FSMContext
) -> None:
    data = await state.get_data()
    try:
        async with session.begin_nested():
            outcome, told = await _evaluate(
                session, actor, int(data["commitment_id"]), str(data["rating"]), message.text, now
            )
    except Refused as e:
        await refused_answer(
            message, state, _, e, retry={"commitment.bad_comment"}, again="evaluate.comment_again"
        )
        return
    await state.clear()
    await session.commit()
    await message.answer(_done_text(_, outcome, told))


@router.callback_query(EvalReturn.filter())
async def on_return_click(
    query: CallbackQuery,
    callback_data: EvalReturn,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    today: date,
    state: FSMContext,
) -> None:
    view = await _reported(session, actor, callback_data.org_id, callback_data.commitment_id, today)
    await state.set_state(EvalFlow.return_reason)
    await state.set_data({"commitment_id": callback_data.commitment_id})
    await session.commit()
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.answer(_("evaluate.ask_return", owner=view.owner_name or "—"))


@router.message(EvalFlow.return_reason, F.text, ~F.text.startswith("/"))
async def on_return_text(
    message: Message, session: AsyncSession, actor: Actor, _: Texts, now: datetime, state: FSMContext
) -> None:
    data = await state.get_data()
    commitment_id = int(data["commitment_id"])
    try:
        async with session.begin_nested():
            outcome = await commitments.return_for_more_work(
                session, actor, commitment_id, message.text or "", now
            )
    except Refused as e:
        await refused_answer(
            message, state, _, e, retry={"commitment.bad_comment"}, again="evaluate.return_again"
        )
        return
    stamp = int(now.timestamp())
    told = await _tell_owner(
        session, outcome, "evaluate.owner_returned", f"commitment:{commitment_id}:returned:{stamp}", now
    )
    await state.clear()
    await session.commit()
    await message.answer(
        _("evaluate.returned") + "\n" + _("evaluate.owner_told" if told else "evaluate.owner_unreachable")
    )


@router.message(EvalFlow.comment, ~F.text.startswith("/"))
@router.message(EvalFlow.return_reason, ~F.text.startswith("/"))
async def on_flow_not_text(message: Message, _: Texts) -> None:
    await message.answer(_("evaluate.needs_text"))


# ---- 公示 ----


def publication_text(_: Texts, org_name: str, today: date, items: list[PublicItem]) -> str:
    """The branch's public commitments as plain text (a notice's text is escaped when sent)."""
    lines = [_.plain("evaluate.pub_title", org=org_name, day=today.isoformat())]
    branch = [i for i in items if i.is_branch]
    people = [i for i in items if not i.is_branch]
    n = 0
    for title, group in (("evaluate.pub_branch", branch), ("evaluate.pub_members", people)):
        if not group:
            continue
        lines.append("")
        lines.append(_.plain(title))
        for item in group:
            n += 1
            line = _.plain(
                "evaluate.pub_item_branch" if item.is_branch else "evaluate.pub_item",
                n=n,
                owner=item.owner or "—",
                text=item.text,
                deadline=item.deadline.isoformat(),
                status=_status(_, item),
            )
            if sum(len(x) + 1 for x in lines) + len(line) > PUBLICATION_MAX:
                lines.append(_.plain("evaluate.pub_more", count=len(items) - n + 1))
                return "\n".join(lines)
            lines.append(line)
    return "\n".join(lines)


def _status(_: Texts, item: PublicItem) -> str:
    if item.overdue:
        return _.plain("commitment.status.overdue")
    label = _.plain(f"commitment.status.{item.status.value}")
    if item.status is CommitmentStatus.EVALUATED and item.rating:
        return _.plain("evaluate.pub_rated", status=label, rating=_.plain(f"commitment.rating.{item.rating}"))
    return label


@router.callback_query(Publish.filter(~F.send))
async def on_publish_click(
    query: CallbackQuery, callback_data: Publish, session: AsyncSession, actor: Actor, _: Texts, today: date
) -> None:
    org = await require_manager(session, actor, callback_data.org_id)
    items = await commitments.publication(session, actor, org.id, today)
    msg = message_of(query)
    if not items:
        await query.answer(_("evaluate.pub_nothing"), show_alert=True)
        return
    text = publication_text(_, org.name, today, items)
    reach = await recipient_reach(session, actor, org.id, Audience.BRANCH_MEMBERS)
    await query.answer()
    if msg is None:
        return
    await msg.answer(_("evaluate.pub_preview", text=text))
    await msg.answer(
        reach_text(_, "evaluate.pub_confirm", reach),
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=_("evaluate.pub_send", count=reach.reached),
                        callback_data=Publish(org_id=org.id, send=True).pack(),
                    )
                ]
            ]
        ),
    )


@router.callback_query(Publish.filter(F.send))
async def on_publish_send_click(
    query: CallbackQuery,
    callback_data: Publish,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    today: date,
    now: datetime,
) -> None:
    msg = message_of(query)
    org = await require_manager(session, actor, callback_data.org_id)
    items = await commitments.publication(session, actor, org.id, today)
    if not items or msg is None:
        await query.answer(_("evaluate.pub_nothing"), show_alert=True)
        return
    # The preview message is the source: pressing "send" twice sends one notice.
    notice = await notices.create_notice(
        session,
        actor,
        org.id,
        Audience.BRANCH_MEMBERS,
        publication_text(_, org.name, today, items),
        now=now,
        source=f"pub:{msg.chat.id}:{msg.message_id}",
    )
    if notice.status is not NoticeStatus.DRAFT:
        await query.answer(_("evaluate.pub_already"), show_alert=True)
        return
    await notices.send_notice(session, actor, notice.id, now=now)
    # The confirmation becomes the status message, recorded with the outbox rows in one commit.
    await notices.set_status_message(session, actor, notice.id, msg.chat.id, msg.message_id)
    await session.commit()
    await query.answer()
    await edit_status(msg, await status_text(session, actor, notice.id, _), None)
