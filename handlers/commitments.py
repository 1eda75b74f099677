"""Public commitments, the owner's side: make one (/commit: a pack template or one's own words,
then a deadline), list them (/commitments), report fulfilment (践诺: text and an optional photo),
or withdraw one that is still open.

The reviewer's side (evaluation, returning for more work, publication) is handlers/evaluate.py.

Templates the pack marks `secretary_only` are the branch's own commitments (本支部承诺…): only a
secretary is offered them, and making one makes the branch's commitment, not a personal one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Raw, Texts
from content.pack import Pack
from handlers.kit.filters import Joined
from handlers.kit.forms import months_later, parse_deadline, short
from handlers.kit.keyboards import button, column, rows, show
from handlers.kit.wizard import Stale, advance, begin, cancel_button, fresh, running
from storage import commitments
from storage.access import Actor
from storage.errors import Refused
from storage.models import Commitment, CommitmentStatus, Role
from storage.service_log import clean_text

router = Router(name=__name__)
router.message.filter(Joined())
router.callback_query.filter(Joined())

FREE = "free"
LISTED = 20
NOT_COMMAND = ~F.text.startswith("/")


class CommitWizard(StatesGroup):
    template = State()
    text = State()
    deadline = State()


class ReportFlow(StatesGroup):
    text = State()
    photo = State()


class CommitBtn(CallbackData, prefix="cc"):
    wid: int
    step: str  # tpl | due | x
    value: str


class CommitAct(CallbackData, prefix="ca"):
    id: int
    action: str  # rep | wd | wd-yes | wd-no | send | x


def _is_secretary(actor: Actor) -> bool:
    return Role.SECRETARY in actor.roles()


# ---------------------------------------------------------------------------------------------
# /commit


@router.message(Command("commit"))
async def cmd_commit(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    locale: str,
    state: FSMContext,
) -> None:
    await state.clear()
    if actor.home_branch_id() is None:
        raise Refused("commitment.not_member")
    wid = message.message_id
    await begin(state, session, CommitWizard.template, wid=wid)

    def b(text: str, value: str) -> InlineKeyboardButton:
        return button(text, CommitBtn(wid=wid, step="tpl", value=value).pack())

    choices = [
        b(
            _("commit_chat.branch_template", title=t.title.get(locale))
            if t.secretary_only
            else t.title.get(locale),
            t.id,
        )
        for t in pack.templates_for(secretary=_is_secretary(actor))
    ]
    markup = rows(*column(choices), [b(_("commit_chat.btn_free"), FREE)], [_cancel(_, wid)])
    await message.answer(_("commit_chat.pick"), reply_markup=markup)


def _cancel(_: Texts, wid: int) -> InlineKeyboardButton:
    return button(_("commit_chat.btn_cancel"), CommitBtn(wid=wid, step="x", value="cancel").pack())


def deadline_prompt(_: Texts, pack: Pack, locale: str, today: date, data: dict[str, Any]) -> tuple[str, Any]:
    wid = int(data["wid"])

    def b(label: str, day: date) -> InlineKeyboardButton:
        return button(
            _("commit_chat.btn_deadline", label=label, day=day.isoformat()),
            CommitBtn(wid=wid, step="due", value=day.isoformat()).pack(),
        )

    offers = sorted(
        [
            (_("commit_chat.one_month"), months_later(today, 1)),
            (_("commit_chat.three_months"), months_later(today, 3)),
            (_("commit_chat.six_months"), months_later(today, 6)),
            (_("commit_chat.year_end"), date(today.year, 12, 31)),
        ],
        key=lambda o: o[1],
    )
    template = pack.template(data["template_id"]) if data.get("template_id") else None
    if template is not None:
        default = date.fromordinal(today.toordinal() + template.default_days)
        offers.insert(0, (_("commit_chat.suggested", days=template.default_days), default))
    # The suggestion first, then by date, one button per date: the suggestion may fall on a
    # month's date, and late in the year the year's end comes before a month from now.
    seen: set[date] = set()
    choices = []
    for label, day in offers:
        if day > today and day not in seen:
            seen.add(day)
            choices.append(b(label, day))
    text = data.get("text") or (template.text.get(locale) if template else "")
    prompt = _("commit_chat.ask_deadline", text=text)
    return prompt, rows(*column(choices), [_cancel(_, wid)])


cancel_button(
    router,
    CommitBtn.filter(F.step == "x"),
    *CommitWizard.__states__,
    stale="commit_chat.stale",
    done="commit_chat.cancelled",
)


@router.callback_query(CommitBtn.filter(F.step == "tpl"))
async def on_template_click(
    query: CallbackQuery,
    callback_data: CommitBtn,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    locale: str,
    today: date,
    state: FSMContext,
    bot: Bot,
) -> None:
    cd = callback_data
    await running(state, cd.wid, CommitWizard.template, stale="commit_chat.stale")
    template = pack.template(cd.value) if cd.value != FREE else None
    if cd.value != FREE and template not in pack.templates_for(secretary=_is_secretary(actor)):
        raise Stale("commit_chat.stale")
    await query.answer()
    if template is None:
        await advance(state, session, CommitWizard.text)
        await show(query, bot, _("commit_chat.ask_text"), rows([_cancel(_, cd.wid)]))
        return
    data = await advance(
        state, session, CommitWizard.deadline, template_id=template.id, for_branch=template.secretary_only
    )
    text, markup = deadline_prompt(_, pack, locale, today, data)
    await show(query, bot, text, markup)


@router.message(CommitWizard.text, F.text, NOT_COMMAND)
async def on_commit_text(
    message: Message, session: AsyncSession, _: Texts, pack: Pack, locale: str, today: date, state: FSMContext
) -> None:
    text = clean_text(message.text or "")
    wid = int((await state.get_data())["wid"])
    if not text or len(text) > 500:
        await message.answer(
            _("commitment.bad_text") + "\n\n" + _("commit_chat.ask_text"),
            reply_markup=rows([_cancel(_, wid)]),
        )
        return
    data = await advance(state, session, CommitWizard.deadline, text=text)
    prompt, markup = deadline_prompt(_, pack, locale, today, data)
    await message.answer(prompt, reply_markup=markup)


@router.callback_query(CommitBtn.filter(F.step == "due"))
async def on_deadline_click(
    query: CallbackQuery,
    callback_data: CommitBtn,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    locale: str,
    today: date,
    now: datetime,
    state: FSMContext,
    bot: Bot,
) -> None:
    data = await running(state, callback_data.wid, CommitWizard.deadline, stale="commit_chat.stale")
    text, markup = await _make(
        session,
        actor,
        _,
        pack,
        locale,
        today,
        now,
        state,
        data,
        date.fromisoformat(callback_data.value),
        query.from_user.id,
    )
    # Answered once made: a refusal `_make` passes on is the guard's alert on this very query.
    await query.answer()
    await show(query, bot, text, markup)


@router.message(CommitWizard.deadline, F.text, NOT_COMMAND)
async def on_deadline_text(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    locale: str,
    today: date,
    now: datetime,
    state: FSMContext,
) -> None:
    data = await state.get_data()
    try:
        deadline = parse_deadline(message.text or "", today)
    except Refused as e:
        prompt, markup = deadline_prompt(_, pack, locale, today, data)
        await message.answer(_(e.key, **e.params) + "\n\n" + prompt, reply_markup=markup)
        return
    text, markup = await _make(
        session, actor, _, pack, locale, today, now, state, data, deadline, message.chat.id
    )
    await message.answer(text, reply_markup=markup)


async def _make(
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    locale: str,
    today: date,
    now: datetime,
    state: FSMContext,
    data: dict[str, Any],
    deadline: date,
    chat_id: int,
) -> tuple[str, InlineKeyboardMarkup | None]:
    """Make the commitment; a refused deadline keeps the wizard at the deadline step."""
    try:
        c = await commitments.make_commitment(
            session,
            actor,
            commitments.new_commitment(
                template_id=data.get("template_id"),
                text=data.get("text"),
                deadline=deadline,
                for_branch=bool(data.get("for_branch")),
            ),
            today=today,
            now=now,
            locale=locale,
            source=f"{chat_id}:{data['wid']}",
            pack=pack,
        )
    except Refused as e:
        if not e.key.startswith("commitment.deadline"):
            raise
        prompt, markup = deadline_prompt(_, pack, locale, today, data)
        return _(e.key, **e.params) + "\n\n" + prompt, markup
    await state.clear()
    await session.commit()
    key = "commit_chat.made_branch" if c.is_branch else "commit_chat.made"
    return _(key, text=c.text, deadline=c.deadline.isoformat()), None


@router.message(CommitWizard.template, NOT_COMMAND)
@router.message(CommitWizard.deadline, NOT_COMMAND)
@router.message(CommitWizard.text, NOT_COMMAND)
async def on_commit_wizard_other(message: Message, _: Texts, state: FSMContext) -> None:
    """Text where a button is expected, or a photo or file where text is."""
    current = await state.get_state()
    key = "commit_chat.use_buttons" if current == CommitWizard.template.state else "commit_chat.text_expected"
    await message.answer(_(key))


# ---------------------------------------------------------------------------------------------
# /commitments


def _status(_: Texts, c: Commitment, overdue: bool) -> str:
    if overdue:
        return _("commitment.status.overdue")
    return _(f"commitment.status.{c.status.value}")


@router.message(Command("commitments"))
async def cmd_commitments(
    message: Message, session: AsyncSession, actor: Actor, _: Texts, today: date, state: FSMContext
) -> None:
    await state.clear()
    views = await commitments.list_commitments(session, actor, "mine", today)
    if not views:
        await message.answer(_("commit_chat.none"))
        return
    lines = [_("commit_chat.list_header", count=len(views))]
    buttons: list[list[InlineKeyboardButton]] = []
    for n, v in enumerate(views[:LISTED], start=1):
        c = v.commitment
        item = _(
            "commit_chat.item",
            n=n,
            text=short(c.text, 120),
            deadline=c.deadline.isoformat(),
            status=_status(_, c, v.overdue),
        )
        if c.status is CommitmentStatus.EVALUATED and c.rating:
            item += "\n" + _(
                "commit_chat.item_rating",
                rating=_(f"commitment.rating.{c.rating}"),
                comment=c.evaluation or "—",
            )
        elif c.status is CommitmentStatus.MADE and c.evaluation:
            item += "\n" + _("commit_chat.item_returned", comment=c.evaluation)
        lines.append(item)
        if c.status is CommitmentStatus.MADE:
            buttons.append(
                [
                    button(_("commit_chat.btn_report_n", n=n), CommitAct(id=c.id, action="rep").pack()),
                    button(_("commit_chat.btn_withdraw_n", n=n), CommitAct(id=c.id, action="wd").pack()),
                ]
            )
    if buttons:
        lines.append(_("commit_chat.list_footer"))
    await message.answer("\n\n".join(lines), reply_markup=rows(*buttons) if buttons else None)


async def _open_commitment(session: AsyncSession, actor: Actor, commitment_id: int) -> Commitment | None:
    """The actor's own personal commitment, if it is still open (made, not yet reported)."""
    c = await session.get(Commitment, commitment_id)
    if c is None or c.is_branch or c.person_id != actor.person_id or c.status is not CommitmentStatus.MADE:
        return None
    return c


@router.callback_query(CommitAct.filter(F.action == "rep"))
async def on_report_click(
    query: CallbackQuery,
    callback_data: CommitAct,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    state: FSMContext,
    bot: Bot,
) -> None:
    c = fresh(await _open_commitment(session, actor, callback_data.id), "commit_chat.not_open")
    await begin(state, session, ReportFlow.text, cid=c.id)
    await query.answer()
    await bot.send_message(
        query.from_user.id,
        _("commit_chat.ask_fulfilment", text=short(c.text, 200)),
        reply_markup=rows([_report_cancel(_, c.id)]),
    )


def _report_cancel(_: Texts, cid: int) -> InlineKeyboardButton:
    return button(_("commit_chat.btn_cancel"), CommitAct(id=cid, action="x").pack())


@router.message(ReportFlow.text, F.photo)
@router.message(ReportFlow.photo, F.photo)
async def on_fulfilment_photo(
    message: Message, session: AsyncSession, actor: Actor, _: Texts, now: datetime, state: FSMContext
) -> None:
    assert message.photo
    file_id = message.photo[-1].file_id
    data = await state.get_data()
    text = clean_text(message.caption or "") or data.get("text")
    if not text:
        # A photo first: keep it, and ask for the words.
        await state.update_data(photo=file_id)
        await session.commit()
        await message.answer(
            _("commit_chat.photo_kept_need_text"), reply_markup=rows([_report_cancel(_, data["cid"])])
        )
        return
    await message.answer(**await _report(session, actor, _, now, state, data, text, file_id))


@router.message(ReportFlow.text, F.text, NOT_COMMAND)
async def on_fulfilment_text(
    message: Message, session: AsyncSession, actor: Actor, _: Texts, now: datetime, state: FSMContext
) -> None:
    data = await state.get_data()
    text = clean_text(message.text or "")
    if not text or len(text) > 1000:
        await message.answer(
            _("commitment.bad_fulfilment") + "\n\n" + _("commit_chat.ask_fulfilment_again"),
            reply_markup=rows([_report_cancel(_, data["cid"])]),
        )
        return
    if data.get("photo"):
        await message.answer(**await _report(session, actor, _, now, state, data, text, data["photo"]))
        return
    await advance(state, session, ReportFlow.photo, text=text)
    markup = rows(
        [button(_("commit_chat.btn_send_without_photo"), CommitAct(id=data["cid"], action="send").pack())],
        [_report_cancel(_, data["cid"])],
    )
    await message.answer(_("commit_chat.ask_photo"), reply_markup=markup)


@router.callback_query(CommitAct.filter(F.action == "send"))
async def on_send_without_photo_click(
    query: CallbackQuery,
    callback_data: CommitAct,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    now: datetime,
    state: FSMContext,
    bot: Bot,
) -> None:
    data = await running(state, callback_data.id, ReportFlow.photo, stale="commit_chat.stale", run_key="cid")
    await query.answer()
    reply = await _report(session, actor, _, now, state, data, data["text"], None)
    await show(query, bot, reply["text"])


@router.message(ReportFlow.photo, NOT_COMMAND)
@router.message(ReportFlow.text, NOT_COMMAND)
async def on_fulfilment_other(message: Message, _: Texts, state: FSMContext) -> None:
    key = (
        "commit_chat.photo_expected"
        if await state.get_state() == ReportFlow.photo.state
        else "commit_chat.text_expected"
    )
    await message.answer(_(key))


async def _report(
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    now: datetime,
    state: FSMContext,
    data: dict[str, Any],
    text: str,
    file_id: str | None,
) -> dict[str, Any]:
    """Report the fulfilment; the flow ends either way (a refusal says why)."""
    await state.clear()
    try:
        c = await commitments.report_fulfilment(session, actor, int(data["cid"]), text, file_id, now)
    except Refused as e:
        await session.commit()
        return {"text": _("commit_chat.report_failed", reason=Raw(_(e.key, **e.params)))}
    await session.commit()
    return {"text": _("commit_chat.reported", text=short(c.text, 200))}


cancel_button(
    router,
    CommitAct.filter(F.action == "x"),
    *ReportFlow.__states__,
    stale="commit_chat.stale",
    done="commit_chat.report_cancelled",
    field="id",
    run_key="cid",
)


@router.callback_query(CommitAct.filter(F.action == "wd"))
async def on_withdraw_click(
    query: CallbackQuery, callback_data: CommitAct, session: AsyncSession, actor: Actor, _: Texts, bot: Bot
) -> None:
    c = fresh(await _open_commitment(session, actor, callback_data.id), "commit_chat.not_open")
    await query.answer()
    markup = rows(
        [
            button(_("commit_chat.btn_withdraw_yes"), CommitAct(id=c.id, action="wd-yes").pack()),
            button(_("commit_chat.btn_withdraw_no"), CommitAct(id=c.id, action="wd-no").pack()),
        ]
    )
    await bot.send_message(
        query.from_user.id, _("commit_chat.withdraw_confirm", text=short(c.text, 200)), reply_markup=markup
    )


@router.callback_query(CommitAct.filter(F.action == "wd-no"))
async def on_withdraw_no_click(query: CallbackQuery, _: Texts, bot: Bot) -> None:
    await query.answer()
    await show(query, bot, _("commit_chat.withdraw_kept"))


@router.callback_query(CommitAct.filter(F.action == "wd-yes"))
async def on_withdraw_yes_click(
    query: CallbackQuery,
    callback_data: CommitAct,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    now: datetime,
    bot: Bot,
) -> None:
    fresh(await _open_commitment(session, actor, callback_data.id), "commit_chat.not_open")
    c = await commitments.withdraw(session, actor, callback_data.id, now)
    await session.commit()
    await query.answer()
    await show(query, bot, _("commit_chat.withdrawn", text=short(c.text, 200)))
