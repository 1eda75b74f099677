"""Joining: /start with an invite code, the privacy notice and the explicit consent button.

Nothing about a person is stored before they press "agree": the invite code travels in the
button's callback data, not in our tables.
"""

from __future__ import annotations

from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts
from handlers.kit.commands import help_text, set_person_menu
from storage import people
from storage.access import Actor, load_actor
from storage.people import PersonView

router = Router(name=__name__)

JOIN = "join:"
DECLINE = "join-no"


def consent_keyboard(_: Texts, code: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=_("start.agree"), callback_data=f"{JOIN}{code}")],
            [InlineKeyboardButton(text=_("start.decline"), callback_data=DECLINE)],
        ]
    )


@router.message(CommandStart(deep_link=True))
async def cmd_start_code(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    person: PersonView | None,
    _: Texts,
    now: datetime,
    state: FSMContext,
) -> None:
    await state.clear()
    code = (command.args or "").strip()
    offer = await people.resolve_invite(session, code, now)
    if person is not None and await people.is_member_of(session, person.id, offer.org_id):
        await message.answer(_("start.already_member", org=offer.org_name))
        return
    await message.answer(
        _("start.privacy_notice", org=offer.org_name, role=_(f"role.{offer.role.value}")),
        reply_markup=consent_keyboard(_, code),
    )


@router.message(CommandStart())
async def cmd_start(
    message: Message, person: PersonView | None, actor: Actor | None, _: Texts, state: FSMContext
) -> None:
    await state.clear()
    if person is None:
        await message.answer(_("start.stranger"))
        return
    await message.answer(_("start.welcome_back", name=person.name) + "\n\n" + help_text(_, actor))


@router.callback_query(F.data.startswith(JOIN))
async def on_consent_click(
    query: CallbackQuery, session: AsyncSession, _: Texts, now: datetime, bot: Bot, locale: str
) -> None:
    code = (query.data or "")[len(JOIN) :]
    user = query.from_user
    joined = await people.join(
        session, code, telegram_id=user.id, name=user.full_name, locale=locale, consent=True, now=now
    )
    actor = await load_actor(session, joined.person.id)
    org_name = joined.org_name
    await session.commit()  # before talking to Telegram
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(_("start.joined", org=org_name, role=_(f"role.{joined.role.value}")))
    await set_person_menu(bot, user.id, actor, locale)
    await bot.send_message(user.id, help_text(_, actor))


@router.callback_query(F.data == DECLINE)
async def on_decline_click(query: CallbackQuery, _: Texts) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(_("start.declined"))


@router.message(Command("help"))
async def cmd_help(
    message: Message,
    person: PersonView | None,
    actor: Actor | None,
    _: Texts,
    state: FSMContext,
    bot: Bot,
    locale: str,
) -> None:
    await state.clear()  # like every other command, /help leaves a form in progress
    if person is None:
        await message.answer(_("start.stranger"))
        return
    await message.answer(help_text(_, actor))
    # Roles change outside the chat (the web, the command line): the menu is brought in line
    # with the help just shown, so the two never disagree for long.
    await set_person_menu(bot, message.chat.id, actor, locale)
