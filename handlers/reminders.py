"""/reminders: the branch's reminder rules (monthly nudge, weekly digest, commitment due,
milestones), each with its time and whether it is on; turn one on or off, or change its time.

The first look creates the default rules (storage.reminders.ensure_default_rules). A time is
typed as "9:30"; only the hour and minute of the rule's crontab line change, so a monthly rule
stays monthly. A member's own pause of the monthly nudge is on the member side (/notices).
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts
from handlers.kit.wizard import Stale
from handlers.manage import PickBranch, ask_branch, local_time, managers, message_of
from storage import reminders
from storage.access import Actor, get_org, require_manager
from storage.models import ReminderRule

router = Router(name=__name__)
router.message.filter(managers())
router.callback_query.filter(managers())

_WEEKDAYS = {"0": 0, "7": 0, "sun": 0, "1": 1, "mon": 1, "2": 2, "tue": 2, "3": 3, "wed": 3, "4": 4, "thu": 4}
_WEEKDAYS |= {"5": 5, "fri": 5, "6": 6, "sat": 6}


class RuleToggle(CallbackData, prefix="srt"):
    rule_id: int
    enabled: bool


class RuleTime(CallbackData, prefix="srh"):
    rule_id: int


class ReminderFlow(StatesGroup):
    time = State()


class TimeError(ValueError):
    pass


_CLOCK = re.compile(r"^(\d{1,2})(?:[:：.](\d{2})|点(?:(\d{1,2})分?|半)?|时)?$")


def parse_clock(text: str) -> tuple[int, int]:
    """(hour, minute) from "9:30", "09:30", "21:00", "9点", "9点半", "9点15分"; TimeError otherwise."""
    t = "".join((text or "").split())
    m = _CLOCK.match(t)
    if m is None:
        raise TimeError(text)
    hour = int(m[1])
    minute = int(m[2] or m[3] or (30 if t.endswith("半") else 0))
    if hour > 23 or minute > 59:
        raise TimeError(text)
    return hour, minute


def with_time(cron: str, hour: int, minute: int) -> str:
    """The crontab line with its minute and hour replaced, the rest (days, months) kept."""
    fields = cron.split()
    return " ".join([str(minute), str(hour), *fields[2:]])


def describe_cron(_: Texts, cron: str) -> str:
    """A crontab line as people say it, for the shapes the rules use; the line itself otherwise."""
    fields = cron.split()
    if len(fields) == 5 and fields[0].isdigit() and fields[1].isdigit() and fields[3] == "*":
        at = f"{int(fields[1]):02d}:{int(fields[0]):02d}"
        day, weekday = fields[2], fields[4].lower()
        if day == "*" and weekday == "*":
            return _("reminders_chat.daily", at=at)
        if day == "*" and weekday in _WEEKDAYS:
            return _(
                "reminders_chat.weekly", weekday=_(f"reminders_chat.weekday_{_WEEKDAYS[weekday]}"), at=at
            )
        if day.isdigit() and weekday == "*":
            return _("reminders_chat.monthly", day=int(day), at=at)
    return _("reminders_chat.cron", cron=cron)


def rules_view(
    _: Texts, org_name: str, rules: list[ReminderRule], tz: tzinfo
) -> tuple[str, InlineKeyboardMarkup]:
    lines = [_("reminders_chat.title", org=org_name)]
    rows = []
    for n, rule in enumerate(rules, start=1):
        state = (
            _("reminders_chat.on", next=local_time(rule.next_due_at, tz))
            if rule.enabled
            else _("reminders_chat.off")
        )
        extra = ""
        if rule.kind.value == "commitment_due" and "days_before" in (rule.params or {}):
            extra = _("reminders_chat.days_before", days=rule.params["days_before"])
        lines.append(
            _(
                "reminders_chat.rule",
                n=n,
                kind=_(f"reminders.kind.{rule.kind.value}"),
                when=describe_cron(_, rule.cron) + extra,
                state=state,
                about=_(f"reminders_chat.about_{rule.kind.value}"),
            )
        )
        toggle = RuleToggle(rule_id=rule.id, enabled=not rule.enabled)
        rows.append(
            [
                InlineKeyboardButton(
                    text=_("reminders_chat.turn_off" if rule.enabled else "reminders_chat.turn_on", n=n),
                    callback_data=toggle.pack(),
                ),
                InlineKeyboardButton(
                    text=_("reminders_chat.change_time", n=n), callback_data=RuleTime(rule_id=rule.id).pack()
                ),
            ]
        )
    lines.append(_("reminders_chat.footer"))
    return "\n\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows)


async def _view(
    s: AsyncSession, actor: Actor, org_id: int, _: Texts, tz: tzinfo, now: datetime
) -> tuple[str, InlineKeyboardMarkup]:
    rules = await reminders.list_rules(s, actor, org_id)  # Forbidden outside the actor's scope
    org = await get_org(s, org_id)
    if len(rules) < len(reminders.DEFAULT_RULES):
        rules = await reminders.ensure_default_rules(s, org, now=now)
        await s.commit()
    return rules_view(_, org.name, rules, tz)


@router.message(Command("reminders"))
async def cmd_reminders(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    tz: tzinfo,
    now: datetime,
    state: FSMContext,
) -> None:
    await state.clear()
    org_id = await ask_branch(message, session, actor, _, "reminders")
    if org_id is not None:
        text, markup = await _view(session, actor, org_id, _, tz, now)
        await message.answer(text, reply_markup=markup)


@router.callback_query(PickBranch.filter(F.area == "reminders"))
async def on_reminders_branch_click(
    query: CallbackQuery,
    callback_data: PickBranch,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    tz: tzinfo,
    now: datetime,
) -> None:
    text, markup = await _view(session, actor, callback_data.org_id, _, tz, now)
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.answer(text, reply_markup=markup)


async def _redraw(bot: Bot, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup) -> None:
    try:
        await bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup)
    except TelegramBadRequest:
        pass  # unchanged, or gone: /reminders shows it again


@router.callback_query(RuleToggle.filter())
async def on_toggle_click(
    query: CallbackQuery,
    callback_data: RuleToggle,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    tz: tzinfo,
    now: datetime,
    bot: Bot,
) -> None:
    rule = await reminders.set_rule(
        session, actor, callback_data.rule_id, enabled=callback_data.enabled, now=now
    )
    org_id = rule.org_id
    await session.commit()
    await query.answer(_("reminders_chat.turned_on" if rule.enabled else "reminders_chat.turned_off"))
    msg = message_of(query)
    if msg is not None and org_id is not None:
        text, markup = await _view(session, actor, org_id, _, tz, now)
        await _redraw(bot, msg.chat.id, msg.message_id, text, markup)


@router.callback_query(RuleTime.filter())
async def on_time_click(
    query: CallbackQuery,
    callback_data: RuleTime,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    state: FSMContext,
) -> None:
    rule = await session.get(ReminderRule, callback_data.rule_id)
    if rule is None or rule.org_id is None:
        raise Stale()
    await require_manager(session, actor, rule.org_id)
    msg = message_of(query)
    await state.set_state(ReminderFlow.time)
    await state.set_data(
        {
            "rule_id": rule.id,
            "chat_id": msg.chat.id if msg else None,
            "message_id": msg.message_id if msg else None,
        }
    )
    kind = _(f"reminders.kind.{rule.kind.value}")
    await session.commit()
    await query.answer()
    if msg is not None:
        await msg.answer(_("reminders_chat.ask_time", kind=kind, when=describe_cron(_, rule.cron)))


@router.message(ReminderFlow.time, F.text, ~F.text.startswith("/"))
async def on_time_text(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    tz: tzinfo,
    now: datetime,
    state: FSMContext,
    bot: Bot,
) -> None:
    try:
        hour, minute = parse_clock(message.text or "")
    except TimeError:
        await message.answer(_("reminders_chat.bad_time"))
        return
    data = await state.get_data()
    rule = await session.get(ReminderRule, int(data["rule_id"]))
    if rule is None:
        await state.clear()
        await message.answer(_("error.not_found"))
        return
    rule = await reminders.set_rule(session, actor, rule.id, cron=with_time(rule.cron, hour, minute), now=now)
    org_id = rule.org_id
    await state.clear()
    await session.commit()
    await message.answer(
        _(
            "reminders_chat.time_changed",
            kind=_(f"reminders.kind.{rule.kind.value}"),
            when=describe_cron(_, rule.cron),
            next=local_time(rule.next_due_at, tz),
        )
    )
    if org_id is not None and data.get("chat_id") and data.get("message_id"):
        text, markup = await _view(session, actor, org_id, _, tz, now)
        await _redraw(bot, int(data["chat_id"]), int(data["message_id"]), text, markup)


@router.message(ReminderFlow.time, ~F.text.startswith("/"))
async def on_time_not_text(message: Message, _: Texts) -> None:
    await message.answer(_("reminders_chat.bad_time"))
