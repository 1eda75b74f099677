"""/certificate: a member's certificate of service hours (志愿服务证明) as a PDF, for a period
typed after the command (`/certificate 2026`, `/certificate 2026-01 2026-06`) or picked with a
button. The store issues and records it; this module only reads the period and sends the file."""

from __future__ import annotations

import re
from datetime import date, datetime

from aiogram import Router
from aiogram.filters import Command, CommandObject
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
from content.pack import Pack
from handlers.kit.filters import Joined
from handlers.manage import message_of
from handlers.reports import PeriodError, as_date, as_int, month_range, parse_period
from storage.access import Actor
from storage.certificates import issue_certificate
from storage.errors import Refused

router = Router(name=__name__)
router.message.filter(Joined())
router.callback_query.filter(Joined())

_MONTHS = re.compile(r"^(\d{4})[-/.年](\d{1,2})月?\s*(?:至|到|~|-|—|\s)\s*(\d{4})[-/.年](\d{1,2})月?$")


class CertPeriod(CallbackData, prefix="cert"):
    start: int  # yyyymmdd
    end: int


def certificate_period(text: str, today: date) -> tuple[date, date]:
    """ "2026", "2026-11", "2026-Q4", two days, or two months ("2026-01 2026-06"); a period
    that runs past today ends today. Raises `PeriodError`."""
    t = " ".join(text.split())
    if m := _MONTHS.match(t):
        try:
            start = month_range(int(m[1]), int(m[2]))[0]
            end = month_range(int(m[3]), int(m[4]))[1]
        except ValueError:
            raise PeriodError("reports_chat.bad_period") from None
        if end < start:
            raise PeriodError("reports_chat.period_order")
    else:
        start, end = parse_period(t)
    return start, min(end, today) if start <= today else end


def _keyboard(_: Texts, today: date) -> InlineKeyboardMarkup:
    this, last = today.year, today.year - 1
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("certificate.this_year", year=this),
                    callback_data=CertPeriod(start=as_int(date(this, 1, 1)), end=as_int(today)).pack(),
                ),
                InlineKeyboardButton(
                    text=_("certificate.last_year", year=last),
                    callback_data=CertPeriod(
                        start=as_int(date(last, 1, 1)), end=as_int(date(last, 12, 31))
                    ).pack(),
                ),
            ]
        ]
    )


async def _send(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    settings: Settings,
    now: datetime,
    start: date,
    end: date,
) -> None:
    base = settings.admin_public_url or f"http://{settings.admin_host}:{settings.admin_port}"
    try:
        row, pdf = await issue_certificate(
            session,
            actor,
            start,
            end,
            now=now,
            pack=pack,
            locale=_.locale,
            verify_base=base,
        )
    except Refused as e:
        await message.answer(_(e.key, **e.params))
        return
    await session.commit()
    url = f"{base.rstrip('/')}/verify/{row.code}"
    await message.answer_document(
        BufferedInputFile(
            pdf, filename=_.plain("files.certificate", start=start.isoformat(), end=end.isoformat())
        ),
        caption=_(
            "certificate.caption",
            date_from=start.isoformat(),
            date_to=end.isoformat(),
            hours=f"{row.minutes / 60:.1f}",
            code=row.code,
            url=url,
        ),
    )


@router.message(Command("certificate"))
async def cmd_certificate(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    settings: Settings,
    today: date,
    now: datetime,
    state: FSMContext,
) -> None:
    await state.clear()
    if not (command.args or "").strip():
        await message.answer(_("certificate.usage"), reply_markup=_keyboard(_, today))
        return
    try:
        start, end = certificate_period(command.args or "", today)
    except PeriodError as e:
        await message.answer(_("certificate.bad_args") if e.key == "reports_chat.bad_period" else _(e.key))
        return
    await _send(message, session, actor, _, pack, settings, now, start, end)


@router.callback_query(CertPeriod.filter())
async def on_period(
    query: CallbackQuery,
    callback_data: CertPeriod,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    settings: Settings,
    now: datetime,
) -> None:
    await query.answer()
    msg = message_of(query)
    if msg is None:
        return
    try:
        start, end = as_date(callback_data.start), as_date(callback_data.end)
    except ValueError:
        await msg.answer(_("fallback.stale_button"))
        return
    await _send(msg, session, actor, _, pack, settings, now, start, end)
