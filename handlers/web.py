"""/web: a one-time link that signs a secretary, staff member or admin in to the admin web.

The link is single use and short-lived (storage.web_auth); only its hash is stored.
"""

from __future__ import annotations

from datetime import datetime

from aiogram import Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import Settings
from content.i18n import Texts
from handlers.manage import managers
from storage import web_auth
from storage.access import Actor

router = Router(name=__name__)
router.message.filter(managers())


def admin_url(settings: Settings) -> str:
    base = settings.admin_public_url or f"http://{settings.admin_host}:{settings.admin_port}"
    return base.rstrip("/")


@router.message(Command("web"))
async def cmd_web(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    now: datetime,
    settings: Settings,
    state: FSMContext,
) -> None:
    await state.clear()
    token = await web_auth.create_sign_in_link(session, actor, now)
    await session.commit()  # before talking to Telegram
    url = f"{admin_url(settings)}/login/link/{token}"
    minutes = int(web_auth.LINK_TTL.total_seconds() // 60)
    await message.answer(_("web_chat.link", url=url, minutes=minutes))
