"""Processed update ids: the de-duplication record for redelivered Telegram updates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import utcnow
from storage.models import ProcessedUpdate


async def claim_update(s: AsyncSession, bot_id: int, update_id: int) -> bool:
    """Record the update as taken; False if it was already handled (or is being handled).

    The row commits with whatever the handler wrote, so "handled" and "its effects" are one
    fact. On PostgreSQL a concurrent second delivery waits here until the first commits.
    """
    insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(ProcessedUpdate).values(bot_id=bot_id, update_id=update_id, processed_at=utcnow())
    result = await s.execute(stmt.on_conflict_do_nothing(index_elements=["bot_id", "update_id"]))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def forget_before(s: AsyncSession, before: datetime) -> int:
    """Drop old records; Telegram never redelivers an update after about a day."""
    result = await s.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
