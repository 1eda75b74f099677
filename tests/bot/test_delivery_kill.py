"""The delivery worker killed with SIGKILL in the middle of a notice to 300 members, then
restarted: nobody is left out, and the only second copies are those that were sent but not yet
recorded when the process died (never more than the rows it had claimed)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from content.i18n import texts
from emulator import Emulator
from storage.models import Delivery, DeliveryStatus, Notice, NoticeStatus
from tests.bot.outbox_world import TOKEN, delivery_counts, make_branch, make_tg_bot, send_branch_notice

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as e:
        e.add_bot(TOKEN)
        yield e


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


async def _start_worker(db_url: str, emu: Emulator, worker_id: str, log: Path) -> asyncio.subprocess.Process:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)  # the worker's log, for a failure report
    try:
        proc = await _spawn(db_url, emu, worker_id, fd)
    finally:
        os.close(fd)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
    assert line.strip() == b"ready", await asyncio.to_thread(_tail, log)
    return proc


async def _spawn(db_url: str, emu: Emulator, worker_id: str, stderr: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.delivery",
        "--db",
        db_url,
        "--api",
        emu.base_url,
        "--token",
        TOKEN,
        "--worker-id",
        worker_id,
        "--rate",
        "100",
        "--batch",
        "40",
        "--lease",
        "3",
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
    )


async def _wait_db(sessionmaker, predicate, timeout: float = 60) -> None:
    """Poll the database until `predicate(session)` holds (the worker is another process)."""
    async with asyncio.timeout(timeout):
        while True:
            async with sessionmaker() as s:
                if await predicate(s):
                    return
            await asyncio.sleep(0.1)


async def test_a_worker_killed_mid_notice_resumes_and_leaves_nobody_out(
    session, sessionmaker, db_url, emu, tmp_path
) -> None:
    br = await make_branch(session, emu, 300, blocked_every=10)
    tg = make_tg_bot(emu)
    try:
        status = await tg.send_message(br.secretary_user.id, "…")
    finally:
        await tg.session.close()
    notice = await send_branch_notice(session, br, status=(br.secretary_user.id, status.message_id))
    await session.commit()
    log = tmp_path / "worker.log"

    first = await _start_worker(db_url, emu, "k1", log)
    try:
        await emu.wait_for(lambda: emu.stats.sent() >= 100, timeout=60)
        first.send_signal(signal.SIGKILL)
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert first.returncode == -signal.SIGKILL

    got = emu.stats.per_chat()
    assert 100 <= sum(got.values()) < len(br.reachable)  # really killed in the middle
    async with sessionmaker() as s:
        claimed = set(
            await s.scalars(
                select(Delivery.chat_id).where(
                    Delivery.status == DeliveryStatus.PENDING, Delivery.claimed_by == "k1"
                )
            )
        )
    # Sent, but the process died before writing it down: these may get a second copy.
    unrecorded = {c for c in claimed if got.get(c)}

    second = await _start_worker(db_url, emu, "k2", log)
    try:

        async def done(s) -> bool:
            status = await s.scalar(select(Notice.status).where(Notice.id == notice.id))
            pending = await s.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status == DeliveryStatus.PENDING)
            )
            return status is NoticeStatus.DONE and pending == 0

        await _wait_db(sessionmaker, done)
        # The new worker finished the notice, so it also gives the sender the final counts.
        final = texts("zh")("notices.status.done", total=300, sent=270, failed=0, blocked=30)
        await emu.wait_for(lambda: emu.chat(br.secretary_user)[-1].text == final, timeout=30)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), timeout=60)
    assert second.returncode == 0, await asyncio.to_thread(_tail, log)

    copies = emu.stats.per_chat()
    assert all(copies.get(c, 0) >= 1 for c in br.reachable)  # nobody left out
    assert all(copies.get(c, 0) == 0 for c in br.blocked)
    duplicates = {c: n - 1 for c, n in copies.items() if n > 1}
    assert set(duplicates) <= unrecorded and all(n == 1 for n in duplicates.values())
    assert len(unrecorded) <= len(claimed) <= 2 * 40  # the batch being sent and the next one, at most
    assert await delivery_counts(session) == {DeliveryStatus.SENT: 270, DeliveryStatus.BLOCKED: 30}
