"""A person's own settings in chat: /lang (中文 / English) and /cancel (leave whatever form is open)."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import LOCALES, Texts, texts
from handlers.kit.commands import set_person_menu
from handlers.kit.filters import Joined
from handlers.kit.keyboards import button, rows, show
from handlers.kit.wizard import fresh
from storage import people
from storage.access import Actor
from storage.models import Person
from storage.people import PersonView

router = Router(name=__name__)
router.message.filter(Joined())
router.callback_query.filter(Joined())

LANG = "lang:"
# Each language is offered in its own words, whatever the current one is.
LANGUAGE_NAMES = {"zh": "中文", "en": "English"}


@router.message(Command("cancel"))
async def cmd_cancel(message: Message, session: AsyncSession, _: Texts, state: FSMContext) -> None:
    had = await state.get_state()
    await state.clear()
    await session.commit()
    await message.answer(_("member.cancelled") if had else _("member.nothing_to_cancel"))


@router.message(Command("lang"))
async def cmd_lang(message: Message, _: Texts, locale: str, state: FSMContext) -> None:
    await state.clear()
    current = LANGUAGE_NAMES.get(locale, locale)
    markup = rows([button(("✓ " if c == locale else "") + LANGUAGE_NAMES[c], f"{LANG}{c}") for c in LOCALES])
    await message.answer(_("member.lang_prompt", current=current), reply_markup=markup)


@router.callback_query(F.data.startswith(LANG))
async def on_lang_click(
    query: CallbackQuery, session: AsyncSession, person: PersonView, actor: Actor, bot: Bot
) -> None:
    code = (query.data or "")[len(LANG) :]
    if code not in LOCALES:
        await query.answer(texts(person.locale)("fallback.stale_button"), show_alert=True)
        return
    await people.set_locale(session, fresh(await session.get(Person, person.id)), code)
    await session.commit()
    _ = texts(code)  # from here on, the person's new language
    await query.answer()
    await show(query, bot, _("member.lang_set", language=LANGUAGE_NAMES[code]))
    # A secretary's or staff member's menu is per chat: rewrite it in the new language.
    await set_person_menu(bot, query.from_user.id, actor, code)
