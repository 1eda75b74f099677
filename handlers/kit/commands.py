"""The command menu (setMyCommands) and /help, per language and built from the person's roles.

Members see the member commands everywhere (default scope, one list per language); anyone whose
commands differ (secretaries, staff, and staff who belong to no branch, who keep no service log
of their own) gets their own list in their private chat (chat scope). /help is built from the same
grants, so the menu and the help never offer a command the person would then be refused.
"""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault

from content.i18n import LOCALES, Texts, texts
from storage.access import Actor
from storage.models import Role

log = logging.getLogger("branchbot.commands")

# Commands about one's own record in a branch: only for people who belong to one.
BRANCH_WORK = ("log", "my", "certificate", "commit", "commitments", "services")
COMMON = ("checklist", "notices", "lang", "privacy", "help", "cancel")
MEMBER = (*BRANCH_WORK, *COMMON)
SECRETARY = ("pending", "notify", "members", "invite", "assess", "report", "packet", "reminders", "web")
STAFF = ("branches", "pending", "notify", "report", "packet", "invite", "members", "reminders", "web")

# Every command any role has, and which roles have it (for a clear "wrong role" reply).
ROLE_COMMANDS: dict[str, tuple[Role, ...]] = {
    **{c: (Role.MEMBER, Role.SECRETARY, Role.STAFF, Role.ADMIN) for c in (*MEMBER, "start")},
    **{c: (Role.SECRETARY, Role.STAFF, Role.ADMIN) for c in SECRETARY},
    **{c: (Role.STAFF, Role.ADMIN) for c in STAFF if c not in SECRETARY},
}


def commands_for(actor: Actor | None) -> tuple[str, ...]:
    """The commands this person may use, in menu order (None: a plain member's list)."""
    if actor is None:
        return MEMBER
    roles = actor.roles()
    extra: tuple[str, ...] = ()
    if roles & {Role.STAFF, Role.ADMIN}:
        extra += STAFF
    if Role.SECRETARY in roles:
        extra += SECRETARY
    own = MEMBER if actor.home_branch_id() is not None else COMMON
    return tuple(dict.fromkeys((*extra, *own)))


def bot_commands(actor: Actor | None, locale: str) -> list[BotCommand]:
    _ = texts(locale)
    return [BotCommand(command=c, description=_.plain(f"cmd.{c}")) for c in commands_for(actor)]


def help_text(_: Texts, actor: Actor | None) -> str:
    """/help: the sections this person's roles give, from the same rule as the menu."""
    roles = actor.roles() if actor is not None else set()
    in_branch = actor is None or actor.home_branch_id() is not None
    parts = [_("help.member" if in_branch else "help.common")]
    staff = bool(roles & {Role.STAFF, Role.ADMIN})
    if Role.SECRETARY in roles:
        parts.append(_("help.secretary"))
    if staff:
        parts.append(_("help.staff"))
        if Role.SECRETARY not in roles:
            parts.append(_("help.staff_more"))  # the secretary's tools, over the whole subtree
    return "\n\n".join(parts)


async def set_default_menus(bot: Bot) -> None:
    for locale in LOCALES:
        await bot.set_my_commands(
            bot_commands(None, locale), scope=BotCommandScopeDefault(), language_code=locale
        )
    # Without a language code: the default locale's list (zh).
    await bot.set_my_commands(bot_commands(None, LOCALES[0]), scope=BotCommandScopeDefault())


async def set_person_menu(bot: Bot, chat_id: int, actor: Actor | None, locale: str) -> None:
    """The person's own menu when it differs from the members' default one; else the default."""
    try:
        if commands_for(actor) != MEMBER:
            await bot.set_my_commands(bot_commands(actor, locale), scope=BotCommandScopeChat(chat_id=chat_id))
        else:
            await bot.delete_my_commands(scope=BotCommandScopeChat(chat_id=chat_id))
    except TelegramAPIError as e:  # a menu is a convenience: never fail the update for it
        log.warning("could not set the menu for a chat: %s", type(e).__name__)
