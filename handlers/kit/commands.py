"""The command menu (setMyCommands), per language and per role.

Members see the member commands everywhere (default scope, one list per language);
secretaries and staff get their longer list in their own private chat (chat scope).
"""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault

from content.i18n import LOCALES, texts
from storage.models import Role

log = logging.getLogger("branchbot.commands")

MEMBER = (
    "log",
    "my",
    "certificate",
    "commit",
    "commitments",
    "checklist",
    "services",
    "notices",
    "lang",
    "privacy",
    "help",
    "cancel",
)
SECRETARY = ("pending", "notify", "members", "invite", "assess", "report", "reminders", "web")
STAFF = ("branches", "pending", "notify", "report", "invite", "members", "reminders", "web")

# Every command any role has, and which roles have it (for a clear "wrong role" reply).
ROLE_COMMANDS: dict[str, tuple[Role, ...]] = {
    **{c: (Role.MEMBER, Role.SECRETARY, Role.STAFF, Role.ADMIN) for c in (*MEMBER, "start")},
    **{c: (Role.SECRETARY, Role.STAFF, Role.ADMIN) for c in SECRETARY},
    **{c: (Role.STAFF, Role.ADMIN) for c in STAFF if c not in SECRETARY},
}


def commands_for(role: Role | None) -> tuple[str, ...]:
    if role in (Role.STAFF, Role.ADMIN):
        extra = STAFF
    elif role is Role.SECRETARY:
        extra = SECRETARY
    else:
        extra = ()
    seen: dict[str, None] = dict.fromkeys((*extra, *MEMBER))
    return tuple(seen)


def bot_commands(role: Role | None, locale: str) -> list[BotCommand]:
    _ = texts(locale)
    return [BotCommand(command=c, description=_.plain(f"cmd.{c}")) for c in commands_for(role)]


async def set_default_menus(bot: Bot) -> None:
    for locale in LOCALES:
        await bot.set_my_commands(
            bot_commands(Role.MEMBER, locale), scope=BotCommandScopeDefault(), language_code=locale
        )
    # Without a language code: the default locale's list (zh).
    await bot.set_my_commands(bot_commands(Role.MEMBER, LOCALES[0]), scope=BotCommandScopeDefault())


async def set_person_menu(bot: Bot, chat_id: int, role: Role | None, locale: str) -> None:
    """A secretary's or staff member's own menu; members use the default one."""
    try:
        if role in (Role.SECRETARY, Role.STAFF, Role.ADMIN):
            await bot.set_my_commands(bot_commands(role, locale), scope=BotCommandScopeChat(chat_id=chat_id))
        else:
            await bot.delete_my_commands(scope=BotCommandScopeChat(chat_id=chat_id))
    except TelegramAPIError as e:  # a menu is a convenience: never fail the update for it
        log.warning("could not set the menu for a chat: %s", type(e).__name__)
