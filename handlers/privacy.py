"""/privacy: what the assistant keeps about the person and who sees it, an export of everything
as a JSON file, and erasure after an explicit confirmation (PIPL: see, copy, delete).

After erasure the person is a stranger to the bot: their memberships are gone, their name and
Telegram id are cleared, and the branch keeps only anonymous figures (see storage/privacy.py).
"""

from __future__ import annotations

from datetime import date, datetime

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts
from handlers.kit.commands import set_person_menu
from handlers.kit.filters import Joined
from handlers.kit.keyboards import button, rows, show
from storage import privacy
from storage.access import Actor
from storage.evidence import EvidenceStore
from storage.people import PersonView

router = Router(name=__name__)
router.message.filter(Joined())
router.callback_query.filter(Joined())

EXPORT = "pv:export"
ERASE = "pv:erase"
ERASE_YES = "pv:erase-yes"
ERASE_NO = "pv:erase-no"


def notice_markup(_: Texts) -> InlineKeyboardMarkup:
    return rows(
        [button(_("privacy_chat.btn_export"), EXPORT)],
        [button(_("privacy_chat.btn_erase"), ERASE)],
    )


@router.message(Command("privacy"))
async def cmd_privacy(message: Message, _: Texts, state: FSMContext) -> None:
    await state.clear()
    await message.answer(_("privacy_chat.notice"), reply_markup=notice_markup(_))


@router.callback_query(F.data == EXPORT)
async def on_export_click(
    query: CallbackQuery,
    session: AsyncSession,
    person: PersonView,
    actor: Actor,
    _: Texts,
    today: date,
    bot: Bot,
) -> None:
    data = await privacy.export_person_file(session, actor, person.id)
    await session.commit()  # the export is audited
    await query.answer(_("privacy_chat.export_toast"))
    await bot.send_document(
        query.from_user.id,
        BufferedInputFile(data, filename=_.plain("files.my_data", day=today.isoformat())),
        caption=_("privacy_chat.export_caption"),
    )


@router.callback_query(F.data == ERASE)
async def on_erase_click(query: CallbackQuery, _: Texts, bot: Bot) -> None:
    await query.answer()
    await show(
        query,
        bot,
        _("privacy_chat.erase_warning"),
        rows(
            [button(_("privacy_chat.btn_erase_yes"), ERASE_YES)],
            [button(_("privacy_chat.btn_erase_no"), ERASE_NO)],
        ),
    )


@router.callback_query(F.data == ERASE_NO)
async def on_erase_cancel_click(query: CallbackQuery, _: Texts, bot: Bot) -> None:
    await query.answer()
    await show(query, bot, _("privacy_chat.erase_cancelled"))


@router.callback_query(F.data == ERASE_YES)
async def on_erase_confirm_click(
    query: CallbackQuery,
    session: AsyncSession,
    person: PersonView,
    actor: Actor,
    _: Texts,
    now: datetime,
    locale: str,
    bot: Bot,
    evidence: EvidenceStore,
) -> None:
    await privacy.erase_person(session, actor, person.id, now, evidence)
    await session.commit()
    await query.answer()
    await show(query, bot, _("privacy_chat.erased"))
    # A secretary's own command menu goes too; the default menu is what strangers see.
    await set_person_menu(bot, query.from_user.id, None, locale)
