"""The delivery worker as its own process (`python -m bot.delivery`), as the kill test, the
two-worker test and the broadcast bench run it: started with the given arguments and ready once
it says so, its stderr appended to a log whose tail explains a failure; stopped with SIGTERM, as
systemd stops it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Delivery, DeliveryStatus, Notice, NoticeStatus

ROOT = Path(__file__).resolve().parents[2]


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


async def start_worker(
    log: Path, db_url: str, api: str, token: str, worker_id: str, *options: str
) -> asyncio.subprocess.Process:
    """A worker of this bot on this database, returned once it is ready (it prints "ready")."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.delivery",
            *("--db", db_url, "--api", api, "--token", token, "--worker-id", worker_id),
            *options,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=asyncio.subprocess.PIPE,
            stderr=fd,
        )
    finally:
        os.close(fd)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
    assert line.strip() == b"ready", await asyncio.to_thread(tail, log)
    return proc


async def stop_workers(*procs: asyncio.subprocess.Process) -> None:
    """SIGTERM to each, then wait for all (a worker finishes its sends in flight first)."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        await asyncio.wait_for(p.wait(), timeout=60)


async def wait_db(
    sessionmaker: async_sessionmaker[AsyncSession],
    predicate: Callable[[AsyncSession], Awaitable[bool]],
    timeout: float = 60,
) -> None:
    """Poll the database until `predicate(session)` holds (the worker is another process)."""
    async with asyncio.timeout(timeout):
        while True:
            async with sessionmaker() as s:
                if await predicate(s):
                    return
            await asyncio.sleep(0.1)


async def notice_delivered(s: AsyncSession, notice_id: int) -> bool:
    """The notice is done and no delivery is pending any more."""
    status = await s.scalar(select(Notice.status).where(Notice.id == notice_id))
    pending = await s.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.status == DeliveryStatus.PENDING)
    )
    return status is NoticeStatus.DONE and pending == 0
