"""/members: a branch's roster with last activity and whether the bot can reach each person.
/invite: a deep link to join, and the same link as a QR image to print.

A secretary's invite is for members of their branch, good for many people (it is meant to be
shared or put up on a wall); staff pick a branch and a role, and a secretary's invite is for
one person. Everyone who opens a link still reads and accepts the privacy notice first.
"""

from __future__ import annotations

import io
import math
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import Settings
from content.i18n import Texts
from handlers.kit.forms import pack_messages
from handlers.kit.wizard import Stale
from handlers.manage import PickBranch, ask_branch, local_day, managers, message_of, secretary_branch
from storage import invites, people
from storage.access import Actor, get_org
from storage.fonts import cjk_font_path
from storage.models import Role

router = Router(name=__name__)
router.message.filter(managers())
router.callback_query.filter(managers())

MESSAGE_MAX = 3500  # a roster longer than this goes out in several messages
SHARED_USES, SHARED_DAYS = 200, 30  # a link for the whole branch
PERSONAL_USES, PERSONAL_DAYS = 1, 7  # a secretary's: one person


class InviteRole(CallbackData, prefix="siv"):
    org_id: int
    role: Role


def roster_chunks(_: Texts, org_name: str, rows: list[people.MemberRow], tz: tzinfo) -> list[str]:
    """The roster as one or more messages, each under Telegram's length limit."""
    reachable = sum(1 for r in rows if r.reachable)
    blocked = sum(1 for r in rows if r.blocked)
    waiting = sum(1 for r in rows if not r.on_telegram)
    head = _(
        "members_chat.header",
        org=org_name,
        total=len(rows),
        reachable=reachable,
        blocked=blocked,
        waiting=waiting,
    )
    if not rows:
        return [head + "\n\n" + _("members_chat.empty")]
    lines: list[str] = []
    for n, r in enumerate(rows, start=1):
        if r.blocked:
            state = _("members_chat.blocked")
        elif not r.on_telegram:
            state = _("members_chat.not_joined")
        else:
            state = _("members_chat.reachable")
        line = _(
            "members_chat.item",
            n=n,
            name=r.name,
            role=_(f"role.{r.role.value}"),
            last=local_day(r.last_activity, tz) if r.last_activity else _("members_chat.never"),
            state=state,
        )
        if r.note:
            line += _("members_chat.note", note=r.note)
        lines.append(line)
    return pack_messages([head, *lines], MESSAGE_MAX, "\n")


async def roster(s: AsyncSession, actor: Actor, org_id: int, _: Texts, tz: tzinfo) -> list[str]:
    org = await get_org(s, org_id)
    rows = await people.list_members(s, actor, org_id)  # Forbidden outside the actor's scope
    return roster_chunks(_, org.name, rows, tz)


@router.message(Command("members"))
async def cmd_members(
    message: Message, session: AsyncSession, actor: Actor, _: Texts, tz: tzinfo, state: FSMContext
) -> None:
    await state.clear()
    org_id = await ask_branch(message, session, actor, _, "members")
    if org_id is not None:
        for chunk in await roster(session, actor, org_id, _, tz):
            await message.answer(chunk)


@router.callback_query(PickBranch.filter(F.area == "members"))
async def on_members_branch_click(
    query: CallbackQuery, callback_data: PickBranch, session: AsyncSession, actor: Actor, _: Texts, tz: tzinfo
) -> None:
    chunks = await roster(session, actor, callback_data.org_id, _, tz)
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        for chunk in chunks:
            await msg.answer(chunk)


# ---- /invite ----


LABEL_SIZES = (30, 28, 26, 24, 22)  # px: the largest that fits on one line, else wrap at the last
LABEL_GAP = 10


@lru_cache(maxsize=len(LABEL_SIZES))
def _label_font(size: int) -> Any:
    from PIL import ImageFont

    # The project's own CJK font (from the mplfonts package, as the charts use): a name in
    # Chinese must never come out as boxes because the machine has no Chinese font.
    return ImageFont.truetype(str(cjk_font_path()), size)


def _label_lines(text: str, width: int) -> tuple[Any, list[str]]:
    """The font and lines for a name: one line if a size fits, else lines of equal length
    (Chinese has no spaces to break at, and a lone last character reads badly)."""
    for size in LABEL_SIZES:
        font = _label_font(size)
        if font.getlength(text) <= width:
            return font, [text]
    n = math.ceil(font.getlength(text) / width)
    while True:
        per = math.ceil(len(text) / n)
        lines = [text[i : i + per] for i in range(0, len(text), per)]
        if all(font.getlength(line) <= width for line in lines):
            return font, lines
        n += 1


def qr_png(text: str, label: str | None = None) -> bytes:
    """The QR code of `text` as PNG, with `label` (the branch's name) written under it, so a
    printed or forwarded code says where it leads."""
    import qrcode
    from PIL import Image, ImageDraw

    q = qrcode.QRCode(border=4, box_size=10)
    q.add_data(text)
    q.make(fit=True)
    code = q.make_image().get_image().convert("L")
    out = code
    if label:
        margin = 4 * 10  # the code's own quiet zone
        font, lines = _label_lines(label, code.width - 2 * margin)
        step = font.size + LABEL_GAP
        out = Image.new("L", (code.width, code.height + len(lines) * step + margin // 2), 255)
        out.paste(code, (0, 0))
        draw = ImageDraw.Draw(out)
        y = code.height - margin // 2  # into the quiet zone's lower half: the code keeps the rest
        for line in lines:
            draw.text(((code.width - font.getlength(line)) / 2, y), line, fill=0, font=font)
            y += step
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


async def make_invite(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    role: Role,
    _: Texts,
    now: datetime,
    tz: tzinfo,
    settings: Settings,
) -> tuple[BufferedInputFile, str]:
    """A new invite, committed: its QR image and the caption with the link."""
    shared = role is Role.MEMBER
    uses, days = (SHARED_USES, SHARED_DAYS) if shared else (PERSONAL_USES, PERSONAL_DAYS)
    inv = await invites.create_invite(s, actor, org_id, role, uses=uses, days=days, now=now)
    org = await get_org(s, org_id)
    await s.commit()  # before talking to Telegram
    link = invites.deep_link(settings.bot_username, inv.code)
    caption = _(
        "members_chat.invite_shared" if shared else "members_chat.invite_personal",
        org=org.name,
        role=_(f"role.{role.value}"),
        link=link,
        uses=uses,
        expires=local_day(inv.expires_at, tz),
    )
    return BufferedInputFile(qr_png(link, org.name), filename=_.plain("files.invite_qr")), caption


@router.message(Command("invite"))
async def cmd_invite(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    now: datetime,
    tz: tzinfo,
    settings: Settings,
    state: FSMContext,
) -> None:
    await state.clear()
    own = secretary_branch(actor)
    if own is not None:
        photo, caption = await make_invite(session, actor, own, Role.MEMBER, _, now, tz, settings)
        await message.answer_photo(photo, caption=caption)
        return
    org_id = await ask_branch(message, session, actor, _, "invite")
    if org_id is not None:
        await message.answer(_("members_chat.pick_role"), reply_markup=role_keyboard(_, org_id))


def role_keyboard(_: Texts, org_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_(f"members_chat.invite_as_{r.value}"),
                    callback_data=InviteRole(org_id=org_id, role=r).pack(),
                )
            ]
            for r in (Role.MEMBER, Role.SECRETARY)
        ]
    )


@router.callback_query(PickBranch.filter(F.area == "invite"))
async def on_invite_branch_click(
    query: CallbackQuery, callback_data: PickBranch, session: AsyncSession, actor: Actor, _: Texts
) -> None:
    org = await get_org(session, callback_data.org_id)
    if not actor.manages(org):
        await query.answer(_("error.forbidden"), show_alert=True)
        return
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.answer(_("members_chat.pick_role_for", org=org.name), reply_markup=role_keyboard(_, org.id))


@router.callback_query(InviteRole.filter())
async def on_invite_role_click(
    query: CallbackQuery,
    callback_data: InviteRole,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    now: datetime,
    tz: tzinfo,
    settings: Settings,
) -> None:
    msg = message_of(query)
    if msg is None:
        await query.answer()
        return
    if callback_data.role not in (Role.MEMBER, Role.SECRETARY):
        raise Stale()
    # create_invite refuses (Forbidden) before anything is written when the role or place is not theirs.
    photo, caption = await make_invite(
        session, actor, callback_data.org_id, callback_data.role, _, now, tz, settings
    )
    await query.answer()
    await msg.answer_photo(photo, caption=caption)
