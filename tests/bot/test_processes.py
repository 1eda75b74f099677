"""Several bot processes behind one webhook address (`branchbot run --only bot --processes 2`)
on PostgreSQL and Redis: 200 chats write quickly, the emulator POSTs up to 40 updates at once as
Telegram does, and one bot process is killed in the middle. Every update is handled exactly once
(the processed-updates table), each chat's updates in update_id order, and the only replies
missing or repeated are those of updates that were in the killed process's hands."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sys
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select

from bench.throughput import seed
from emulator import Emulator
from storage.db import make_engine, make_sessionmaker
from storage.models import ProcessedUpdate
from tests import dbutil
from tests.dbutil import postgres_only
from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
REDIS = "redis://127.0.0.1:6379/0"  # keys are per bot id, and the bot id is this run's own
CHATS = 200
PER_CHAT = 5
LINE = re.compile(r"第(\d+)条")

pytestmark = postgres_only("several bot processes share one database; SQLite is the one-process default")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else ""


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def bot_env(emu: Emulator, token: str, db_url: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "BOT_TOKEN": token,
        "TELEGRAM_API_URL": emu.base_url,
        "DATABASE_URL": db_url,
        "REDIS_URL": REDIS,
        "WEBHOOK_URL": f"http://127.0.0.1:{port}/tg",
        "WEBHOOK_SECRET": "procs-test-secret",
        "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }


async def test_two_processes_200_chats_once_only_in_order_and_a_kill_loses_nothing(
    db_url, clean_db, tmp_path
) -> None:
    rng = random.Random(2026)
    token = f"{rng.randrange(10**8, 10**9)}{os.getpid() % 10}:procs-test-AAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    log = tmp_path / "bots.log"
    async with Emulator(webhook_retry_base=0.05, webhook_retry_max=0.5) as emu:
        bot = emu.add_bot(token, username="procs_test_bot")
        users = [emu.add_user(f"党员{i:03d}", language_code="zh") for i in range(CHATS)]
        await seed(db_url, users)
        env = bot_env(emu, token, db_url, free_port())
        with log.open("ab") as out:
            sup = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "bot.cli", "run", "--only", "bot", "--processes", "2"),
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        try:
            # Both processes listen once each has set the webhook (after its port is open).
            await emu.wait_for(lambda: emu.stats.requests["setWebhook"] >= 2, 180)
            assert len(children(sup.pid)) == 2, _tail(log)

            # Each chat writes its lines one after another, the chats interleaved at random:
            # a chat's lines are often within 40 updates of each other, so in flight together.
            plan = [u for u in users for _ in range(PER_CHAT)]
            rng.shuffle(plan)
            written: dict[int, int] = defaultdict(int)
            chat_of: dict[int, int] = {}
            line_of: dict[int, int] = {}
            for u in plan:
                k = written[u.id]
                written[u.id] += 1
                update = await emu.send_text(u, f"/log 1 今天 第{k}条", bot=bot.id)
                chat_of[update["update_id"]] = u.id
                line_of[update["update_id"]] = k

            # One process is killed in the middle of the load.
            await emu.wait_for(lambda: emu.stats.sent(bot.id) >= CHATS, 120)
            victim = children(sup.pid)[0]
            os.kill(victim, signal.SIGKILL)
            handled_before_kill = emu.stats.sent(bot.id)
            # An update leaves Telegram's queue only when a bot process answered 200, which it
            # does once the update is handled (its reply included).
            await emu.wait_for(lambda: not bot.queue, 180)
        finally:
            sup.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(sup.wait(), 60)
            finally:
                if sup.returncode is None:
                    sup.kill()
                    await sup.wait()
        # The run's keys out of the shared Redis (the assertions below need none of them).
        assert await dbutil.forget_bot_in_redis(REDIS, bot.id) > 0
        assert sup.returncode == 0, _tail(log)
        assert not emu.violations, emu.violations[:3]
        assert handled_before_kill < CHATS * PER_CHAT  # really killed in the middle

        failed = {a.update_id for a in bot.webhook_attempts if a.status != 200}
        assert failed, "no delivery failed: the kill hit nothing in flight"

        engine = make_engine(db_url)
        try:
            async with make_sessionmaker(engine)() as s:
                rows = (
                    await s.execute(
                        select(ProcessedUpdate.update_id, ProcessedUpdate.processed_at).where(
                            ProcessedUpdate.bot_id == bot.id
                        )
                    )
                ).all()
        finally:
            await engine.dispose()
        # Exactly once: every update has its one row (the primary key allows no second).
        assert sorted(r.update_id for r in rows) == sorted(chat_of)
        # In order per chat: each update was taken after the chat's earlier ones.
        taken = {r.update_id: r.processed_at for r in rows}
        for chat in {u.id for u in users}:
            ids = sorted(uid for uid, c in chat_of.items() if c == chat)
            times = [taken[uid] for uid in ids]
            assert times == sorted(times), f"chat {chat}: taken out of update_id order"

        # The replies: each line answered once, in order; an update the killed process had in
        # hand may have lost its reply (committed, then killed before the reply went out) or be
        # answered twice (answered, then killed before its commit): nothing else.
        in_hand = {(chat_of[u], line_of[u]) for u in failed if u in chat_of}
        for u in users:
            lines = [
                int(m.group(1))
                for msg in emu.chat(u, bot=bot.id)
                if msg.outgoing and (m := LINE.search(msg.text or ""))
            ]
            assert lines == sorted(lines), f"chat {u.id}: replies out of order: {lines}"
            for k in range(PER_CHAT):
                if (u.id, k) not in in_hand:
                    assert lines.count(k) == 1, f"chat {u.id}: line {k} answered {lines.count(k)} times"
                else:
                    assert lines.count(k) <= 2
