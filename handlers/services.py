"""/services: the branch's published service list (服务清单): what it offers, to whom, the
contact and the time limit. Kept by the secretary (admin web); read here by everyone in the branch."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts
from handlers.kit.filters import Joined
from handlers.kit.forms import pack_messages
from storage import service_list
from storage.access import Actor, get_org

router = Router(name=__name__)
router.message.filter(Joined())


@router.message(Command("services"))
async def cmd_services(
    message: Message, session: AsyncSession, actor: Actor, _: Texts, state: FSMContext
) -> None:
    await state.clear()
    branch_id = actor.home_branch_id()
    if branch_id is None:
        await message.answer(_("member.services_no_branch"))
        return
    org = await get_org(session, branch_id)
    items = await service_list.list_services(session, actor, branch_id)
    if not items:
        await message.answer(_("member.services_empty", org=org.name))
        return
    parts = [_("member.services_header", org=org.name, count=len(items))]
    for n, item in enumerate(items, start=1):
        part = _(
            "member.services_item",
            n=n,
            title=item.title,
            audience=item.audience,
            contact=item.contact,
            time_limit=item.time_limit,
        )
        if item.description:
            part += "\n" + _("member.services_description", description=item.description)
        parts.append(part)
    for text in pack_messages(parts):
        await message.answer(text)
