"""The outbox: every message the bot sends on its own (notices, nudges, reminders, digests) is a
Delivery row, committed before anything goes to Telegram.

Enqueueing is idempotent through `dedupe_key` (enqueueing twice sends once). A sender claims due
rows with a lease: if it crashes, the lease runs out and the rows are claimed again, so a
recipient gets a message at most once more per crash and never zero times.

A payload is what the sender hands to Telegram as it is:
    {"method": "sendMessage" | "sendPhoto" | "sendDocument",
     "text" | "caption": "...", "parse_mode": "HTML",
     "reply_markup": {...}, "photo" | "document": "<file_id>"}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert, is_sqlite
from storage.errors import NotFound
from storage.models import Delivery, DeliveryStatus, Person

# After this many failed attempts a row is given up as FAILED.
MAX_ATTEMPTS = 5
# Rows per multi-row INSERT: ~10 parameters a row stays far below SQLite's and asyncpg's limits.
BATCH = 500
ERROR_MAX = 300


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One message to enqueue (see `enqueue_many`)."""

    kind: str
    chat_id: int
    dedupe_key: str
    payload: dict[str, Any]
    person_id: int | None = None
    notice_id: int | None = None
    not_before: datetime | None = None


def _insert(s: AsyncSession) -> Any:
    insert = dialect_insert(s.bind.dialect.name)
    return insert(Delivery)


def _row(m: OutMessage, now: datetime) -> dict[str, Any]:
    return {
        "kind": m.kind,
        "chat_id": m.chat_id,
        "person_id": m.person_id,
        "notice_id": m.notice_id,
        "dedupe_key": m.dedupe_key,
        "payload": m.payload,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "not_before": m.not_before or now,
        "created_at": now,
    }


# Session flag: this transaction put messages in the outbox (see `bot/middlewares.UpdateGuard`).
ENQUEUED = "outbox_enqueued"


async def enqueue(
    s: AsyncSession,
    *,
    kind: str,
    chat_id: int,
    person_id: int | None,
    dedupe_key: str,
    payload: dict[str, Any],
    not_before: datetime,
    notice_id: int | None = None,
) -> int | None:
    """Add one message; return its id, or None when `dedupe_key` was already enqueued."""
    msg = OutMessage(kind, chat_id, dedupe_key, payload, person_id, notice_id, not_before)
    ids = await _insert_batch(s, [msg], not_before)
    return ids[0][1] if ids else None


async def enqueue_many(
    s: AsyncSession, messages: Iterable[OutMessage], *, now: datetime, batch: int = BATCH
) -> list[tuple[str, int]]:
    """Add many messages with one multi-row INSERT per batch; existing dedupe keys are skipped.

    Returns (dedupe_key, id) for the rows actually inserted.
    """
    out: list[tuple[str, int]] = []
    chunk: list[OutMessage] = []
    for m in messages:
        chunk.append(m)
        if len(chunk) >= batch:
            out += await _insert_batch(s, chunk, now)
            chunk = []
    if chunk:
        out += await _insert_batch(s, chunk, now)
    return out


async def _insert_batch(s: AsyncSession, chunk: Sequence[OutMessage], now: datetime) -> list[tuple[str, int]]:
    stmt = (
        _insert(s)
        .values([_row(m, now) for m in chunk])
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Delivery.dedupe_key, Delivery.id)
    )
    rows = [(k, i) for k, i in await s.execute(stmt)]
    if rows:
        s.info[ENQUEUED] = True  # so whoever commits this session can wake the delivery worker
    return rows


async def set_payloads(s: AsyncSession, payloads: dict[int, dict[str, Any]]) -> None:
    """Replace the payloads of just-inserted rows (e.g. to put their own id into a button)."""
    if payloads:
        await s.execute(
            update(Delivery),
            [{"id": i, "payload": p} for i, p in payloads.items()],
        )


def _due(now: datetime) -> ColumnElement[bool]:
    return (
        (Delivery.status == DeliveryStatus.PENDING)
        & (Delivery.not_before <= now)
        & or_(Delivery.claimed_until.is_(None), Delivery.claimed_until <= now)
    )


async def claim_due(
    s: AsyncSession, worker_id: str, now: datetime, limit: int = 100, lease_seconds: int = 60
) -> list[Delivery]:
    """Claim up to `limit` due rows for this worker until now + lease_seconds.

    PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent workers get disjoint rows. SQLite has
    one writer at a time (BEGIN IMMEDIATE), so a plain select and update in the same
    transaction is already exclusive. The caller commits to make the claim visible.
    """
    q = select(Delivery.id).where(_due(now)).order_by(Delivery.not_before, Delivery.id).limit(limit)
    if not is_sqlite(s):
        q = q.with_for_update(skip_locked=True)
    ids = list(await s.scalars(q))
    if not ids:
        return []
    until = now + timedelta(seconds=lease_seconds)
    await s.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids))
        .values(claimed_by=worker_id, claimed_until=until)
        .execution_options(synchronize_session=False)
    )
    rows = await s.scalars(
        select(Delivery)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.not_before, Delivery.id)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def _get(s: AsyncSession, delivery_id: int) -> Delivery:
    row = await s.get(Delivery, delivery_id)
    if row is None:
        raise NotFound()
    return row


def _release(row: Delivery) -> None:
    row.claimed_by = None
    row.claimed_until = None


async def mark_sent(s: AsyncSession, delivery_id: int, message_id: int | None, now: datetime) -> Delivery:
    row = await _get(s, delivery_id)
    row.status = DeliveryStatus.SENT
    row.telegram_message_id = message_id
    row.sent_at = now
    row.error = None
    _release(row)
    await s.flush()
    return row


async def mark_blocked(s: AsyncSession, delivery_id: int, now: datetime) -> Delivery:
    """Telegram said 403: the person blocked the bot. Mark the row and the person unreachable."""
    row = await _get(s, delivery_id)
    row.status = DeliveryStatus.BLOCKED
    row.error = "blocked"
    _release(row)
    if row.person_id is not None:
        await s.execute(
            update(Person)
            .where(Person.id == row.person_id, Person.blocked_at.is_(None))
            .values(blocked_at=now)
            .execution_options(synchronize_session=False)
        )
    await s.flush()
    return row


async def mark_retry(
    s: AsyncSession,
    delivery_id: int,
    not_before: datetime,
    error: str,
    *,
    count_attempt: bool = True,
    max_attempts: int = MAX_ATTEMPTS,
) -> Delivery:
    """Try again at `not_before`. After `max_attempts` counted failures the row is FAILED.

    A 429 (rate limit) is not the message's fault: pass count_attempt=False so waiting out
    retry_after never uses up its attempts.
    """
    row = await _get(s, delivery_id)
    if count_attempt:
        row.attempts += 1
    row.error = error[:ERROR_MAX]
    _release(row)
    if row.attempts >= max_attempts:
        row.status = DeliveryStatus.FAILED
    else:
        row.status = DeliveryStatus.PENDING
        row.not_before = not_before
    await s.flush()
    return row


async def mark_failed(s: AsyncSession, delivery_id: int, error: str) -> Delivery:
    """Give up at once (e.g. Telegram rejected the payload itself: retrying cannot help)."""
    row = await _get(s, delivery_id)
    row.status = DeliveryStatus.FAILED
    row.attempts += 1
    row.error = error[:ERROR_MAX]
    _release(row)
    await s.flush()
    return row
