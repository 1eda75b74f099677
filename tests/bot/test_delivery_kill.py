"""The delivery worker killed with SIGKILL in the middle of a notice to 300 members, then
restarted: nobody is left out, and the only second copies are those that were sent but not yet
recorded when the process died (never more than the rows it had claimed)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sqlalchemy import select

from content.i18n import texts
from emulator import Emulator
from storage.models import Delivery, DeliveryStatus
from tests.bot.outbox_world import TOKEN, delivery_counts, make_branch, make_tg_bot, send_branch_notice
from tests.bot.worker_process import notice_delivered, start_worker, stop_workers, tail, wait_db


async def _start_worker(db_url: str, emu: Emulator, worker_id: str, log: Path) -> asyncio.subprocess.Process:
    options = ("--rate", "100", "--batch", "40", "--lease", "3")
    return await start_worker(log, db_url, emu.base_url, TOKEN, worker_id, *options)


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
        await wait_db(sessionmaker, lambda s: notice_delivered(s, notice.id))
        # The new worker finished the notice, so it also gives the sender the final counts.
        final = texts("zh")("notices.status.done", total=300, sent=270, failed=0, blocked=30)
        await emu.wait_for(lambda: emu.chat(br.secretary_user)[-1].text == final, timeout=30)
    finally:
        await stop_workers(second)
    assert second.returncode == 0, await asyncio.to_thread(tail, log)

    copies = emu.stats.per_chat()
    assert all(copies.get(c, 0) >= 1 for c in br.reachable)  # nobody left out
    assert all(copies.get(c, 0) == 0 for c in br.blocked)
    duplicates = {c: n - 1 for c, n in copies.items() if n > 1}
    assert set(duplicates) <= unrecorded and all(n == 1 for n in duplicates.values())
    assert len(unrecorded) <= len(claimed) <= 2 * 40  # the batch being sent and the next one, at most
    assert await delivery_counts(session) == {DeliveryStatus.SENT: 270, DeliveryStatus.BLOCKED: 30}
