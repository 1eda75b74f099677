"""The last router: whatever no other handler took gets a clear answer, never silence.

Unknown commands, commands of another role, someone who has not joined yet, a button from
an old message, a photo or text when nothing is waiting for one.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from content.i18n import Texts
from handlers.kit.commands import ROLE_COMMANDS
from storage.access import Actor
from storage.models import Role
from storage.people import PersonView

router = Router(name=__name__)


def command_name(text: str) -> str | None:
    """'/log@branchbot 2h' -> 'log'; None when the text is not a command."""
    if not text.startswith("/"):
        return None
    return text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() or None


@router.message(F.text.startswith("/"))
async def on_other_command(
    message: Message, person: PersonView | None, actor: Actor | None, _: Texts
) -> None:
    name = command_name(message.text or "")
    roles = ROLE_COMMANDS.get(name or "")
    if roles is None:
        await message.answer(_("fallback.unknown_command", command=f"/{name}" if name else ""))
    elif person is None or actor is None:
        await message.answer(_("start.stranger"))
    elif not (actor.roles() & set(roles)):
        key = "fallback.staff_only" if Role.SECRETARY not in roles else "fallback.secretary_only"
        await message.answer(_(key, command=f"/{name}"))
    else:
        await message.answer(_("fallback.unknown_command", command=f"/{name}"))


@router.message()
async def on_other_message(message: Message, person: PersonView | None, _: Texts, state: FSMContext) -> None:
    if person is None:
        await message.answer(_("start.stranger"))
    elif message.text:
        # /cancel only means something while a form is waiting; otherwise point to what exists.
        if await state.get_state() is not None:
            await message.answer(_("fallback.text_in_form"))
        else:
            await message.answer(_("fallback.text"))
    else:
        await message.answer(_("fallback.unexpected_media"))


@router.callback_query()
async def on_stale_button(query: CallbackQuery, _: Texts) -> None:
    await query.answer(_("fallback.stale_button"), show_alert=True)
