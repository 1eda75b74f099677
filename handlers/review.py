"""/pending: service entries awaiting the reviewer, with approve, reject (with a reason) and
"approve all shown"; then the commitments awaiting evaluation (handlers/evaluate.py).

One message lists the oldest entries; its buttons carry the entry ids, so the message itself is
the list a press acts on (a press from an old list acts on exactly what that list showed, and an
entry reviewed meanwhile is refused or skipped by the store). After each review the message is
redrawn from the store, with a line saying what just changed.

Each entry is labelled by its own id (`#17`), never by its position: the label on a button, in
the list, on its photo and in another entry's "possible duplicate" mark is the same in every
list and after every action, so nothing moves under the reviewer's thumb. The header counts what
is still open: all of the reviewer's pending entries, and how many of them this list shows.

An entry with a photo has a "📷 #17" button that sends the photo (by its Telegram file id: nothing
is uploaded again), captioned with the entry's label. One photo per press rather than all of them
with the list: a burst of photos to one chat is what Telegram's per-chat limit refuses.

The member hears the outcome through the outbox (storage.review_notices), in the same
transaction as the review: a review is never committed without its message queued, the message
is sent within Telegram's limits by the delivery worker and retried there, and its dedupe key
means a repeated outcome is sent once. Sending directly after commit would lose the message if
the process stopped in between, and would make the reviewer wait on one send per member.
"""

from __future__ import annotations

from datetime import date, datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts
from content.pack import Pack
from handlers import evaluate
from handlers.kit.evidence import keep_photos
from handlers.kit.wizard import Stale, refused_answer
from handlers.manage import STAFF_ROLES, hours, managers, message_of
from storage import service_log
from storage.access import Actor
from storage.errors import Refused
from storage.evidence import EvidenceStore
from storage.models import EntryStatus
from storage.review_notices import enqueue_review_notices
from storage.service_log import PendingItem

router = Router(name=__name__)
router.message.filter(managers())
router.callback_query.filter(managers())

SHOWN = 6  # entries per list: their ids (base 36) must fit one button's 64 bytes
ID_SEP = "."


class ReviewOne(CallbackData, prefix="srv"):
    entry_id: int
    approve: bool


class ReviewAll(CallbackData, prefix="sra"):
    ids: str  # the list's entry ids, base 36, joined by "."


class ShowPhoto(CallbackData, prefix="srp"):
    entry_id: int


class RejectFlow(StatesGroup):
    reason = State()


def pack_ids(ids: list[int]) -> str:
    return ID_SEP.join(_b36(i) for i in ids)


def unpack_ids(text: str) -> list[int]:
    """The ids packed by `pack_ids`; ValueError for anything else."""
    out = [int(p, 36) for p in text.split(ID_SEP)] if text else []
    if not out or len(out) > SHOWN or any(i <= 0 for i in out):
        raise ValueError("not a list of entry ids")
    return out


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _item_line(_: Texts, item: PendingItem, pack: Pack, with_branch: bool, duplicate_of: int | None) -> str:
    e = item.entry
    action = pack.action(e.action)
    line = _(
        "review.item_branch" if with_branch else "review.item",
        n=e.id,
        name=item.person_name or _("review.someone"),
        branch=item.branch_name,
        day=e.day.isoformat(),
        hours=hours(e.minutes),
        action=action.title.get(_.locale) if action else e.action,
        description=e.description,
        place=e.place or "—",
    )
    if e.evidence_file_id:
        line += " " + _("review.has_photo")
    if duplicate_of is not None:
        line += "\n" + _("review.possible_duplicate", other=duplicate_of)
    return line


def _done_line(_: Texts, entry_id: int, status: EntryStatus | None) -> str:
    if status is EntryStatus.APPROVED:
        return _("review.item_approved", n=entry_id)
    if status is EntryStatus.REJECTED:
        return _("review.item_rejected", n=entry_id)
    return _("review.item_done", n=entry_id)


async def render_list(
    s: AsyncSession, actor: Actor, ids: list[int], _: Texts, pack: Pack, note: str | None = None
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The list message for `ids`, as the store has them now; `note` says what just changed."""
    total = await service_log.count_pending_for(s, actor)
    pending = {i.entry.id: i for i in await service_log.pending_for(s, actor, limit=200)}
    shown = [pending[i] for i in ids if i in pending]
    duplicates = await service_log.possible_duplicates(s, [i.entry for i in shown])
    states = await service_log.review_states(s, actor, [i for i in ids if i not in pending])
    with_branch = bool(actor.roles() & set(STAFF_ROLES))
    if not total:
        head = _("review.header_done")
    elif not shown:  # this list is done; others came in meanwhile
        head = _("review.header_rest", total=total)
    elif len(shown) < total:
        head = _("review.header", total=total, shown=len(shown))
    else:
        head = _("review.header_all", total=total)
    lines = [head]
    if note:
        lines.append(note)
    rows: list[list[InlineKeyboardButton]] = []
    open_ids = []
    for entry_id in ids:
        item = pending.get(entry_id)
        if item is None:
            lines.append(_done_line(_, entry_id, states.get(entry_id)))
            continue
        open_ids.append(entry_id)
        lines.append(_item_line(_, item, pack, with_branch, duplicates.get(entry_id)))
        row = [
            InlineKeyboardButton(
                text=_("review.approve_n", n=entry_id),
                callback_data=ReviewOne(entry_id=entry_id, approve=True).pack(),
            ),
            InlineKeyboardButton(
                text=_("review.reject_n", n=entry_id),
                callback_data=ReviewOne(entry_id=entry_id, approve=False).pack(),
            ),
        ]
        if item.entry.evidence_file_id:
            row.append(
                InlineKeyboardButton(
                    text=_("review.photo_n", n=entry_id), callback_data=ShowPhoto(entry_id=entry_id).pack()
                )
            )
        rows.append(row)
    if open_ids:
        rows.append(
            [
                InlineKeyboardButton(
                    text=_("review.approve_all", count=len(open_ids)),
                    callback_data=ReviewAll(ids=pack_ids(ids)).pack(),
                )
            ]
        )
    else:
        lines.append(_("review.list_finished" if total else "review.all_finished"))
    return "\n\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def _ids_of(message: Message | None) -> list[int]:
    """The entry ids of a list message, from its "approve all" button (or its single buttons)."""
    if message is None or message.reply_markup is None:
        return []
    single: list[int] = []
    for row in message.reply_markup.inline_keyboard:
        for b in row:
            data = b.callback_data or ""
            if data.startswith(ReviewAll.__prefix__ + ":"):
                try:
                    return unpack_ids(ReviewAll.unpack(data).ids)
                except ValueError:
                    return []
            if data.startswith(ReviewOne.__prefix__ + ":"):
                entry_id = ReviewOne.unpack(data).entry_id
                if entry_id not in single:
                    single.append(entry_id)
    return single


async def _redraw(
    bot: Bot,
    s: AsyncSession,
    actor: Actor,
    chat_id: int,
    message_id: int,
    ids: list[int],
    _: Texts,
    pack: Pack,
    note: str | None = None,
) -> None:
    if not ids:
        return
    text, markup = await render_list(s, actor, ids, _, pack, note)
    try:
        await bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup)
    except TelegramBadRequest:
        pass  # unchanged, or the message is gone: the reviewer can send /pending again


@router.message(Command("pending"))
async def cmd_pending(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    today: date,
    state: FSMContext,
    bot: Bot,
    evidence: EvidenceStore,
) -> None:
    await state.clear()
    items = await service_log.pending_for(session, actor, limit=SHOWN)
    inbox = await evaluate.inbox(session, actor, _, today)
    if items:
        # A photo that could not be fetched when it was logged gets another chance here.
        await keep_photos(bot, session, evidence, [i.entry for i in items])
        text, markup = await render_list(session, actor, [i.entry.id for i in items], _, pack)
        await message.answer(text, reply_markup=markup)
        if inbox is not None:
            await message.answer(inbox[0], reply_markup=inbox[1])
    elif inbox is not None:
        await message.answer(_("review.none") + "\n\n" + inbox[0], reply_markup=inbox[1])
    else:
        await message.answer(_("review.none"))


def _photo_caption(_: Texts, item: PendingItem) -> str:
    e = item.entry
    return _(
        "review.photo_caption",
        n=e.id,
        name=item.person_name or _("review.someone"),
        day=e.day.isoformat(),
        hours=hours(e.minutes),
    )


def _changed(_: Texts, key: str, outcome: service_log.ReviewOutcome) -> str:
    """The line that says what the last press changed, e.g. "已通过 #17（张三，2.5 小时）"."""
    e = outcome.entry
    return _(key, n=e.id, name=outcome.name or _("review.someone"), hours=hours(e.minutes))


@router.callback_query(ShowPhoto.filter())
async def on_photo_click(
    query: CallbackQuery, callback_data: ShowPhoto, session: AsyncSession, actor: Actor, _: Texts, bot: Bot
) -> None:
    pending = {i.entry.id: i for i in await service_log.pending_for(session, actor, limit=200)}
    item = pending.get(callback_data.entry_id)
    if item is None or not item.entry.evidence_file_id:  # reviewed meanwhile, or not this reviewer's
        raise Stale("review.not_pending")
    await query.answer()
    msg = message_of(query)
    chat_id = msg.chat.id if msg else query.from_user.id
    await bot.send_photo(chat_id, item.entry.evidence_file_id, caption=_photo_caption(_, item))


@router.callback_query(ReviewOne.filter(F.approve))
async def on_approve_click(
    query: CallbackQuery,
    callback_data: ReviewOne,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    now: datetime,
    bot: Bot,
) -> None:
    msg = message_of(query)
    ids = _ids_of(msg)
    try:
        async with session.begin_nested():  # a refusal undoes the review, not the update's claim
            outcome = await service_log.review(session, actor, callback_data.entry_id, True, None, now)
    except Refused as e:
        await query.answer(_(e.key, **e.params), show_alert=True)
        if msg is not None:
            await _redraw(bot, session, actor, msg.chat.id, msg.message_id, ids, _, pack)
        return
    await enqueue_review_notices(session, [outcome], now=now, pack=pack)
    await session.commit()
    await query.answer(_("review.approved_one"))
    if msg is not None:
        note = _changed(_, "review.changed_approved", outcome)
        await _redraw(bot, session, actor, msg.chat.id, msg.message_id, ids, _, pack, note)


@router.callback_query(ReviewOne.filter(~F.approve))
async def on_reject_click(
    query: CallbackQuery,
    callback_data: ReviewOne,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    state: FSMContext,
    bot: Bot,
) -> None:
    msg = message_of(query)
    pending = {i.entry.id: i for i in await service_log.pending_for(session, actor, limit=200)}
    item = pending.get(callback_data.entry_id)
    if item is None:  # reviewed meanwhile, or not this reviewer's to review
        await query.answer(_("review.not_pending"), show_alert=True)
        if msg is not None:
            await _redraw(bot, session, actor, msg.chat.id, msg.message_id, _ids_of(msg), _, pack)
        return
    await state.set_state(RejectFlow.reason)
    await state.update_data(
        entry_id=item.entry.id,
        list_chat=msg.chat.id if msg else None,
        list_message=msg.message_id if msg else None,
        list_ids=pack_ids(_ids_of(msg)) if msg and _ids_of(msg) else "",
    )
    await session.commit()
    await query.answer()
    e = item.entry
    await bot.send_message(
        msg.chat.id if msg else query.from_user.id,
        _(
            "review.ask_reason",
            name=item.person_name or _("review.someone"),
            day=e.day.isoformat(),
            hours=hours(e.minutes),
        ),
    )


@router.message(RejectFlow.reason, F.text, ~F.text.startswith("/"))
async def on_reason_text(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    now: datetime,
    state: FSMContext,
    bot: Bot,
) -> None:
    data = await state.get_data()
    try:
        async with session.begin_nested():
            outcome = await service_log.review(
                session, actor, int(data["entry_id"]), False, message.text or "", now
            )
    except Refused as e:
        await refused_answer(
            message,
            state,
            _,
            e,
            retry={"log.reason_required", "log.reason_too_long"},
            again="review.reason_again",
        )
        return
    await enqueue_review_notices(session, [outcome], now=now, pack=pack)
    await state.clear()
    await session.commit()
    await message.answer(_("review.rejected_one" if outcome.reachable else "review.rejected_unreachable"))
    ids = unpack_ids(data["list_ids"]) if data.get("list_ids") else []
    if data.get("list_chat") and data.get("list_message"):
        note = _changed(_, "review.changed_rejected", outcome)
        await _redraw(
            bot, session, actor, int(data["list_chat"]), int(data["list_message"]), ids, _, pack, note
        )


@router.message(RejectFlow.reason, ~F.text.startswith("/"))
async def on_reason_not_text(message: Message, _: Texts) -> None:
    await message.answer(_("review.reason_needs_text"))


@router.callback_query(ReviewAll.filter())
async def on_approve_all_click(
    query: CallbackQuery,
    callback_data: ReviewAll,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    now: datetime,
    bot: Bot,
) -> None:
    try:
        ids = unpack_ids(callback_data.ids)
    except ValueError:
        raise Stale() from None
    batch = await service_log.review_many(session, actor, ids, True, None, now)
    await enqueue_review_notices(session, batch.outcomes, now=now, pack=pack)
    await session.commit()
    text = _("review.approved_many", count=batch.done)
    if batch.skipped:
        text += " " + _("review.skipped", count=batch.skipped)
    await query.answer(text, show_alert=True)
    msg = message_of(query)
    if msg is not None:
        labels = _("review.list_sep").join(f"#{o.entry.id}" for o in batch.outcomes)
        note = _("review.changed_many", count=batch.done, labels=labels) if batch.done else text
        await _redraw(bot, session, actor, msg.chat.id, msg.message_id, ids, _, pack, note)
