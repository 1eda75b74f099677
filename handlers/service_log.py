"""Logging volunteer service in chat (/log, quick form and wizard) and one's own hours (/my).

Quick form: `/log 2.5 2026-11-20 社区义诊` is read at once; the parsed values wait in the
conversation state (the description does not fit in callback data) until the service action
is picked with a button. The quick form records no place: it is meant to stay one line; the
wizard asks for one.

Wizard: action → day → duration → place → description → optional photo → confirm. Each answer
is checked as it comes and the step is asked again with a hint when it is wrong; earlier answers
stay. Its state lives in the database (bot/fsm_storage.py), so it survives a restart.

Both forms check the day's 24 hours as soon as the day and the duration are known (the quick
form before the action is picked). When the store finds the entry may duplicate one the member
already has, the form asks "log it anyway?" with two buttons; the answers wait in the state
(`LogDuplicate`) and "yes" records with the same source, so a double tap still records once.

Both forms record with source "<chat id>:<message id of the /log command>": a redelivered
button press cannot record twice. Buttons carry that message id ("wid"), so a button from an
earlier run of the form is recognized as stale.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup, Message, Update
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import Settings
from content.i18n import Raw, Texts
from content.pack import Pack
from handlers.kit.charts import MonthChart, render_month_chart_async
from handlers.kit.evidence import keep_photos
from handlers.kit.filters import Joined
from handlers.kit.forms import check_day, check_entry_field, duration_text, hours_1dp
from handlers.kit.keyboards import button, column, packed, rows, show
from handlers.kit.wizard import Stale, advance, begin, cancel_button, fresh, running
from storage import service_log
from storage.access import Actor
from storage.errors import Refused
from storage.evidence import EvidenceStore
from storage.models import Role, ServiceEntry
from storage.people import PersonView
from storage.service_log import (
    ParseError,
    PossibleDuplicate,
    new_entry,
    parse_day,
    parse_duration,
    parse_quick_log,
)

router = Router(name=__name__)
router.message.filter(Joined())
router.callback_query.filter(Joined())

DURATION_BUTTONS = (60, 120, 180, 240)
TEXT_ONLY = F.text & ~F.text.startswith("/")  # a command always leaves the wizard


class LogQuick(StatesGroup):
    action = State()


class LogWizard(StatesGroup):
    action = State()
    day = State()
    day_typed = State()
    duration = State()
    place = State()
    description = State()
    photo = State()
    confirm = State()


class LogDuplicate(StatesGroup):
    confirm = State()


class DupAnswer(CallbackData, prefix="ld"):
    wid: int
    go: bool


class QuickPick(CallbackData, prefix="lq"):
    wid: int
    action: str


class LogBtn(CallbackData, prefix="lw"):
    wid: int
    step: str  # act | day | dur | place | photo | ok | x
    value: str


# ---------------------------------------------------------------------------------------------
# Showing what was entered


def _action_title(pack: Pack, action_id: str, locale: str) -> str:
    action = pack.action(action_id)
    return action.title.get(locale) if action else action_id


def summary(_: Texts, pack: Pack, locale: str, data: dict[str, Any]) -> str:
    return _(
        "log_chat.summary",
        action=_action_title(pack, data["action"], locale),
        day=data["day"],
        duration=Raw(duration_text(_, int(data["minutes"]))),
        place=data.get("place") or _("log_chat.no_place"),
        description=data["description"],
        photo=_("log_chat.photo_yes") if data.get("photo") else _("log_chat.photo_no"),
    )


def entry_data(row: ServiceEntry) -> dict[str, Any]:
    return {
        "action": row.action,
        "day": row.day.isoformat(),
        "minutes": row.minutes,
        "place": row.place,
        "description": row.description,
        "photo": row.evidence_file_id,
    }


def recorded_text(_: Texts, actor: Actor, pack: Pack, locale: str, row: ServiceEntry) -> str:
    # A secretary's own service is reviewed by the committee above, not by a secretary.
    key = "log_chat.recorded_secretary" if Role.SECRETARY in actor.roles() else "log_chat.recorded"
    return _(key, summary=Raw(summary(_, pack, locale, entry_data(row))))


def refusal(_: Texts, e: Refused) -> str:
    return _(e.key, **e.params)


# ---------------------------------------------------------------------------------------------
# /log


def is_quick_log(update: Update) -> bool:
    """A `/log` line with its fields (the quick form), as `Command` splits it: `_quick_start`
    checks the room of the day it names before anything else, so the update's claim may read the
    likely days ahead (`bot.middlewares.PersonContext`). A wrong guess costs only that read."""
    text = update.message.text if update.message is not None else None
    if not text or not text.startswith("/log"):
        return False
    parts = text.split(maxsplit=1)
    return len(parts) == 2 and parts[0].split("@", 1)[0] == "/log"


@router.message(Command("log"))
async def cmd_log(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    today: date,
    settings: Settings,
    pack: Pack,
    locale: str,
    state: FSMContext,
) -> None:
    await state.clear()
    if actor.home_branch_id() is None:
        raise Refused("log.not_member")
    if command.args and command.args.strip():
        await _quick_start(message, command.args, session, actor, _, today, settings, pack, locale, state)
        return
    await begin(state, session, LogWizard.action, wid=message.message_id)
    text, markup = prompt(LogWizard.action, _, pack, locale, message.message_id)
    await message.answer(text, reply_markup=markup)


async def _quick_start(
    message: Message,
    args: str,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    today: date,
    settings: Settings,
    pack: Pack,
    locale: str,
    state: FSMContext,
) -> None:
    try:
        quick = parse_quick_log(args, today)
        check_day(quick.day, today, settings.log_window_days)
        await service_log.check_day_room(session, actor.person_id, quick.day, quick.minutes, read_ahead=True)
    except Refused as e:
        # The example helps only when the line could not be read; a full day or a future date
        # was read correctly, and the usage text already is the example.
        hint = isinstance(e, ParseError) and e.key != "log.quick_usage"
        await message.answer(refusal(_, e) + ("\n" + _("log_chat.quick_example") if hint else ""))
        return
    wid = message.message_id
    await begin(
        state,
        session,
        LogQuick.action,
        wid=wid,
        day=quick.day.isoformat(),
        minutes=quick.minutes,
        description=quick.description,
    )
    markup = rows(
        *column(button(a.title.get(locale), packed(QuickPick, wid=wid, action=a.id)) for a in pack.actions),
        _cancel(_, wid),
    )
    await message.answer(
        _(
            "log_chat.quick_pick",
            day=quick.day.isoformat(),
            duration=Raw(duration_text(_, quick.minutes)),
            description=quick.description,
        ),
        reply_markup=markup,
    )


@router.callback_query(QuickPick.filter())
@router.callback_query(DupAnswer.filter())
async def on_record_click(
    query: CallbackQuery,
    callback_data: QuickPick | DupAnswer,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    today: date,
    settings: Settings,
    pack: Pack,
    locale: str,
    state: FSMContext,
    bot: Bot,
    evidence: EvidenceStore,
) -> None:
    """The quick form's action picked, or "log it anyway?" answered: record the form's answers
    and say so in the form's message."""
    wid = callback_data.wid
    if isinstance(callback_data, DupAnswer):
        data = await running(state, wid, LogDuplicate.confirm, stale="log_chat.stale")
        await state.clear()
        if not callback_data.go:
            await session.commit()
            await query.answer()
            await show(query, bot, _("log_chat.duplicate_dropped"))
            return
        fields, confirmed = data["fields"], True
    else:
        data = await running(state, wid, LogQuick.action, stale="log_chat.stale")
        fields = {
            "day": data["day"],
            "minutes": data["minutes"],
            "action": callback_data.action,
            "description": data["description"],
        }
        confirmed = False
        await state.clear()
    try:
        row = await _log(session, actor, query, wid, fields, today, settings, pack, confirmed=confirmed)
    except PossibleDuplicate as e:
        await _ask_duplicate(query, session, _, state, bot, wid, fields, e)
        return
    except Refused as e:
        # The form is over either way: say why, and that /log starts it again.
        await session.commit()
        await query.answer()
        await show(
            query, bot, _("log_chat.failed", reason=Raw(refusal(_, e))) + "\n" + _("log_chat.try_again")
        )
        return
    await session.commit()
    await query.answer(_("log_chat.recorded_toast"))
    await show(query, bot, recorded_text(_, actor, pack, locale, row))
    await keep_photos(bot, session, evidence, [row])


async def _log(
    session: AsyncSession,
    actor: Actor,
    query: CallbackQuery,
    wid: int,
    fields: dict[str, Any],
    today: date,
    settings: Settings,
    pack: Pack,
    *,
    confirmed: bool = False,
) -> ServiceEntry:
    """Record a form's answers with the form's source ("<chat id>:<wid>"), so a redelivered
    button press records once; `confirmed` when the member said "log it anyway"."""
    entry = new_entry(
        day=date.fromisoformat(fields["day"]),
        minutes=fields["minutes"],
        action=fields["action"],
        place=fields.get("place") or "",
        description=fields["description"],
        evidence_file_id=fields.get("photo"),
    )
    return await service_log.log_service(
        session,
        actor,
        entry,
        source=f"{query.from_user.id}:{wid}",
        today=today,
        window_days=settings.log_window_days,
        pack=pack,
        allow_duplicate=confirmed,
    )


async def _ask_duplicate(
    query: CallbackQuery,
    session: AsyncSession,
    _: Texts,
    state: FSMContext,
    bot: Bot,
    wid: int,
    fields: dict[str, Any],
    e: PossibleDuplicate,
) -> None:
    """Keep the answers and ask whether this really is a second entry."""
    await begin(state, session, LogDuplicate.confirm, wid=wid, fields=fields)
    await query.answer()
    other = e.other
    text = (
        refusal(_, e)
        + "\n"
        + _(
            "log_chat.duplicate_other",
            description=other.description or "—",
            hours=service_log.hours_text(other.minutes),
        )
        + "\n\n"
        + _("log_chat.duplicate_ask")
    )
    markup = rows(
        [
            button(_("log_chat.btn_log_anyway"), DupAnswer(wid=wid, go=True).pack()),
            button(_("log_chat.btn_dont_log"), DupAnswer(wid=wid, go=False).pack()),
        ]
    )
    await show(query, bot, text, markup)


@router.message(LogDuplicate.confirm, ~F.text.startswith("/"))
async def on_duplicate_waiting(message: Message, _: Texts) -> None:
    await message.answer(_("log_chat.use_buttons"))


@router.message(LogQuick.action, ~F.text.startswith("/"))
async def on_quick_waiting_for_action(message: Message, _: Texts) -> None:
    await message.answer(_("log_chat.use_buttons"))


# ---------------------------------------------------------------------------------------------
# The wizard: prompts


def _cancel(_: Texts, wid: int) -> list[Any]:
    return [button(_("log_chat.btn_cancel"), LogBtn(wid=wid, step="x", value="cancel").pack())]


def prompt(
    step: State, _: Texts, pack: Pack, locale: str, wid: int, data: dict[str, Any] | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    """The question of `step` and its buttons."""

    def b(text: str, s: str, value: str) -> Any:
        return button(text, LogBtn(wid=wid, step=s, value=value).pack())

    if step == LogWizard.action:
        actions = column(b(a.title.get(locale), "act", a.id) for a in pack.actions)
        return _("log_chat.step_action"), rows(*actions, _cancel(_, wid))
    if step == LogWizard.day:
        days = [
            b(_("log_chat.btn_today"), "day", "today"),
            b(_("log_chat.btn_yesterday"), "day", "yesterday"),
            b(_("log_chat.btn_other_day"), "day", "other"),
        ]
        return _("log_chat.step_day"), rows(days, _cancel(_, wid))
    if step == LogWizard.day_typed:
        return _("log_chat.step_day_typed"), rows(_cancel(_, wid))
    if step == LogWizard.duration:
        durations = [b(_("log_chat.btn_hours", hours=m // 60), "dur", str(m)) for m in DURATION_BUTTONS]
        return _("log_chat.step_duration"), rows(durations, _cancel(_, wid))
    if step == LogWizard.place:
        return _("log_chat.step_place"), rows([b(_("log_chat.btn_skip"), "place", "skip")], _cancel(_, wid))
    if step == LogWizard.description:
        return _("log_chat.step_description"), rows(_cancel(_, wid))
    if step == LogWizard.photo:
        return _("log_chat.step_photo"), rows([b(_("log_chat.btn_skip"), "photo", "skip")], _cancel(_, wid))
    if step == LogWizard.confirm:
        assert data is not None
        text = _("log_chat.step_confirm", summary=Raw(summary(_, pack, locale, data)))
        return text, rows(
            [b(_("log_chat.btn_submit"), "ok", "submit"), b(_("log_chat.btn_redo"), "ok", "redo")],
            _cancel(_, wid),
        )
    raise ValueError(f"no prompt for {step}")


NEXT = {
    LogWizard.action.state: LogWizard.day,
    LogWizard.day.state: LogWizard.duration,
    LogWizard.day_typed.state: LogWizard.duration,
    LogWizard.duration.state: LogWizard.place,
    LogWizard.place.state: LogWizard.description,
    LogWizard.description.state: LogWizard.photo,
    LogWizard.photo.state: LogWizard.confirm,
}


async def _answer(state: FSMContext, session: AsyncSession, **changes: Any) -> tuple[State, dict[str, Any]]:
    """Store the current step's answer and move on: to the next step, or straight back to the
    confirmation when the member is fixing one answer the store refused."""
    current = await state.get_state()
    data = await state.get_data()
    nxt = LogWizard.confirm if data.get("fixing") else NEXT[str(current)]
    data = await advance(state, session, nxt, **changes)
    return nxt, data


async def _current(state: FSMContext, callback_data: LogBtn, *steps: State) -> dict[str, Any]:
    """The wizard's answers if this button belongs to the running wizard and its current step."""
    return await running(state, callback_data.wid, *steps, stale="log_chat.stale")


ALL_STEPS = tuple(LogWizard.__states__)

# Where to send the member back when the store refuses the finished form.
BACK_TO = {
    "log.future_date": LogWizard.day_typed,
    "log.too_old": LogWizard.day_typed,
    "log.day_full": LogWizard.duration,
    "log.day_no_room": LogWizard.day_typed,
    "log.bad_minutes": LogWizard.duration,
    "log.bad_place": LogWizard.place,
    "log.bad_description": LogWizard.description,
    "log.unknown_action": LogWizard.action,
}


# ---------------------------------------------------------------------------------------------
# The wizard: buttons


cancel_button(
    router,
    LogBtn.filter(F.step == "x"),
    LogQuick.action,  # the quick form's action pick has the same cancel button
    *ALL_STEPS,
    stale="log_chat.stale",
    done="log_chat.cancelled",
)


@router.callback_query(LogBtn.filter(F.step == "act"))
async def on_wizard_action_click(
    query: CallbackQuery,
    callback_data: LogBtn,
    session: AsyncSession,
    _: Texts,
    pack: Pack,
    locale: str,
    state: FSMContext,
    bot: Bot,
) -> None:
    await _current(state, callback_data, LogWizard.action)
    fresh(pack.action(callback_data.value), "log_chat.stale")
    nxt, data = await _answer(state, session, action=callback_data.value)
    await query.answer()
    await _ask_by_edit(query, bot, nxt, _, pack, locale, callback_data.wid, data)


@router.callback_query(LogBtn.filter(F.step == "day"))
async def on_wizard_day_click(
    query: CallbackQuery,
    callback_data: LogBtn,
    session: AsyncSession,
    _: Texts,
    pack: Pack,
    locale: str,
    today: date,
    settings: Settings,
    state: FSMContext,
    bot: Bot,
) -> None:
    await _current(state, callback_data, LogWizard.day)
    if callback_data.value == "other":
        await advance(state, session, LogWizard.day_typed)
        await query.answer()
        await _ask_by_edit(query, bot, LogWizard.day_typed, _, pack, locale, callback_data.wid)
        return
    day = today - timedelta(days=1 if callback_data.value == "yesterday" else 0)
    check_day(day, today, settings.log_window_days)
    nxt, data = await _answer(state, session, day=day.isoformat())
    await query.answer()
    await _ask_by_edit(query, bot, nxt, _, pack, locale, callback_data.wid, data)


@router.callback_query(LogBtn.filter(F.step == "dur"))
async def on_wizard_duration_click(
    query: CallbackQuery,
    callback_data: LogBtn,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    locale: str,
    state: FSMContext,
    bot: Bot,
) -> None:
    data = await _current(state, callback_data, LogWizard.duration)
    if not callback_data.value.isdigit():
        raise Stale("log_chat.stale")
    minutes = int(callback_data.value)
    try:
        await _check_room(session, actor, data, minutes)
    except Refused as e:
        await query.answer()
        text, markup = prompt(LogWizard.duration, _, pack, locale, callback_data.wid, data)
        await show(query, bot, refusal(_, e) + "\n\n" + text, markup)
        return
    nxt, data = await _answer(state, session, minutes=minutes)
    await query.answer()
    await _ask_by_edit(query, bot, nxt, _, pack, locale, callback_data.wid, data)


@router.callback_query(LogBtn.filter(F.step.in_({"place", "photo"})))
async def on_wizard_skip_click(
    query: CallbackQuery,
    callback_data: LogBtn,
    session: AsyncSession,
    _: Texts,
    pack: Pack,
    locale: str,
    state: FSMContext,
    bot: Bot,
) -> None:
    step = LogWizard.place if callback_data.step == "place" else LogWizard.photo
    await _current(state, callback_data, step)
    nxt, data = await _answer(
        state, session, **({"place": ""} if step == LogWizard.place else {"photo": None})
    )
    await query.answer()
    await _ask_by_edit(query, bot, nxt, _, pack, locale, callback_data.wid, data)


@router.callback_query(LogBtn.filter(F.step == "ok"))
async def on_wizard_confirm_click(
    query: CallbackQuery,
    callback_data: LogBtn,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    locale: str,
    today: date,
    settings: Settings,
    state: FSMContext,
    bot: Bot,
    evidence: EvidenceStore,
) -> None:
    data = await _current(state, callback_data, LogWizard.confirm)
    wid = callback_data.wid
    if callback_data.value == "redo":
        await begin(state, session, LogWizard.action, wid=wid)
        await query.answer()
        await _ask_by_edit(query, bot, LogWizard.action, _, pack, locale, wid)
        return
    fields = {k: data.get(k) for k in ("day", "minutes", "action", "place", "description", "photo")}
    try:
        row = await _log(session, actor, query, wid, fields, today, settings, pack)
    except PossibleDuplicate as e:
        await _ask_duplicate(query, session, _, state, bot, wid, fields, e)
        return
    except Refused as e:
        back = BACK_TO.get(e.key)
        if back is None:
            raise
        # Keep every other answer: only the step the store refused is asked again.
        await advance(state, session, back, fixing=True)
        await query.answer()
        text, markup = prompt(back, _, pack, locale, wid, data)
        await show(query, bot, refusal(_, e) + "\n\n" + text, markup)
        return
    await state.clear()
    await session.commit()
    await query.answer(_("log_chat.recorded_toast"))
    await show(query, bot, recorded_text(_, actor, pack, locale, row))
    await keep_photos(bot, session, evidence, [row])


async def _ask_by_edit(
    query: CallbackQuery,
    bot: Bot,
    step: State,
    _: Texts,
    pack: Pack,
    locale: str,
    wid: int,
    data: dict[str, Any] | None = None,
) -> None:
    text, markup = prompt(step, _, pack, locale, wid, data)
    await show(query, bot, text, markup)


# ---------------------------------------------------------------------------------------------
# The wizard: typed answers


async def _ask(
    message: Message,
    step: State,
    _: Texts,
    pack: Pack,
    locale: str,
    data: dict[str, Any],
    error: str | None = None,
) -> None:
    text, markup = prompt(step, _, pack, locale, int(data["wid"]), data)
    await message.answer(f"{error}\n\n{text}" if error else text, reply_markup=markup)


@router.message(LogWizard.day, TEXT_ONLY)
@router.message(LogWizard.day_typed, TEXT_ONLY)
async def on_wizard_day_text(
    message: Message,
    session: AsyncSession,
    _: Texts,
    pack: Pack,
    locale: str,
    today: date,
    settings: Settings,
    state: FSMContext,
) -> None:
    try:
        day = parse_day(message.text or "", today)
        check_day(day, today, settings.log_window_days)
    except Refused as e:
        await advance(state, session, LogWizard.day_typed)
        await _ask(message, LogWizard.day_typed, _, pack, locale, await state.get_data(), refusal(_, e))
        return
    nxt, data = await _answer(state, session, day=day.isoformat())
    await _ask(message, nxt, _, pack, locale, data)


async def _check_room(session: AsyncSession, actor: Actor, data: dict[str, Any], minutes: int) -> None:
    """The day's 24 hours, as soon as the wizard knows both the day and the duration."""
    if data.get("day"):
        await service_log.check_day_room(session, actor.person_id, date.fromisoformat(data["day"]), minutes)


@router.message(LogWizard.duration, TEXT_ONLY)
async def on_wizard_duration_text(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    locale: str,
    state: FSMContext,
) -> None:
    try:
        minutes = parse_duration(message.text or "")
        await _check_room(session, actor, await state.get_data(), minutes)
    except Refused as e:
        await _ask(message, LogWizard.duration, _, pack, locale, await state.get_data(), refusal(_, e))
        return
    nxt, data = await _answer(state, session, minutes=minutes)
    await _ask(message, nxt, _, pack, locale, data)


@router.message(LogWizard.place, TEXT_ONLY)
@router.message(LogWizard.description, TEXT_ONLY)
async def on_wizard_free_text(
    message: Message, session: AsyncSession, _: Texts, pack: Pack, locale: str, state: FSMContext
) -> None:
    current = await state.get_state()
    field, step = (
        ("place", LogWizard.place)
        if current == LogWizard.place.state
        else ("description", LogWizard.description)
    )
    try:
        value = check_entry_field(field, message.text or "")
    except Refused as e:
        await _ask(message, step, _, pack, locale, await state.get_data(), refusal(_, e))
        return
    nxt, data = await _answer(state, session, **{field: value})
    await _ask(message, nxt, _, pack, locale, data)


@router.message(LogWizard.photo, F.photo)
async def on_wizard_photo(
    message: Message, session: AsyncSession, _: Texts, pack: Pack, locale: str, state: FSMContext
) -> None:
    assert message.photo
    nxt, data = await _answer(state, session, photo=message.photo[-1].file_id)
    await _ask(message, nxt, _, pack, locale, data)


@router.message(LogWizard.photo, ~F.text.startswith("/"))
async def on_wizard_not_a_photo(
    message: Message, _: Texts, pack: Pack, locale: str, state: FSMContext
) -> None:
    await _ask(
        message, LogWizard.photo, _, pack, locale, await state.get_data(), _("log_chat.photo_expected")
    )


@router.message(LogWizard.action, ~F.text.startswith("/"))
@router.message(LogWizard.confirm, ~F.text.startswith("/"))
async def on_wizard_expects_button(
    message: Message, _: Texts, pack: Pack, locale: str, state: FSMContext
) -> None:
    current = LogWizard.action if await state.get_state() == LogWizard.action.state else LogWizard.confirm
    await _ask(message, current, _, pack, locale, await state.get_data(), _("log_chat.use_buttons"))


@router.message(StateFilter(LogWizard), ~F.text.startswith("/"))
async def on_wizard_expects_text(
    message: Message, _: Texts, pack: Pack, locale: str, state: FSMContext
) -> None:
    """A photo, sticker or file where the step asks for text."""
    current = await state.get_state()
    step = next(s for s in ALL_STEPS if s.state == current)
    await _ask(message, step, _, pack, locale, await state.get_data(), _("log_chat.text_expected"))


# ---------------------------------------------------------------------------------------------
# /my


@router.message(Command("my"))
async def cmd_my(
    message: Message,
    session: AsyncSession,
    person: PersonView,
    actor: Actor,
    _: Texts,
    today: date,
    pack: Pack,
    locale: str,
    state: FSMContext,
) -> None:
    await state.clear()
    summary_ = await service_log.my_summary(session, actor, today)
    months = await service_log.monthly_minutes(session, actor, person.id, today.year)
    await session.commit()
    await message.answer(my_text(_, pack, locale, summary_, today))
    if any(months):
        chart = MonthChart(
            title=_.plain("my.chart_title", name=person.name, year=today.year),
            ylabel=_.plain("my.chart_ylabel"),
            month_labels=_.plain("my.chart_months").split(),  # twelve labels, space-separated
            hours=[m / 60 for m in months],
        )
        png = await render_month_chart_async(chart)
        await message.answer_photo(
            BufferedInputFile(png, filename=_.plain("files.hours_chart", year=today.year)),
            caption=_("my.chart_caption", year=today.year),
        )


def my_text(_: Texts, pack: Pack, locale: str, s: service_log.Summary, today: date) -> str:
    def by_action(minutes: dict[str, int]) -> str:
        if not minutes:
            return _("my.none")
        return "\n".join(
            _("my.action_line", action=_action_title(pack, a, locale), hours=hours_1dp(m))
            for a, m in sorted(minutes.items(), key=lambda kv: -kv[1])
        )

    parts = [
        _("my.title", year=today.year, month=today.month),
        _("my.month", hours=hours_1dp(s.month_minutes)) + "\n" + by_action(s.month_by_action),
        _("my.year", year=today.year, hours=hours_1dp(s.year_minutes)) + "\n" + by_action(s.year_by_action),
        _("my.pending", count=s.pending_count, hours=hours_1dp(s.pending_minutes))
        if s.pending_count
        else _("my.no_pending"),
    ]
    if s.rejected_count:
        lines = [
            _(
                "my.rejected_line",
                day=r.day.isoformat(),
                action=_action_title(pack, r.action, locale),
                hours=hours_1dp(r.minutes),
                reason=r.reason or _("my.no_reason"),
            )
            for r in s.rejected
        ]
        parts.append(_("my.rejected", count=s.rejected_count) + "\n" + "\n".join(lines))
    if not s.year_by_action and not s.pending_count:
        parts.append(_("my.start_hint"))
    return "\n\n".join(parts)
