"""Two delivery workers, each its own process, on one notice: they share the bot's one budget
through the gate's shared state (Redis, or PostgreSQL without it), so together they keep
Telegram's limits (no 429 of their own making, never more than 30 in a second) and still send
at a good share of the rate. (A killed worker's rows taken over when its lease ends:
test_delivery_kill.py.)"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from emulator import Emulator
from storage.models import Delivery, DeliveryStatus
from tests.bot.outbox_world import TOKEN, delivery_counts, make_branch, send_branch_notice
from tests.bot.worker_process import notice_delivered, start_worker, stop_workers, tail, wait_db
from tests.dbutil import postgres_only

REDIS = "redis://127.0.0.1:6379/0"


async def _start(db_url: str, emu: Emulator, worker_id: str, redis: str, prefix: str, log: Path):
    # --redis "": no Redis, the gate's state in PostgreSQL
    options = ("--rate", "30", "--batch", "30", "--redis", redis, "--gate-prefix", prefix)
    return await start_worker(log, db_url, emu.base_url, TOKEN, worker_id, *options)


@postgres_only(
    "two workers claim rows concurrently and share the gate through the database (SQLite: one process)"
)
@pytest.mark.parametrize("shared", ["redis", "postgresql"])
async def test_two_worker_processes_share_one_budget(
    shared, session, sessionmaker, db_url, emu, tmp_path
) -> None:
    emu.limits.enable()  # Telegram's: 30/s per bot, 1/s per chat; a 429 for anything above
    br = await make_branch(session, emu, 400, blocked_every=20)
    notice = await send_branch_notice(session, br)
    await session.commit()
    log = tmp_path / "workers.log"
    prefix = f"test-workers:{uuid.uuid4().hex}"
    redis = REDIS if shared == "redis" else ""
    # Started together: one after the other, the first (a few seconds of start-up ahead on a
    # busy machine) could send the whole notice before the second has claimed a row.
    workers = await asyncio.gather(*(_start(db_url, emu, f"w{i}", redis, prefix, log) for i in range(2)))
    claimers: set[str] = set()

    async def delivered(s) -> bool:
        claimers.update(await s.scalars(select(Delivery.claimed_by).where(Delivery.claimed_by.is_not(None))))
        return await notice_delivered(s, notice.id)

    try:
        await wait_db(sessionmaker, delivered, timeout=90)
    finally:
        await stop_workers(*workers)
    assert [w.returncode for w in workers] == [0, 0], await asyncio.to_thread(tail, log)
    assert claimers == {"w0", "w1"}  # both took their share of the notice
    assert await delivery_counts(session) == {DeliveryStatus.SENT: 380, DeliveryStatus.BLOCKED: 20}
    assert emu.stats.per_chat() == dict.fromkeys(br.reachable, 1)
    # Together within Telegram's limits: no 429 from the limits, never above 30 in a second...
    assert emu.stats.limit_429_total == 0, emu.stats.limit_429
    assert emu.stats.max_in_window(1.0) <= 30
    # ...and not far below them (a loose bound: the measured figure is in docs/benchmarks.md).
    assert emu.stats.rate() >= 0.7 * 30, emu.stats.rate()
