"""The outbox: dedupe, claims with leases, retries, blocked recipients; disjoint claims on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage import outbox
from storage.models import Delivery, DeliveryStatus, Person
from tests.dbutil import postgres_only

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def _msg(key: str, *, person_id: int | None = None, not_before: datetime | None = None) -> outbox.OutMessage:
    return outbox.OutMessage(
        kind="text",
        chat_id=42,
        dedupe_key=key,
        payload={"method": "sendMessage", "text": key, "parse_mode": "HTML"},
        person_id=person_id,
        not_before=not_before,
    )


async def _count(s: AsyncSession) -> int:
    return int(await s.scalar(select(func.count()).select_from(Delivery)) or 0)


async def test_enqueue_same_dedupe_key_twice_stores_one_row(session) -> None:
    kw = dict(kind="text", chat_id=1, person_id=None, payload={"text": "hi"}, not_before=NOW)
    first = await outbox.enqueue(session, dedupe_key="k:1", **kw)
    second = await outbox.enqueue(session, dedupe_key="k:1", **kw)
    assert first is not None and second is None
    assert await _count(session) == 1
    row = await session.get(Delivery, first)
    assert row.payload == {"text": "hi"} and row.status is DeliveryStatus.PENDING and row.attempts == 0


async def test_enqueue_many_batches_and_skips_existing_keys(session) -> None:
    await outbox.enqueue_many(session, [_msg("m:5"), _msg("m:7")], now=NOW)
    inserted = await outbox.enqueue_many(session, (_msg(f"m:{i}") for i in range(1200)), now=NOW, batch=500)
    assert len(inserted) == 1198
    assert {k for k, _ in inserted} == {f"m:{i}" for i in range(1200)} - {"m:5", "m:7"}
    assert await _count(session) == 1200


async def test_claim_respects_not_before(session) -> None:
    await outbox.enqueue_many(
        session, [_msg("now"), _msg("later", not_before=NOW + timedelta(minutes=5))], now=NOW
    )
    claimed = await outbox.claim_due(session, "w1", NOW, limit=10, lease_seconds=600)
    assert [d.dedupe_key for d in claimed] == ["now"]
    assert claimed[0].claimed_by == "w1" and claimed[0].claimed_until == NOW + timedelta(seconds=600)
    later = await outbox.claim_due(session, "w1", NOW + timedelta(minutes=5), limit=10)
    assert [d.dedupe_key for d in later] == ["later"]


async def test_a_live_lease_hides_the_row_and_an_expired_one_frees_it(session) -> None:
    await outbox.enqueue_many(session, [_msg("a")], now=NOW)
    assert len(await outbox.claim_due(session, "w1", NOW, lease_seconds=30)) == 1
    assert await outbox.claim_due(session, "w2", NOW + timedelta(seconds=29), lease_seconds=30) == []
    # w1 crashed without marking the row: once its lease is over, another worker takes it.
    again = await outbox.claim_due(session, "w2", NOW + timedelta(seconds=30), lease_seconds=30)
    assert [(d.dedupe_key, d.claimed_by) for d in again] == [("a", "w2")]


async def test_claim_limit_and_order(session) -> None:
    msgs = [_msg(f"o:{i}", not_before=NOW - timedelta(seconds=10 - i)) for i in range(5)]
    await outbox.enqueue_many(session, msgs, now=NOW)
    first = await outbox.claim_due(session, "w", NOW, limit=3)
    rest = await outbox.claim_due(session, "w", NOW, limit=3)
    assert [d.dedupe_key for d in first] == ["o:0", "o:1", "o:2"]
    assert [d.dedupe_key for d in rest] == ["o:3", "o:4"]


async def test_sent_rows_are_not_claimed_again(session) -> None:
    await outbox.enqueue_many(session, [_msg("s")], now=NOW)
    (row,) = await outbox.claim_due(session, "w", NOW)
    await outbox.mark_sent(session, row.id, 777, NOW)
    assert row.status is DeliveryStatus.SENT and row.telegram_message_id == 777 and row.sent_at == NOW
    assert row.claimed_by is None
    assert await outbox.claim_due(session, "w", NOW + timedelta(hours=1)) == []


async def test_retry_waits_and_gives_up_after_max_attempts(session) -> None:
    await outbox.enqueue_many(session, [_msg("r")], now=NOW)
    (row,) = await outbox.claim_due(session, "w", NOW)
    t = NOW
    for attempt in range(1, outbox.MAX_ATTEMPTS):
        t += timedelta(minutes=1)
        await outbox.mark_retry(session, row.id, t, "HTTP 502")
        assert (row.status, row.attempts, row.not_before) == (DeliveryStatus.PENDING, attempt, t)
        assert await outbox.claim_due(session, "w", t - timedelta(seconds=1)) == []
        assert len(await outbox.claim_due(session, "w", t)) == 1
    await outbox.mark_retry(session, row.id, t, "x" * 1000)
    assert row.status is DeliveryStatus.FAILED and len(row.error) == outbox.ERROR_MAX


async def test_rate_limit_retry_does_not_use_up_attempts(session) -> None:
    await outbox.enqueue_many(session, [_msg("429")], now=NOW)
    (row,) = await outbox.claim_due(session, "w", NOW)
    for _ in range(outbox.MAX_ATTEMPTS + 2):
        await outbox.mark_retry(session, row.id, NOW, "429", count_attempt=False)
    assert row.status is DeliveryStatus.PENDING and row.attempts == 0


async def test_mark_failed_gives_up_at_once(session) -> None:
    await outbox.enqueue_many(session, [_msg("f")], now=NOW)
    (row,) = await outbox.claim_due(session, "w", NOW)
    await outbox.mark_failed(session, row.id, "Bad Request: message is too long")
    assert row.status is DeliveryStatus.FAILED and row.attempts == 1
    assert await outbox.claim_due(session, "w", NOW + timedelta(days=1)) == []


async def test_blocked_marks_the_person_unreachable(session, world) -> None:
    p = world.member_a
    await outbox.enqueue_many(session, [_msg("b", person_id=p.id)], now=NOW)
    (row,) = await outbox.claim_due(session, "w", NOW)
    await outbox.mark_blocked(session, row.id, NOW)
    person = await session.get(Person, p.id, populate_existing=True)
    assert row.status is DeliveryStatus.BLOCKED
    assert person.blocked_at == NOW and not person.reachable


async def _claim_in_own_session(
    maker: async_sessionmaker[AsyncSession], worker: str, limit: int
) -> list[str]:
    async with maker() as s:
        rows = await outbox.claim_due(s, worker, NOW, limit=limit)
        keys = [r.dedupe_key for r in rows]
        await s.commit()
        return keys


@postgres_only("concurrent claims with SKIP LOCKED; SQLite has one writer")
async def test_concurrent_claimers_get_disjoint_rows_on_postgresql(session, sessionmaker) -> None:
    await outbox.enqueue_many(session, (_msg(f"c:{i}") for i in range(300)), now=NOW)
    await session.commit()
    results = await asyncio.gather(*(_claim_in_own_session(sessionmaker, f"w{i}", 100) for i in range(4)))
    claimed = [k for r in results for k in r]
    assert len(claimed) == len(set(claimed)) == 300


@postgres_only("concurrent claims with SKIP LOCKED; SQLite has one writer")
async def test_locked_rows_are_skipped_not_waited_for_on_postgresql(session, sessionmaker) -> None:
    await outbox.enqueue_many(session, (_msg(f"l:{i}") for i in range(10)), now=NOW)
    await session.commit()
    async with sessionmaker() as holder:
        held = await outbox.claim_due(holder, "w1", NOW, limit=4)  # locked until holder commits
        other = await asyncio.wait_for(_claim_in_own_session(sessionmaker, "w2", 100), timeout=10)
        assert set(other) == {f"l:{i}" for i in range(10)} - {d.dedupe_key for d in held}
        await holder.commit()
