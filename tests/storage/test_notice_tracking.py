"""Following a notice: counts and every recipient's delivery status and acknowledgement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from storage import notices, outbox
from storage.errors import Forbidden, NotFound
from storage.models import Audience, Delivery, DeliveryStatus
from storage.notice_tracking import notice_detail

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


async def test_detail_lists_every_recipient_unacknowledged_first(session, world) -> None:
    sec = await world.actor(session, world.secretary_a)
    n = await notices.create_notice(
        session, sec, world.branch_a.id, Audience.BRANCH_MEMBERS, "周五开会", now=NOW
    )
    await notices.send_notice(session, sec, n.id, now=NOW)
    rows = {d.person_id: d for d in await session.scalars(select(Delivery).where(Delivery.notice_id == n.id))}
    await outbox.mark_sent(session, rows[world.member_a.id].id, 11, NOW)
    await outbox.mark_sent(session, rows[world.member_a2.id].id, 12, NOW)
    await notices.acknowledge(
        session, world.member_a.telegram_id, rows[world.member_a.id].id, NOW + timedelta(hours=1)
    )
    detail = await notice_detail(session, sec, n.id)
    assert detail.org_name == world.branch_a.name and detail.sender_name == world.secretary_a.name
    assert detail.stats.total == 2 and detail.stats.acknowledged == 1
    assert [(r.name, r.status, r.acknowledged_at is not None) for r in detail.recipients] == [
        ("李四", DeliveryStatus.SENT, False),
        ("张三", DeliveryStatus.SENT, True),
    ]


async def test_detail_outside_the_scope_is_refused(session, world) -> None:
    sec = await world.actor(session, world.secretary_a)
    n = await notices.create_notice(
        session, sec, world.branch_a.id, Audience.BRANCH_MEMBERS, "周五开会", now=NOW
    )
    with pytest.raises(Forbidden):
        await notice_detail(session, await world.actor(session, world.secretary_b), n.id)
    with pytest.raises(NotFound):
        await notice_detail(session, sec, 999_999)
