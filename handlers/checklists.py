"""/checklist: browse the content pack's checklists (六有, 五化, 六抓六服务), each item with its
explanation, and the focus the notice gives the member's type of organization.

Reading only: the secretary's self-assessment against these lists is /assess.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts
from content.pack import Category, Checklist, Pack
from handlers.kit.filters import Joined
from handlers.kit.forms import pack_messages
from handlers.kit.keyboards import button, column, rows, show
from handlers.kit.wizard import fresh
from storage.access import Actor
from storage.models import Org

router = Router(name=__name__)
router.message.filter(Joined())
router.callback_query.filter(Joined())

VIEW = "ck:"  # "ck:<checklist id>" shows one list; "ck:" alone goes back to the choice


async def my_category(session: AsyncSession, actor: Actor, pack: Pack) -> tuple[Org | None, Category | None]:
    """The member's organization (their branch, else the first they belong to) and its type."""
    org_id = actor.home_branch_id() or (actor.grants[0].org_id if actor.grants else None)
    org = await session.get(Org, org_id) if org_id is not None else None
    return org, pack.category(org.category if org else None)


def focus_text(_: Texts, org: Org | None, category: Category | None, locale: str) -> str | None:
    if org is None or category is None:
        return None
    return _(
        "member.checklist_focus",
        org=org.name,
        category=category.title.get(locale),
        focus=category.focus.get(locale),
    )


def choice(_: Texts, pack: Pack, locale: str, focus: str | None) -> tuple[str, InlineKeyboardMarkup]:
    parts = [_("member.checklist_title")]
    if focus:
        parts.append(focus)
    parts.append(_("member.checklist_pick"))
    markup = rows(*column(button(c.title.get(locale), f"{VIEW}{c.id}") for c in pack.checklists))
    return "\n\n".join(parts), markup


def checklist_parts(_: Texts, checklist: Checklist, locale: str, focus: str | None) -> list[str]:
    parts = [
        _(
            "member.checklist_header",
            title=checklist.title.get(locale),
            description=checklist.description.get(locale),
        )
    ]
    for n, item in enumerate(checklist.items, start=1):
        parts.append(
            _(
                "member.checklist_item",
                n=n,
                title=item.title.get(locale),
                explanation=item.explanation.get(locale),
            )
        )
    if focus:
        parts.append(focus)
    return parts


@router.message(Command("checklist"))
async def cmd_checklist(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    locale: str,
    state: FSMContext,
) -> None:
    await state.clear()
    org, category = await my_category(session, actor, pack)
    text, markup = choice(_, pack, locale, focus_text(_, org, category, locale))
    await message.answer(text, reply_markup=markup)


@router.callback_query(F.data.startswith(VIEW))
async def on_checklist_click(
    query: CallbackQuery, session: AsyncSession, actor: Actor, _: Texts, pack: Pack, locale: str, bot: Bot
) -> None:
    wanted = (query.data or "")[len(VIEW) :]
    org, category = await my_category(session, actor, pack)
    focus = focus_text(_, org, category, locale)
    if not wanted:
        await query.answer()
        text, markup = choice(_, pack, locale, focus)
        await show(query, bot, text, markup)
        return
    checklist = fresh(pack.checklist(wanted))  # None: a button from a pack that has changed since
    await query.answer()
    messages = pack_messages(checklist_parts(_, checklist, locale, focus))
    back = rows([button(_("member.checklist_back"), VIEW)])
    if len(messages) == 1:
        await show(query, bot, messages[0], back)
        return
    # Too long for one message: the first replaces the choice, the rest follow, the last has "back".
    await show(query, bot, messages[0])
    for i, text in enumerate(messages[1:], start=2):
        await bot.send_message(query.from_user.id, text, reply_markup=back if i == len(messages) else None)
