"""Notices on the member's side: /notices (what I was sent, and whether I acknowledged it), the
"✅ 已阅" button ("ack:<delivery id>", on every notice, nudge and list; see storage/notices.py),
and the monthly nudge's "pause" button ("nudges:pause"; see storage/reminders.py).

Acknowledging from any of them edits every copy the person was sent (the notice and each nudge,
found through the outbox rows' message ids) to say it was read and when, without the button; a
list only loses the pressed item's button.

Secretaries and staff get their own /notices (what they sent, and what they received) from
handlers/notify.py; this one answers everyone else.
"""

from __future__ import annotations

import logging
from datetime import datetime, tzinfo

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts
from handlers.kit.filters import HasRole, Joined
from handlers.kit.forms import short
from handlers.kit.keyboards import button, edit_markup, rows
from handlers.kit.wizard import fresh
from storage import notices, reminders
from storage.access import MANAGER_ROLES
from storage.models import Person
from storage.people import PersonView

log = logging.getLogger("branchbot.notices")
router = Router(name=__name__)
router.message.filter(Joined())
router.callback_query.filter(Joined())

ACK = "ack:"
PAUSE = reminders.PAUSE_CALLBACK
RESUME = "nudges:resume"
LISTED = 10
PREVIEW = 80


@router.message(Command("notices"), ~HasRole(*MANAGER_ROLES))
async def cmd_notices(
    message: Message, session: AsyncSession, person: PersonView, _: Texts, tz: tzinfo, state: FSMContext
) -> None:
    await state.clear()
    received = await notices.recipient_notices(session, person, limit=LISTED)
    if not received:
        await message.answer(_("member.notices_empty"))
        return
    lines = [_("member.notices_header", count=len(received))]
    buttons = []
    for n, r in enumerate(received, start=1):
        lines.append(
            _(
                "member.notices_item",
                n=n,
                when=r.sent_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if r.sent_at else "—",
                org=r.org_name,
                preview=short(r.text, PREVIEW),
                state=_("member.notices_acked" if r.acknowledged else "member.notices_not_acked"),
            )
        )
        if not r.acknowledged:
            buttons.append([button(_("member.notices_ack_n", n=n), f"{ACK}{r.delivery_id}")])
    await message.answer("\n\n".join(lines), reply_markup=rows(*buttons) if buttons else None)


@router.callback_query(F.data.regexp(r"^ack:\d{1,18}$"))
async def on_ack_click(
    query: CallbackQuery, session: AsyncSession, _: Texts, now: datetime, tz: tzinfo, bot: Bot
) -> None:
    delivery_id = int((query.data or "")[len(ACK) :])
    first = await notices.acknowledge(session, query.from_user.id, delivery_id, now)
    copies = await notices.sent_copies(session, query.from_user.id, delivery_id) if first else []
    await session.commit()
    await query.answer(_("notices.acknowledged" if first else "notices.already_acknowledged"))
    if not first:
        # Only the first press changes messages: a second one (a double tap, or another copy of
        # the button) would ask Telegram for an edit that changes nothing, which it refuses.
        return
    # Every copy of the button (the notice, and each nudge about it) now says it was read, and
    # when, so no message in the chat keeps asking for what was done.
    when = now.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    msg = query.message
    pressed_is_copy = False
    for copy in copies:
        await _mark_read(bot, copy, _, when)
        if isinstance(msg, Message) and (msg.chat.id, msg.message_id) == (copy.chat_id, copy.message_id):
            pressed_is_copy = True
    if not pressed_is_copy:
        await _drop_button(query)  # a /notices list: only that item's button goes


async def _mark_read(bot: Bot, copy: notices.SentCopy, _: Texts, when: str) -> None:
    """Edit one sent copy to show it was read, without its button."""
    ids = {"chat_id": copy.chat_id, "message_id": copy.message_id}
    mark = _("notices.read_mark", when=when)
    try:
        if copy.kind == notices.KIND_NUDGE:
            text = notices.nudge_text(_, copy.org_name, copy.notice_text, when)
            await bot.edit_message_text(text=text, parse_mode="HTML", reply_markup=None, **ids)
        elif "text" in copy.payload:
            text = f"{copy.payload['text']}\n\n{mark}"
            await bot.edit_message_text(text=text, parse_mode="HTML", reply_markup=None, **ids)
        elif len(caption := f"{copy.payload.get('caption', '')}\n\n{mark}") <= notices.CAPTION_MAX:
            await bot.edit_message_caption(caption=caption, parse_mode="HTML", reply_markup=None, **ids)
        else:  # no room for the mark under a full caption: the button still goes
            await bot.edit_message_reply_markup(reply_markup=None, **ids)
    except TelegramBadRequest as e:
        # A copy the person deleted, or one too old to edit: the others are still marked.
        log.info("could not mark a notice copy as read: %s", e.message)


async def _drop_button(query: CallbackQuery) -> None:
    """Take the pressed button off its message (a notice, a nudge or a list), keeping the others."""
    msg = query.message
    if not isinstance(msg, Message) or msg.reply_markup is None:
        return
    keep = [[b for b in row if b.callback_data != query.data] for row in msg.reply_markup.inline_keyboard]
    keep = [row for row in keep if row]
    await edit_markup(msg, InlineKeyboardMarkup(inline_keyboard=keep) if keep else None)


@router.callback_query(F.data.in_({PAUSE, RESUME}))
async def on_nudges_click(query: CallbackQuery, session: AsyncSession, person: PersonView, _: Texts) -> None:
    pause = query.data == PAUSE
    changed = person.nudges_paused != pause
    await reminders.pause_nudges(session, fresh(await session.get(Person, person.id)), pause)
    await session.commit()
    await query.answer(_("reminders.paused" if pause else "reminders.resumed"), show_alert=True)
    if changed and isinstance(query.message, Message):
        # The button turns into its opposite, so the choice can be undone where it was made.
        again = (
            button(_("member.nudges_resume_button"), RESUME)
            if pause
            else button(_("reminders.pause_button"), PAUSE)
        )
        await edit_markup(query.message, rows([again]))
