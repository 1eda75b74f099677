"""Notices (通知): a secretary writes to the branch, committee staff to their subtree; each
recipient gets one Delivery in the outbox with an "已阅 / Acknowledge" button, and the sender sees
who acknowledged.

Audiences:
- branch_members: the branch's members and secretaries (secretary of the branch, or staff/admin above);
- subtree_secretaries / subtree_all: the secretaries, or everyone, of the branches under an org
  (staff or admin only).
A recipient has joined (has a Telegram id), consented, is reachable and not erased. The sender is
not sent their own notice: they follow it through the status counts instead.

`Notice.text` is plain text as the sender wrote it; it is HTML-escaped into the message here.
Buttons: a notice (and each nudge about it) carries callback_data "ack:<delivery id of the notice>";
the handler passes the presser's Telegram id and that id to `acknowledge`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Float, Select, case, cast, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts, texts
from storage import audit
from storage.access import Actor, require_manager
from storage.db import is_sqlite
from storage.errors import Forbidden, Invalid, NotFound, Refused
from storage.models import (
    Audience,
    Delivery,
    DeliveryStatus,
    Membership,
    Notice,
    NoticeStatus,
    Org,
    OrgKind,
    Person,
    Role,
)
from storage.outbox import OutMessage, enqueue_many, set_payloads
from storage.validation import parse

if TYPE_CHECKING:
    from storage.people import PersonView

TEXT_MAX = 4000
CAPTION_MAX = 1024  # Telegram's limit for a photo or document caption
ORG_NAME_MAX = 60  # the header line stays short, so header + text fits Telegram's 4096
PREVIEW_MAX = 200
KIND_NOTICE = "notice"
KIND_NUDGE = "nudge"
SUBTREE_ROLES = (Role.STAFF, Role.ADMIN)
MEMBER_ROLES = (Role.MEMBER, Role.SECRETARY)


class NewNotice(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True)

    audience: Audience
    text: str
    file_id: str | None = Field(default=None, min_length=1, max_length=200)
    file_kind: Literal["photo", "document"] | None = None
    scheduled_at: AwareDatetime | None = None
    source: str | None = Field(default=None, min_length=1, max_length=80)


@dataclass(frozen=True, slots=True)
class NoticeStats:
    total: int
    pending: int
    sent: int
    failed: int
    blocked: int
    acknowledged: int


@dataclass(frozen=True, slots=True)
class NoticeSummary:
    notice: Notice
    recipients: int
    acknowledged: int
    ratio: float | None  # acknowledged / recipients; None when there were no recipients
    org_name: str = ""
    sender_name: str | None = None  # None when the sender's record is gone


@dataclass(frozen=True, slots=True)
class Unacknowledged:
    person_id: int
    name: str
    status: DeliveryStatus


@dataclass(frozen=True, slots=True)
class SentCopy:
    """A message in a recipient's chat that carries the "已阅" button of one notice delivery:
    the notice itself or a nudge about it."""

    kind: str  # KIND_NOTICE | KIND_NUDGE
    chat_id: int
    message_id: int
    payload: dict[str, Any]
    org_name: str
    notice_text: str


@dataclass(frozen=True, slots=True)
class RecipientNotice:
    notice_id: int
    delivery_id: int
    org_name: str
    text: str
    sent_at: datetime | None
    acknowledged: bool


def _check_scope(actor: Actor, org: Org, audience: Audience) -> None:
    if audience is Audience.BRANCH_MEMBERS:
        if not actor.manages(org):
            raise Forbidden()
    elif not actor.manages(org, SUBTREE_ROLES):
        raise Forbidden()


async def create_notice(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    audience: Audience | str,
    text: str,
    file_id: str | None = None,
    file_kind: str | None = None,
    scheduled_at: datetime | None = None,
    *,
    now: datetime,
    source: str | None = None,
) -> Notice:
    """A draft notice; `send_notice` puts it in the outbox. The same `source` returns the same notice."""
    data = parse(
        NewNotice,
        audience=audience,
        text=text,
        file_id=file_id,
        file_kind=file_kind,
        scheduled_at=scheduled_at,
        source=source,
    )
    org = await _org_in_scope(s, actor, org_id, data.audience)
    if data.source is not None:
        existing = await s.scalar(select(Notice).where(Notice.source == data.source))
        if existing is not None:
            return existing
    if data.audience is Audience.BRANCH_MEMBERS and org.kind is not OrgKind.BRANCH:
        raise Refused("notices.not_a_branch")
    if (data.file_id is None) != (data.file_kind is None):
        raise Invalid("error.invalid", field="file_kind")
    limit = CAPTION_MAX if data.file_id else TEXT_MAX
    if not 1 <= len(data.text) <= limit:
        raise Invalid("notices.caption_length" if data.file_id else "notices.text_length", max=limit)
    when = data.scheduled_at
    if when is not None and when <= now:
        when = None  # "send at a time already past" means now
    notice = Notice(
        org_id=org.id,
        sender_id=actor.person_id,
        audience=data.audience,
        text=data.text,
        file_id=data.file_id,
        file_kind=data.file_kind,
        scheduled_at=when,
        status=NoticeStatus.DRAFT,
        source=data.source,
        created_at=now,
    )
    s.add(notice)
    await s.flush()
    await _audit(s, actor, "notice.create", notice, now, audience=notice.audience.value)
    return notice


async def _audit(
    s: AsyncSession, actor: Actor, action: str, notice: Notice, now: datetime | None, **detail: object
) -> None:
    await audit.record(
        s, actor, action, org_id=notice.org_id, detail={"notice_id": notice.id, **detail}, now=now
    )


async def _org_in_scope(s: AsyncSession, actor: Actor, org_id: int, audience: Audience) -> Org:
    org = await s.get(Org, org_id)
    if org is None:
        raise NotFound()
    _check_scope(actor, org, audience)
    return org


async def _scoped_notice(s: AsyncSession, actor: Actor, notice_id: int, *, lock: bool = False) -> Notice:
    q = select(Notice).where(Notice.id == notice_id)
    if lock and not is_sqlite(s):
        q = q.with_for_update()
    notice = await s.scalar(q)
    if notice is None:
        raise NotFound()
    org = await s.get(Org, notice.org_id)
    assert org is not None  # notices cascade with their org
    _check_scope(actor, org, notice.audience)
    return notice


def audience_query(notice: Notice, org: Org, exclude_person_id: int | None) -> Select[Any]:
    """(person id, telegram id, locale) of everyone the notice is meant for, once each, whether or
    not the bot can reach them (joined, not blocked)."""
    q = (
        select(Person.id, Person.telegram_id, Person.locale)
        .join(Membership, Membership.person_id == Person.id)
        .join(Org, Org.id == Membership.org_id)
        .where(Person.erased_at.is_(None))
    )
    if notice.audience is Audience.BRANCH_MEMBERS:
        q = q.where(Membership.org_id == org.id, Membership.role.in_(MEMBER_ROLES))
    else:
        roles = (Role.SECRETARY,) if notice.audience is Audience.SUBTREE_SECRETARIES else MEMBER_ROLES
        q = q.where(Org.path.like(org.path + "%"), Org.kind == OrgKind.BRANCH, Membership.role.in_(roles))
    if exclude_person_id is not None:
        q = q.where(Person.id != exclude_person_id)
    return q.distinct().order_by(Person.id)


def recipients_query(notice: Notice, org: Org, exclude_person_id: int | None) -> Select[Any]:
    """(person id, telegram id, locale) of everyone the notice goes to, once each: the audience
    less those the bot cannot write to (not joined, no consent, blocked the bot)."""
    return audience_query(notice, org, exclude_person_id).where(
        Person.consent_at.is_not(None),
        Person.telegram_id.is_not(None),
        Person.blocked_at.is_(None),
    )


@dataclass(frozen=True)
class Reach:
    """How many of a notice's audience it reaches, and how many it cannot (not joined, blocked)."""

    reached: int
    missed: int


async def reach(s: AsyncSession, notice: Notice, org: Org, exclude_person_id: int | None) -> Reach:
    meant = audience_query(notice, org, exclude_person_id).order_by(None).subquery()
    can = recipients_query(notice, org, exclude_person_id).order_by(None).subquery()
    total = int(await s.scalar(select(func.count()).select_from(meant)) or 0)
    reached = int(await s.scalar(select(func.count()).select_from(can)) or 0)
    return Reach(reached=reached, missed=total - reached)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ack_markup(_: Texts, delivery_id: int) -> dict[str, Any]:
    # callback_data stays far below Telegram's 64 bytes: "ack:" and an integer.
    return {
        "inline_keyboard": [[{"text": _.plain("notices.ack_button"), "callback_data": f"ack:{delivery_id}"}]]
    }


def notice_payload(notice: Notice, org_name: str, locale: str | None, delivery_id: int) -> dict[str, Any]:
    _ = texts(locale)
    markup = _ack_markup(_, delivery_id)
    if notice.file_id:
        # A caption has its own 1024 limit, so it carries the text alone, without the header.
        method, field = (
            ("sendPhoto", "photo") if notice.file_kind == "photo" else ("sendDocument", "document")
        )
        return {
            "method": method,
            field: notice.file_id,
            "caption": _("notices.caption", text=notice.text),
            "parse_mode": "HTML",
            "reply_markup": markup,
        }
    return {
        "method": "sendMessage",
        "text": _("notices.message", org=_short(org_name, ORG_NAME_MAX), text=notice.text),
        "parse_mode": "HTML",
        "reply_markup": markup,
    }


async def _dispatch(s: AsyncSession, notice: Notice, now: datetime) -> int:
    """Enqueue one Delivery per recipient; return how many were new."""
    org = await s.get(Org, notice.org_id)
    assert org is not None
    rows = (await s.execute(recipients_query(notice, org, notice.sender_id))).all()
    locale_of = {f"notice:{notice.id}:{pid}": loc for pid, _tg, loc in rows}
    inserted = await enqueue_many(
        s,
        (
            OutMessage(
                kind=KIND_NOTICE,
                chat_id=tg,
                dedupe_key=f"notice:{notice.id}:{pid}",
                payload={},  # filled in below, once the row's id (for the button) is known
                person_id=pid,
                notice_id=notice.id,
                not_before=now,
            )
            for pid, tg, _loc in rows
        ),
        now=now,
    )
    await set_payloads(s, {i: notice_payload(notice, org.name, locale_of[k], i) for k, i in inserted})
    notice.status = NoticeStatus.SENDING
    notice.sent_at = now
    await s.flush()
    await finish_if_done(s, notice.id, now)
    return len(inserted)


async def send_notice(s: AsyncSession, actor: Actor, notice_id: int, *, now: datetime) -> int:
    """Put a draft notice in the outbox (or schedule it); return the number of deliveries enqueued.

    Calling it again changes nothing: a notice is sent once.
    """
    notice = await _scoped_notice(s, actor, notice_id, lock=True)
    if notice.status is NoticeStatus.CANCELLED:
        raise Refused("notices.cancelled")
    if notice.status is not NoticeStatus.DRAFT:
        return 0
    if notice.scheduled_at is not None and notice.scheduled_at > now:
        notice.status = NoticeStatus.SCHEDULED
        await s.flush()
        await _audit(s, actor, "notice.schedule", notice, now)
        return 0
    count = await _dispatch(s, notice, now)
    await _audit(s, actor, "notice.send", notice, now, recipients=count)
    return count


async def release_scheduled(s: AsyncSession, now: datetime, limit: int = 50) -> list[int]:
    """Enqueue the scheduled notices that are due; return their ids. Safe to run in several processes."""
    q = (
        select(Notice)
        .where(Notice.status == NoticeStatus.SCHEDULED, Notice.scheduled_at <= now)
        .order_by(Notice.scheduled_at, Notice.id)
        .limit(limit)
    )
    if not is_sqlite(s):
        q = q.with_for_update(skip_locked=True)
    released = []
    for notice in list(await s.scalars(q)):
        await _dispatch(s, notice, now)
        released.append(notice.id)
    return released


async def cancel_notice(s: AsyncSession, actor: Actor, notice_id: int) -> Notice:
    """Withdraw a draft or scheduled notice; one already going out cannot be called back."""
    notice = await _scoped_notice(s, actor, notice_id, lock=True)
    if notice.status not in (NoticeStatus.DRAFT, NoticeStatus.SCHEDULED, NoticeStatus.CANCELLED):
        raise Refused("notices.cannot_cancel")
    notice.status = NoticeStatus.CANCELLED
    await s.flush()
    await _audit(s, actor, "notice.cancel", notice, None)
    return notice


async def set_status_message(
    s: AsyncSession, actor: Actor, notice_id: int, chat_id: int, message_id: int
) -> None:
    """Remember the sender's status message, which the sender edits with the counts."""
    notice = await _scoped_notice(s, actor, notice_id)
    notice.status_chat_id = chat_id
    notice.status_message_id = message_id
    await s.flush()


async def finish_if_done(s: AsyncSession, notice_id: int, now: datetime) -> bool:
    """SENDING → DONE once no delivery of the notice is pending; True if it changed now."""
    pending = exists().where(
        Delivery.notice_id == notice_id,
        Delivery.kind == KIND_NOTICE,
        Delivery.status == DeliveryStatus.PENDING,
    )
    res = await s.execute(
        update(Notice)
        .where(Notice.id == notice_id, Notice.status == NoticeStatus.SENDING, ~pending)
        .values(status=NoticeStatus.DONE)
        .execution_options(synchronize_session="fetch")
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def acknowledge(s: AsyncSession, telegram_id: int, delivery_id: int, now: datetime) -> bool:
    """The recipient pressed "已阅". True the first time, False after; anyone else gets NotFound."""
    row = await s.scalar(
        select(Delivery.id)
        .join(Person, Person.id == Delivery.person_id)
        .where(Delivery.id == delivery_id, Delivery.kind == KIND_NOTICE, Person.telegram_id == telegram_id)
    )
    if row is None:
        raise NotFound("notices.not_found")
    res = await s.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.acknowledged_at.is_(None))
        .values(acknowledged_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def sent_copies(s: AsyncSession, telegram_id: int, delivery_id: int) -> list[SentCopy]:
    """The messages that carry the button of this delivery: the notice and every nudge about it
    sent to the same person, so acknowledging from one can mark them all as read."""
    head = (
        await s.execute(
            select(Delivery.notice_id, Delivery.person_id, Org.name, Notice.text)
            .join(Person, Person.id == Delivery.person_id)
            .join(Notice, Notice.id == Delivery.notice_id)
            .join(Org, Org.id == Notice.org_id)
            .where(
                Delivery.id == delivery_id, Delivery.kind == KIND_NOTICE, Person.telegram_id == telegram_id
            )
        )
    ).first()
    if head is None:
        return []
    notice_id, person_id, org_name, text = head
    rows = await s.execute(
        select(Delivery.kind, Delivery.chat_id, Delivery.telegram_message_id, Delivery.payload)
        .where(
            Delivery.notice_id == notice_id,
            Delivery.person_id == person_id,
            Delivery.kind.in_((KIND_NOTICE, KIND_NUDGE)),
            Delivery.telegram_message_id.is_not(None),
        )
        .order_by(Delivery.id)
    )
    return [
        SentCopy(kind, chat, mid, dict(payload or {}), org_name, text) for kind, chat, mid, payload in rows
    ]


async def notice_stats(s: AsyncSession, actor: Actor, notice_id: int) -> NoticeStats:
    await _scoped_notice(s, actor, notice_id)
    rows = await s.execute(
        select(Delivery.status, func.count(), func.count(Delivery.acknowledged_at))
        .where(Delivery.notice_id == notice_id, Delivery.kind == KIND_NOTICE)
        .group_by(Delivery.status)
    )
    by: dict[DeliveryStatus, int] = {}
    acked = 0
    for status, n, a in rows:
        by[DeliveryStatus(status)] = n
        acked += a
    return NoticeStats(
        total=sum(by.values()),
        pending=by.get(DeliveryStatus.PENDING, 0),
        sent=by.get(DeliveryStatus.SENT, 0),
        failed=by.get(DeliveryStatus.FAILED, 0),
        blocked=by.get(DeliveryStatus.BLOCKED, 0),
        acknowledged=acked,
    )


async def list_notices(
    s: AsyncSession, actor: Actor, org_id: int | None = None, *, limit: int = 20, offset: int = 0
) -> list[NoticeSummary]:
    """Notices in the actor's scope (or of one org in it), newest first, with acknowledgement counts."""
    recipients = func.count(Delivery.id)
    acked = func.count(Delivery.acknowledged_at)
    ratio = case((recipients == 0, None), else_=cast(acked, Float) / recipients)
    sender = select(Person.name).where(Person.id == Notice.sender_id).scalar_subquery()
    q = (
        select(Notice, recipients, acked, ratio, Org.name, sender)
        .join(Org, Org.id == Notice.org_id)
        .outerjoin(Delivery, (Delivery.notice_id == Notice.id) & (Delivery.kind == KIND_NOTICE))
        .where(actor.scope_filter(Org.path))
        .group_by(Notice.id, Org.name)
        .order_by(Notice.created_at.desc(), Notice.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if org_id is not None:
        await require_manager(s, actor, org_id)
        q = q.where(Notice.org_id == org_id)
    rows = await s.execute(q)
    return [
        NoticeSummary(n, r, a, float(x) if x is not None else None, org_name, sender_name)
        for n, r, a, x, org_name, sender_name in rows
    ]


async def unacknowledged(
    s: AsyncSession, actor: Actor, notice_id: int, *, limit: int | None = None
) -> list[Unacknowledged]:
    """Recipients who have not acknowledged, by name, with their delivery status (the first
    `limit` of them, if given)."""
    await _scoped_notice(s, actor, notice_id)
    rows = await s.execute(
        select(Person.id, Person.name, Delivery.status)
        .join(Person, Person.id == Delivery.person_id)
        .where(
            Delivery.notice_id == notice_id,
            Delivery.kind == KIND_NOTICE,
            Delivery.acknowledged_at.is_(None),
        )
        .order_by(Person.name, Person.id)
        .limit(limit)
    )
    return [Unacknowledged(pid, name, DeliveryStatus(st)) for pid, name, st in rows]


def nudge_text(_: Texts, org_name: str, notice_text: str, read_at: str | None = None) -> str:
    """A nudge's text; once the notice is read it says so instead of asking again."""
    org, preview = _short(org_name, ORG_NAME_MAX), _short(notice_text, PREVIEW_MAX)
    if read_at is None:
        return _("notices.nudge", org=org, preview=preview)
    return _("notices.nudge_read", org=org, preview=preview, when=read_at)


def nudge_round(now: datetime) -> str:
    # One nudge per recipient per (UTC) day: pressing "remind" twice cannot pester anyone.
    return now.strftime("%Y%m%d")


async def nudge(s: AsyncSession, actor: Actor, notice_id: int, *, now: datetime) -> int:
    """Remind, privately, those who were sent the notice and have not acknowledged it.

    The reminder's button acknowledges the original delivery. Returns how many were enqueued
    (0 when everyone acknowledged, or all were already reminded today).
    """
    notice = await _scoped_notice(s, actor, notice_id)
    if notice.status not in (NoticeStatus.SENDING, NoticeStatus.DONE):
        raise Refused("notices.not_sent")
    org = await s.get(Org, notice.org_id)
    assert org is not None
    rows = (
        await s.execute(
            select(Delivery.id, Delivery.person_id, Person.telegram_id, Person.locale)
            .join(Person, Person.id == Delivery.person_id)
            .where(
                Delivery.notice_id == notice_id,
                Delivery.kind == KIND_NOTICE,
                Delivery.status == DeliveryStatus.SENT,
                Delivery.acknowledged_at.is_(None),
                Person.telegram_id.is_not(None),
                Person.blocked_at.is_(None),
                Person.erased_at.is_(None),
            )
            .order_by(Delivery.id)
        )
    ).all()
    n = nudge_round(now)
    messages = []
    for did, pid, tg, loc in rows:
        _ = texts(loc)
        payload = {
            "method": "sendMessage",
            "text": nudge_text(_, org.name, notice.text),
            "parse_mode": "HTML",
            "reply_markup": _ack_markup(_, did),
        }
        messages.append(
            OutMessage(KIND_NUDGE, tg, f"nudge:{notice_id}:{pid}:{n}", payload, pid, notice_id, now)
        )
    return len(await enqueue_many(s, messages, now=now))


async def recipient_notices(
    s: AsyncSession, person: Person | PersonView, limit: int = 10
) -> list[RecipientNotice]:
    """A member's own notices, newest first, for /notices."""
    rows = await s.execute(
        select(Notice.id, Delivery.id, Org.name, Notice.text, Delivery.sent_at, Delivery.acknowledged_at)
        .join(Notice, Notice.id == Delivery.notice_id)
        .join(Org, Org.id == Notice.org_id)
        .where(
            Delivery.person_id == person.id,
            Delivery.kind == KIND_NOTICE,
            Delivery.status == DeliveryStatus.SENT,
        )
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    return [
        RecipientNotice(nid, did, name, text, at, ack is not None) for nid, did, name, text, at, ack in rows
    ]
