"""A review done in the admin web tells the member through the outbox, once, in their language."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select

from content.pack import get_pack
from storage import service_log
from storage.models import Delivery, EntryStatus, ServiceEntry
from storage.review_notices import enqueue_review_notices

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


async def test_each_outcome_is_queued_once_in_the_members_language(session, world) -> None:
    world.member_a2.locale = "en"
    rows = [
        ServiceEntry(
            person_id=p.id,
            org_id=world.branch_a.id,
            day=date(2026, 11, 20),
            minutes=90,
            action="volunteer",
            description="义诊",
            status=EntryStatus.PENDING,
        )
        for p in (world.member_a, world.member_a2)
    ]
    session.add_all(rows)
    await session.flush()
    sec = await world.actor(session, world.secretary_a, via="web")
    batch = await service_log.review_many(session, sec, [r.id for r in rows], False, "缺少地点", NOW)
    assert await enqueue_review_notices(session, batch.outcomes, now=NOW, pack=PACK) == 2
    assert await enqueue_review_notices(session, batch.outcomes, now=NOW, pack=PACK) == 0
    sent = {d.person_id: d for d in await session.scalars(select(Delivery))}
    zh, en = sent[world.member_a.id].payload["text"], sent[world.member_a2.id].payload["text"]
    assert "1.5" in zh and "缺少地点" in zh and "未通过" in zh
    assert (
        "1.5" in en and "缺少地点" in en and sent[world.member_a2.id].chat_id == world.member_a2.telegram_id
    )


async def test_unreachable_members_are_not_queued(session, world) -> None:
    world.member_a.blocked_at = NOW
    e = ServiceEntry(
        person_id=world.member_a.id,
        org_id=world.branch_a.id,
        day=date(2026, 11, 20),
        minutes=60,
        action="volunteer",
        description="义诊",
    )
    session.add(e)
    await session.flush()
    sec = await world.actor(session, world.secretary_a, via="web")
    batch = await service_log.review_many(session, sec, [e.id], True, None, NOW)
    assert await enqueue_review_notices(session, batch.outcomes, now=NOW, pack=PACK) == 0
