"""What the secretary and staff commands share: role filters, which branches an actor manages,
a paged branch picker, and small formatting helpers.

A secretary acts on their branch (the picker is skipped); staff and admins pick one of the
branches in their subtree. The picker's pages are turned here; each area handles the pick.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from aiogram import Router
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts
from handlers.kit.filters import HasRole
from storage.access import Actor
from storage.models import Org, OrgKind, Role
from storage.orgs import org_tree

MANAGERS = (Role.SECRETARY, Role.STAFF, Role.ADMIN)
STAFF_ROLES = (Role.STAFF, Role.ADMIN)
PAGE_SIZE = 8
BUTTON_NAME_MAX = 40

router = Router(name=__name__)
router.callback_query.filter(HasRole(*MANAGERS))


def managers() -> HasRole:
    return HasRole(*MANAGERS)


def staff() -> HasRole:
    return HasRole(*STAFF_ROLES)


class PickBranch(CallbackData, prefix="spk"):
    """A branch picked for `area` (the area's router handles it)."""

    area: str
    org_id: int


class PickPage(CallbackData, prefix="spp"):
    area: str
    page: int
    staff_only: bool = False


async def managed_branches(s: AsyncSession, actor: Actor, roles: tuple[Role, ...] = MANAGERS) -> list[Org]:
    """The branches the actor manages in one of `roles`, in tree order."""
    out: list[Org] = []
    for root in await org_tree(s, actor):
        out += [o for _d, o in root.walk() if o.kind is OrgKind.BRANCH and actor.manages(o, roles)]
    return out


def secretary_branch(actor: Actor) -> int | None:
    """The branch the actor is secretary of (the first, if several)."""
    return next(
        (g.org_id for g in actor.grants if g.role is Role.SECRETARY and g.org_kind is OrgKind.BRANCH), None
    )


def staff_root(actor: Actor) -> int | None:
    """The org whose subtree the actor oversees as staff or admin (the first such grant)."""
    return next((g.org_id for g in actor.grants if g.role in STAFF_ROLES), None)


def short(text: str, limit: int = BUTTON_NAME_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


PAIR_WEAK = "pairw"  # area "pairw<id>": picking the branch that branch <id> is paired with


def picker_excludes(area: str) -> int | None:
    """A branch a picker must not offer: the strong branch itself, when picking its partner
    (the store would refuse pairing a branch with itself)."""
    rest = area[len(PAIR_WEAK) :] if area.startswith(PAIR_WEAK) else ""
    return int(rest) if rest.isdigit() else None


def branch_keyboard(
    branches: list[Org],
    area: str,
    page: int = 0,
    *,
    staff_only: bool = False,
) -> InlineKeyboardMarkup:
    excluded = picker_excludes(area)
    branches = [o for o in branches if o.id != excluded]
    pages = max(1, -(-len(branches) // PAGE_SIZE))
    page = min(max(0, page), pages - 1)
    rows = [
        [InlineKeyboardButton(text=short(o.name), callback_data=PickBranch(area=area, org_id=o.id).pack())]
        for o in branches[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    ]
    nav = []
    if page > 0:
        nav.append(
            InlineKeyboardButton(
                text="◀", callback_data=PickPage(area=area, page=page - 1, staff_only=staff_only).pack()
            )
        )
    if page < pages - 1:
        nav.append(
            InlineKeyboardButton(
                text="▶", callback_data=PickPage(area=area, page=page + 1, staff_only=staff_only).pack()
            )
        )
    if nav:
        rows.append(nav)
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def ask_branch(
    message: Message, s: AsyncSession, actor: Actor, _: Texts, area: str, roles: tuple[Role, ...] = MANAGERS
) -> int | None:
    """The actor's own branch if they are its secretary; otherwise ask them to pick one (None).

    Someone who manages no branch at all is told so (None as well).
    """
    own = secretary_branch(actor)
    if own is not None and Role.SECRETARY in roles:
        return own
    branches = await managed_branches(s, actor, roles)
    if not branches:
        await message.answer(_("manage_chat.no_branches"))
        return None
    if len(branches) == 1:
        return branches[0].id
    keyboard = branch_keyboard(branches, area, staff_only=Role.SECRETARY not in roles)
    await message.answer(_("manage_chat.pick_branch"), reply_markup=keyboard)
    return None


@router.callback_query(PickPage.filter())
async def on_page_click(
    query: CallbackQuery, callback_data: PickPage, session: AsyncSession, actor: Actor
) -> None:
    cd = callback_data
    branches = await managed_branches(session, actor, STAFF_ROLES if cd.staff_only else MANAGERS)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(
            reply_markup=branch_keyboard(branches, cd.area, cd.page, staff_only=cd.staff_only)
        )


def hours(minutes: int) -> str:
    """150 -> "2.5", 100 -> "1.67": hours as people write them."""
    return f"{round(minutes / 60, 2):g}"


def local_time(at: datetime | None, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at is not None else "—"


def local_day(at: datetime | None, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d") if at is not None else "—"


def message_of(query: CallbackQuery) -> Message | None:
    return query.message if isinstance(query.message, Message) else None
