"""Updates in and out: polled updates kept until handled, and the ids of handled updates
(the de-duplication record for redelivered Telegram updates)."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from typing import Any

from sqlalchemy import Insert, bindparam, delete, func, literal_column, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from storage import people
from storage.db import dialect_insert, utcnow
from storage.direct import Direct, fetch
from storage.models import InboundUpdate, ProcessedUpdate

_PROCESSED = ProcessedUpdate.__table__
_INBOUND = InboundUpdate.__table__


@cache
def _claim(dialect: str) -> Insert:
    """The claim with the row it inserted, if any (none when the update was taken already;
    SQLite has RETURNING since 3.35), built once per dialect with bound parameters."""
    insert = dialect_insert(dialect)
    return (
        insert(_PROCESSED)
        .values(bot_id=bindparam("bot_id"), update_id=bindparam("update_id"), processed_at=bindparam("at"))
        .on_conflict_do_nothing(index_elements=["bot_id", "update_id"])
        .returning(_PROCESSED.c.update_id)
    )


@cache
def _claim_with_person(with_conversation: bool, with_days: bool = False) -> Direct:
    """PostgreSQL: the claim and `people.chat_person`'s query in one statement (the insert as a
    data-modifying WITH, which runs whether or not the rest finds anyone): one row with
    `taken` and no person for a stranger, else a row per membership, each with `taken`. With
    `with_days`, each row also has the person's day totals (`service_log.day_totals_select`)."""
    claim = _claim("postgresql").cte("claim")
    days_on = "postgresql" if with_days else None
    person = people.chat_person_select(with_conversation=with_conversation, days_on=days_on).subquery(
        "person"
    )
    one = select(literal_column("1").label("one")).subquery("one")
    return Direct(
        select(select(func.count()).select_from(claim).scalar_subquery().label("taken"), *person.c)
        .select_from(one.outerjoin(person, true()))
        .order_by(person.c.membership_id)
    )


async def claim_update_with_person(
    s: AsyncSession,
    bot_id: int,
    update_id: int,
    telegram_id: int,
    state_key: str | None,
    days: tuple[date, date] | None = None,
) -> tuple[bool, people.ChatPerson | None]:
    """`claim_update` and `people.chat_person` in one round trip (PostgreSQL only: SQLite has no
    INSERT inside WITH). The person is read in the statement's snapshot, taken as it starts; a
    second delivery that waited on the claim is not taken, and its person is not used. With
    `days` (first, last), the person's totals of those days come along too, for the update's
    first check of a day's room (`service_log.remember_day_totals`)."""
    params = {
        "bot_id": bot_id,
        "update_id": update_id,
        "at": utcnow(),
        **people.chat_person_params(telegram_id, state_key, days),
    }
    # Straight on the driver (`storage.direct`): this runs for every update.
    rows = await fetch(s, _claim_with_person(state_key is not None, days is not None), params)
    taken = bool(rows[0].taken)
    found = people.chat_person_read(s, rows, telegram_id, state_key=state_key, days=days) if taken else None
    return taken, found


@cache
def _direct_claim(dialect: str) -> Direct:
    """The claim run straight on the driver (`storage.direct`): the first statement of every
    update."""
    return Direct(_claim(dialect))


async def claim_update(s: AsyncSession, bot_id: int, update_id: int) -> bool:
    """Record the update as taken; False if it was already handled (or is being handled).

    The row commits with whatever the handler wrote, so "handled" and "its effects" are one
    fact. On PostgreSQL a concurrent second delivery waits here until the first commits.
    """
    claim = _direct_claim(s.sync_session.get_bind().dialect.name)
    return bool(await fetch(s, claim, {"bot_id": bot_id, "update_id": update_id, "at": utcnow()}))


async def forget_before(s: AsyncSession, before: datetime) -> int:
    """Drop old records; Telegram never redelivers an update after about a day."""
    result = await s.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]


@cache
def _store_inbound(dialect: str) -> Insert:
    insert = dialect_insert(dialect)
    return insert(_INBOUND).on_conflict_do_nothing(index_elements=["bot_id", "update_id"])


async def store_inbound(s: AsyncSession, bot_id: int, updates: list[dict[str, Any]], now: datetime) -> None:
    """Keep polled updates until they are handled (a second copy of one is ignored)."""
    if not updates:
        return
    rows = [
        {"bot_id": bot_id, "update_id": u["update_id"], "payload": u, "received_at": now} for u in updates
    ]
    # One statement for any number of rows (many parameter sets): a VALUES list of the batch's
    # length was compiled afresh for every batch, and through the ORM's bulk insert.
    await s.execute(_store_inbound(s.bind.dialect.name), rows)


async def pending_inbound(s: AsyncSession, bot_id: int) -> list[dict[str, Any]]:
    """Updates taken in before a stop or a crash and not yet handled, oldest first."""
    rows = await s.scalars(
        select(InboundUpdate.payload).where(InboundUpdate.bot_id == bot_id).order_by(InboundUpdate.update_id)
    )
    return list(rows)


async def drop_inbound(s: AsyncSession, bot_id: int, update_ids: list[int]) -> None:
    await s.execute(
        delete(InboundUpdate).where(InboundUpdate.bot_id == bot_id, InboundUpdate.update_id.in_(update_ids))
    )
