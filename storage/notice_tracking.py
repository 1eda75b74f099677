"""Following a notice in the admin web: its counts and, per recipient, the delivery status and
when they acknowledged. Scope is checked by `notices.notice_stats` (the sender's own rules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.access import Actor
from storage.errors import NotFound
from storage.models import Delivery, DeliveryStatus, Notice, Org, Person
from storage.notices import KIND_NOTICE, NoticeStats, notice_stats


@dataclass(frozen=True, slots=True)
class RecipientRow:
    person_id: int | None
    name: str | None
    status: DeliveryStatus
    attempts: int
    sent_at: datetime | None
    acknowledged_at: datetime | None


@dataclass(frozen=True, slots=True)
class NoticeDetail:
    notice: Notice
    org_name: str
    sender_name: str | None
    stats: NoticeStats
    recipients: list[RecipientRow]


async def notice_detail(s: AsyncSession, actor: Actor, notice_id: int) -> NoticeDetail:
    """The notice, its counts and every recipient (not yet acknowledged first, then by name)."""
    stats = await notice_stats(s, actor, notice_id)  # NotFound / Forbidden outside the scope
    head = (
        await s.execute(
            select(Notice, Org.name, Person.name)
            .join(Org, Org.id == Notice.org_id)
            .outerjoin(Person, Person.id == Notice.sender_id)
            .where(Notice.id == notice_id)
        )
    ).first()
    if head is None:
        raise NotFound()
    rows = await s.execute(
        select(
            Delivery.person_id,
            Person.name,
            Delivery.status,
            Delivery.attempts,
            Delivery.sent_at,
            Delivery.acknowledged_at,
        )
        .outerjoin(Person, Person.id == Delivery.person_id)
        .where(Delivery.notice_id == notice_id, Delivery.kind == KIND_NOTICE)
        .order_by(Delivery.acknowledged_at.is_not(None), Person.name, Delivery.id)
    )
    recipients = [
        RecipientRow(pid, name, DeliveryStatus(st), att, sent, ack) for pid, name, st, att, sent, ack in rows
    ]
    return NoticeDetail(head[0], head[1], head[2], stats, recipients)
