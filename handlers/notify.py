"""/notify: compose a notice (text, or a photo or document with a caption), choose the audience,
preview it as recipients will see it, and send it now or at a chosen time. /notices for senders:
each notice's acknowledged ratio, a private nudge to those who have not acknowledged, and then
the sender's own received notices (with the member side's "ack:<delivery id>" buttons).

The confirmation message becomes the notice's status message: it is recorded on the notice in
the same transaction as the outbox rows, and the delivery worker edits it with the sent /
failed / blocked counts. Right after the commit it is edited once here with the counts as they
stand then, so it never shows less than the worker has already done.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Raw, Texts
from handlers.kit.keyboards import button, picker
from handlers.kit.wizard import Stale, fresh, running
from handlers.manage import MANAGERS, STAFF_ROLES, local_time, managers, message_of, secretary_branch, short
from handlers.manage import staff_root as staff_org
from storage import notices
from storage.access import Actor, require_manager
from storage.models import Audience, DeliveryStatus, Notice, NoticeStatus
from storage.people import PersonView

router = Router(name=__name__)
router.message.filter(managers())
router.callback_query.filter(managers())

MAX_AHEAD = timedelta(days=90)
MORNING = time(9, 0)
LISTED = 5
PREVIEW = 60


class NotifyAudience(CallbackData, prefix="sna"):
    audience: Audience
    org_id: int


class NotifySend(CallbackData, prefix="sns"):
    version: int
    when: str  # "now" | "morning" | "at" (the time typed, kept in the conversation)


class NotifyStep(CallbackData, prefix="snx"):
    version: int
    action: str  # "time" | "cancel"


class NoticeAction(CallbackData, prefix="snn"):
    notice_id: int
    action: str  # "nudge" | "cancel"


class NotifyFlow(StatesGroup):
    content = State()
    when = State()


# ---- pure helpers ----


class WhenError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


_WHEN = re.compile(
    r"^(?:(?:(?P<y>\d{4})[-/.])?(?P<mo>\d{1,2})[-/.](?P<d>\d{1,2})|(?P<rel>今天|明天|后天|today|tomorrow))?"
    r"\s*(?P<h>\d{1,2})[:：](?P<mi>\d{2})$",
    re.I,
)
_REL = {"今天": 0, "today": 0, "明天": 1, "tomorrow": 1, "后天": 2}


def parse_when(text: str, tz: tzinfo, now: datetime) -> datetime:
    """A send time typed by the sender, read in the branch's time zone, as an aware UTC datetime.

    "2026-12-01 09:00", "12-01 9:00", "明天 9:00", "tomorrow 18:30", "18:30" (today, or
    tomorrow once that time has passed). Raises `WhenError` with a catalog key.
    """
    m = _WHEN.match(" ".join((text or "").split()))
    if m is None:
        raise WhenError("notify_chat.bad_when")
    today = now.astimezone(tz).date()
    try:
        at = time(int(m["h"]), int(m["mi"]))
        if m["rel"]:
            day = today + timedelta(days=_REL[m["rel"].lower()])
        elif m["mo"]:
            day = date(int(m["y"] or today.year), int(m["mo"]), int(m["d"]))
            if m["y"] is None and datetime.combine(day, at, tz) <= now:
                day = day.replace(year=day.year + 1)
        else:
            day = today
            if datetime.combine(day, at, tz) <= now:
                day += timedelta(days=1)
    except ValueError:
        raise WhenError("notify_chat.bad_when") from None
    when = datetime.combine(day, at, tz)
    if when <= now:
        raise WhenError("notify_chat.when_past")
    if when - now > MAX_AHEAD:
        raise WhenError("notify_chat.when_too_far")
    return when.astimezone(now.tzinfo)


EXAMPLE_AHEAD = timedelta(days=7)


def example_when(tz: tzinfo, now: datetime) -> str:
    """The sample time the prompts show: a week from today at 9:00, so it is always accepted."""
    day = now.astimezone(tz).date() + EXAMPLE_AHEAD
    return datetime.combine(day, MORNING).strftime("%Y-%m-%d %H:%M")


def _when_words(_: Texts, audience: Audience, tz: tzinfo, now: datetime) -> dict[str, str]:
    """The prompt's parameters: the example, and whose time zone, worded for the sender's level."""
    level = "branch" if audience is Audience.BRANCH_MEMBERS else "committee"
    return {"example": example_when(tz, now), "zone": _(f"notify_chat.zone_{level}")}


def next_morning(tz: tzinfo, now: datetime) -> datetime:
    """The next 9:00 in the branch's time zone: this morning's if it is still to come (a secretary
    writing after midnight means the morning after their night), else tomorrow's."""
    local = now.astimezone(tz)
    at = datetime.combine(local.date(), MORNING, tz)
    if at <= local:
        at = datetime.combine(local.date() + timedelta(days=1), MORNING, tz)
    return at.astimezone(now.tzinfo)


def _morning_label(_: Texts, tz: tzinfo, now: datetime) -> str:
    """Says which morning: "this morning" after midnight, "tomorrow morning" otherwise."""
    today = next_morning(tz, now).astimezone(tz).date() == now.astimezone(tz).date()
    return _("notify_chat.send_this_morning" if today else "notify_chat.send_morning")


# ---- shared with evaluate.py (公示) ----


async def recipient_reach(s: AsyncSession, actor: Actor, org_id: int, audience: Audience) -> notices.Reach:
    """Whom a notice from the actor to `audience` of `org_id` would reach, and whom it would miss."""
    org = await require_manager(
        s, actor, org_id, MANAGERS if audience is Audience.BRANCH_MEMBERS else STAFF_ROLES
    )
    probe = Notice(org_id=org.id, audience=audience, sender_id=actor.person_id)
    return await notices.reach(s, probe, org, actor.person_id)


def reach_text(_: Texts, key: str, reach: notices.Reach, **kw: str) -> str:
    """The confirmation with its count, and who will not get it (not joined, or stopped the bot)."""
    text = _(key, count=reach.reached, **kw)
    if reach.missed:
        text += "\n" + _("notify_chat.missed", count=reach.missed)
    return text


async def status_text(s: AsyncSession, actor: Actor, notice_id: int, _: Texts) -> str:
    st = await notices.notice_stats(s, actor, notice_id)
    notice = await s.get(Notice, notice_id)
    if st.total == 0:
        return _("notify_chat.no_recipients")
    done = notice is not None and notice.status is NoticeStatus.DONE
    return _(
        "notices.status.done" if done else "notices.status.progress",
        total=st.total,
        sent=st.sent,
        failed=st.failed,
        blocked=st.blocked,
        pending=st.pending,
    )


# ---- composing ----


def _audience_label(_: Texts, audience: Audience) -> str:
    return _(f"notify_chat.aud_{audience.value}")


def _options(actor: Actor) -> list[tuple[Audience, int]]:
    out: list[tuple[Audience, int]] = []
    branch = secretary_branch(actor)
    if branch is not None:
        out.append((Audience.BRANCH_MEMBERS, branch))
    root = staff_org(actor)
    if root is not None:
        out += [(Audience.SUBTREE_SECRETARIES, root), (Audience.SUBTREE_ALL, root)]
    return out


async def _start_content(
    message: Message, state: FSMContext, audience: Audience, org_id: int, _: Texts
) -> None:
    await state.set_state(NotifyFlow.content)
    await state.set_data({"audience": audience.value, "org_id": org_id, "version": 0})
    await message.answer(_("notify_chat.ask_content", audience=_audience_label(_, audience)))


@router.message(Command("notify"))
async def cmd_notify(
    message: Message, session: AsyncSession, actor: Actor, _: Texts, state: FSMContext
) -> None:
    await state.clear()
    options = _options(actor)
    if not options:
        await message.answer(_("notify_chat.nowhere"))
        return
    if len(options) == 1:
        audience, org_id = options[0]
        await require_manager(session, actor, org_id)
        await _start_content(message, state, audience, org_id, _)
        return
    rows = [
        [
            InlineKeyboardButton(
                text=_audience_label(_, a), callback_data=NotifyAudience(audience=a, org_id=o).pack()
            )
        ]
        for a, o in options
    ]
    await message.answer(
        _("notify_chat.ask_audience"), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows)
    )


@router.callback_query(NotifyAudience.filter())
async def on_audience_click(
    query: CallbackQuery,
    callback_data: NotifyAudience,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    state: FSMContext,
) -> None:
    roles = MANAGERS if callback_data.audience is Audience.BRANCH_MEMBERS else STAFF_ROLES
    await require_manager(session, actor, callback_data.org_id, roles)
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.edit_reply_markup(reply_markup=None)
        await _start_content(msg, state, callback_data.audience, callback_data.org_id, _)


def _content_of(message: Message) -> tuple[str, str | None, str | None]:
    """(text, file id, file kind) of what the sender sent."""
    if message.photo:
        return message.caption or "", message.photo[-1].file_id, "photo"
    if message.document:
        return message.caption or "", message.document.file_id, "document"
    return message.text or "", None, None


@router.message(NotifyFlow.content, ~F.text.startswith("/"))
async def on_content(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    state: FSMContext,
    bot: Bot,
    tz: tzinfo,
    now: datetime,
) -> None:
    if not (message.text or message.photo or message.document):
        await message.answer(_("notify_chat.content_kind"))
        return
    text, file_id, file_kind = _content_of(message)
    text = text.strip()
    limit = notices.CAPTION_MAX if file_id else notices.TEXT_MAX
    if file_id and not text:
        await message.answer(_("notify_chat.caption_needed"))
        return
    if len(text) > limit:
        await message.answer(
            _("notices.caption_length" if file_id else "notices.text_length", max=limit)
            + "\n"
            + _("notify_chat.content_again")
        )
        return
    data = await state.get_data()
    audience = Audience(data["audience"])
    org = await require_manager(
        session, actor, int(data["org_id"]), MANAGERS if audience is Audience.BRANCH_MEMBERS else STAFF_ROLES
    )
    reach = await recipient_reach(session, actor, org.id, audience)
    version = int(data.get("version", 0)) + 1
    await state.update_data(text=text, file_id=file_id, file_kind=file_kind, version=version, at=None)
    await session.commit()
    # The preview: what each recipient will get, without the acknowledge button.
    if file_kind == "photo" and file_id:
        await message.answer_photo(file_id, caption=_("notices.caption", text=text))
    elif file_id:
        await message.answer_document(file_id, caption=_("notices.caption", text=text))
    else:
        await message.answer(_("notices.message", org=short(org.name, notices.ORG_NAME_MAX), text=text))
    await message.answer(
        reach_text(_, "notify_chat.confirm", reach, audience=_audience_label(_, audience)),
        reply_markup=_confirm_keyboard(_, version, tz, now),
    )


def _confirm_keyboard(_: Texts, version: int, tz: tzinfo, now: datetime) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("notify_chat.send_now"),
                    callback_data=NotifySend(version=version, when="now").pack(),
                )
            ],
            [
                InlineKeyboardButton(
                    text=_morning_label(_, tz, now),
                    callback_data=NotifySend(version=version, when="morning").pack(),
                ),
                InlineKeyboardButton(
                    text=_("notify_chat.send_at"),
                    callback_data=NotifyStep(version=version, action="time").pack(),
                ),
            ],
            [
                InlineKeyboardButton(
                    text=_("notify_chat.cancel"),
                    callback_data=NotifyStep(version=version, action="cancel").pack(),
                )
            ],
        ]
    )


async def _current(state: FSMContext, version: int) -> dict[str, Any]:
    """The conversation's draft, if the button pressed belongs to its latest preview."""
    data = await running(
        state, version, NotifyFlow.content, NotifyFlow.when, stale="notify_chat.stale", run_key="version"
    )
    return fresh(data if data.get("text") else None, "notify_chat.stale")


@router.callback_query(NotifyStep.filter(F.action == "cancel"))
async def on_cancel_click(
    query: CallbackQuery, callback_data: NotifyStep, _: Texts, state: FSMContext
) -> None:
    await _current(state, callback_data.version)
    await state.clear()
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.edit_text(_("notify_chat.cancelled"))


@router.callback_query(NotifyStep.filter(F.action == "time"))
async def on_time_click(
    query: CallbackQuery, callback_data: NotifyStep, _: Texts, state: FSMContext, tz: tzinfo, now: datetime
) -> None:
    data = await _current(state, callback_data.version)
    await state.set_state(NotifyFlow.when)
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.answer(_("notify_chat.ask_when", **_when_words(_, Audience(data["audience"]), tz, now)))


@router.message(NotifyFlow.when, F.text, ~F.text.startswith("/"))
async def on_when_text(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    state: FSMContext,
    tz: tzinfo,
    now: datetime,
) -> None:
    data = await state.get_data()
    try:
        when = parse_when(message.text or "", tz, now)
    except WhenError as e:
        words = _when_words(_, Audience(data["audience"]), tz, now)
        await message.answer(_(e.key) + "\n" + _("notify_chat.when_example", **words))
        return
    version = int(data.get("version", 0))
    await state.update_data(at=when.isoformat())
    audience = Audience(data["audience"])
    reach = await recipient_reach(session, actor, int(data["org_id"]), audience)
    await session.commit()
    await message.answer(
        reach_text(
            _,
            "notify_chat.confirm_at",
            reach,
            when=local_time(when, tz),
            audience=_audience_label(_, audience),
        ),
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=_("notify_chat.send_at_confirm"),
                        callback_data=NotifySend(version=version, when="at").pack(),
                    )
                ],
                [
                    InlineKeyboardButton(
                        text=_("notify_chat.cancel"),
                        callback_data=NotifyStep(version=version, action="cancel").pack(),
                    )
                ],
            ]
        ),
    )


@router.message(NotifyFlow.when, ~F.text.startswith("/"))
async def on_when_not_text(message: Message, _: Texts, state: FSMContext, tz: tzinfo, now: datetime) -> None:
    data = await state.get_data()
    await message.answer(_("notify_chat.ask_when", **_when_words(_, Audience(data["audience"]), tz, now)))


@router.callback_query(NotifySend.filter())
async def on_send_click(
    query: CallbackQuery,
    callback_data: NotifySend,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    state: FSMContext,
    tz: tzinfo,
    now: datetime,
    bot: Bot,
) -> None:
    msg = message_of(query)
    data = await _current(state, callback_data.version)
    if msg is None:
        raise Stale("notify_chat.stale")
    scheduled: datetime | None = None
    if callback_data.when == "morning":
        scheduled = next_morning(tz, now)
    elif callback_data.when == "at":
        if not data.get("at"):
            raise Stale("notify_chat.stale")
        scheduled = datetime.fromisoformat(str(data["at"]))
    notice = await notices.create_notice(
        session,
        actor,
        int(data["org_id"]),
        Audience(data["audience"]),
        str(data["text"]),
        data.get("file_id"),
        data.get("file_kind"),
        scheduled,
        now=now,
        source=f"notify:{msg.chat.id}:{msg.message_id}",
    )
    await notices.send_notice(session, actor, notice.id, now=now)
    # This message becomes the status message, recorded with the outbox rows in one commit.
    await notices.set_status_message(session, actor, notice.id, msg.chat.id, msg.message_id)
    await state.clear()
    await session.commit()
    await query.answer()
    if notice.status is NoticeStatus.SCHEDULED and notice.scheduled_at is not None:
        text = _("notify_chat.scheduled", when=local_time(notice.scheduled_at, tz))
        markup = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=_("notify_chat.cancel_scheduled"),
                        callback_data=NoticeAction(notice_id=notice.id, action="cancel").pack(),
                    )
                ]
            ]
        )
        await edit_status(msg, text, markup)
        return
    # The counts as they stand now: the worker may already have sent some.
    await edit_status(msg, await status_text(session, actor, notice.id, _), None)


async def edit_status(msg: Message, text: str, markup: InlineKeyboardMarkup | None) -> None:
    try:
        await msg.edit_text(text, reply_markup=markup)
    except TelegramBadRequest:
        pass  # the worker already wrote the same counts


# ---- /notices for senders ----

UNREAD_NAMED = 5  # names shown per notice; the rest are counted


def _sent_to(_: Texts, s: notices.NoticeSummary, actor: Actor) -> str:
    """Whom the notice went to; a notice someone else sent (a branch's, seen by its committee)
    is labelled by its branch and sender, not as if the reader had sent it."""
    if s.notice.sender_id == actor.person_id:
        return _audience_label(_, s.notice.audience)
    return _(
        "notify_chat.sent_by_other",
        org=short(s.org_name, notices.ORG_NAME_MAX),
        sender=s.sender_name or _("notify_chat.sender_unknown"),
        audience=_(f"notify_chat.aud_other_{s.notice.audience.value}"),
    )


async def _unread_line(session: AsyncSession, actor: Actor, s: notices.NoticeSummary, _: Texts) -> str:
    """Who has not read it: the first few names, then how many more."""
    waiting = await notices.unacknowledged(session, actor, s.notice.id, limit=UNREAD_NAMED)
    names = "、".join(u.name for u in waiting)
    more = s.recipients - s.acknowledged - len(waiting)
    if more > 0:
        return _("notify_chat.unread_more", names=names, more=more)
    return _("notify_chat.unread", names=names)


def _ratio(_: Texts, s: notices.NoticeSummary) -> str:
    if s.ratio is None:
        return _("notify_chat.ratio_none")
    return _("notify_chat.ratio", acked=s.acknowledged, total=s.recipients, pct=f"{s.ratio:.0%}")


def _awaits_ack(s: notices.NoticeSummary) -> bool:
    """Sent, and someone has not acknowledged it yet (a nudge has someone to reach)."""
    return s.notice.status in (NoticeStatus.SENDING, NoticeStatus.DONE) and s.acknowledged < s.recipients


def _sent_button(_: Texts, n: int, s: notices.NoticeSummary) -> InlineKeyboardButton | None:
    """Notice n's button in the sent list: nudge the unread, or cancel a scheduled one."""
    if _awaits_ack(s):
        text = _("notify_chat.nudge_button", n=n, count=s.recipients - s.acknowledged)
        return button(text, NoticeAction(notice_id=s.notice.id, action="nudge").pack())
    if s.notice.status is NoticeStatus.SCHEDULED:
        return button(
            _("notify_chat.cancel_n", n=n), NoticeAction(notice_id=s.notice.id, action="cancel").pack()
        )
    return None


@router.message(Command("notices"))
async def cmd_notices(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    person: PersonView,
    _: Texts,
    tz: tzinfo,
    state: FSMContext,
) -> None:
    await state.clear()
    sent = await notices.list_notices(session, actor, limit=LISTED)
    if sent:
        committee = staff_org(actor) is not None
        # Fetched before the list is laid out: the picker's line is a plain function.
        unread = {s.notice.id: await _unread_line(session, actor, s, _) for s in sent if _awaits_ack(s)}

        def sent_line(n: int, s: notices.NoticeSummary) -> str:
            line = _(
                "notify_chat.sent_item",
                n=n,
                when=local_time(s.notice.sent_at or s.notice.scheduled_at or s.notice.created_at, tz),
                audience=Raw(_sent_to(_, s, actor)),
                status=_(f"notify_chat.status_{s.notice.status.value}"),
                preview=short(s.notice.text, PREVIEW),
                ratio=_ratio(_, s),
            )
            return line + "\n" + unread[s.notice.id] if s.notice.id in unread else line

        text, rows = picker(
            _("notify_chat.scope_header" if committee else "notify_chat.sent_header"),
            sent,
            sent_line,
            lambda n, s: _sent_button(_, n, s),
            gap="\n\n",
        )
        await message.answer(text, reply_markup=InlineKeyboardMarkup(inline_keyboard=rows) if rows else None)
    received = await notices.recipient_notices(session, person, limit=LISTED)
    if received:
        text, rows = picker(
            _("notify_chat.received_header"),
            received,
            lambda n, r: _(
                "notify_chat.received_item",
                n=n,
                when=local_time(r.sent_at, tz),
                org=r.org_name,
                preview=short(r.text, PREVIEW),
                state=_("notify_chat.acked" if r.acknowledged else "notify_chat.not_acked"),
            ),
            lambda n, r: (
                None if r.acknowledged else button(_("notify_chat.ack_n", n=n), f"ack:{r.delivery_id}")
            ),
            gap="\n\n",
        )
        await message.answer(text, reply_markup=InlineKeyboardMarkup(inline_keyboard=rows) if rows else None)
    if not sent and not received:
        committee = staff_org(actor) is not None
        await message.answer(
            _("notify_chat.notices_empty_committee" if committee else "notify_chat.notices_empty")
        )


@router.callback_query(NoticeAction.filter(F.action == "nudge"))
async def on_nudge_click(
    query: CallbackQuery,
    callback_data: NoticeAction,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    now: datetime,
) -> None:
    nudged = await notices.nudge(session, actor, callback_data.notice_id, now=now)
    waiting = await notices.unacknowledged(session, actor, callback_data.notice_id)
    await session.commit()
    if not nudged:
        await query.answer(_("notify_chat.nudge_none"), show_alert=True)
        return
    names = "、".join(u.name for u in waiting if u.status is DeliveryStatus.SENT)
    unreachable = sum(1 for u in waiting if u.status in (DeliveryStatus.BLOCKED, DeliveryStatus.FAILED))
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        text = _("notify_chat.nudged", count=nudged, names=names)
        if unreachable:
            text += "\n" + _("notify_chat.unreachable", count=unreachable)
        await msg.answer(text)


@router.callback_query(NoticeAction.filter(F.action == "cancel"))
async def on_cancel_notice_click(
    query: CallbackQuery, callback_data: NoticeAction, session: AsyncSession, actor: Actor, _: Texts
) -> None:
    await notices.cancel_notice(session, actor, callback_data.notice_id)
    await session.commit()
    await query.answer(_("notify_chat.notice_cancelled"), show_alert=True)
    msg = message_of(query)
    if msg is not None and msg.text and callback_data.notice_id:
        try:
            await msg.edit_reply_markup(reply_markup=None)
        except TelegramBadRequest:
            pass
