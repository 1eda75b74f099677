"""Nothing lost, nothing doubled: the bot killed with SIGKILL while updates are in flight, and
the database unavailable for 30 seconds under traffic. Afterwards every update has been handled
exactly once and the bot is still running."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from emulator import Emulator
from emulator.state import SimUser
from storage.db import make_engine
from storage.models import ProcessedUpdate, ServiceEntry
from tests import dbutil
from tests.e2e.conftest import BotRunner
from tests.e2e.harness import TOKEN, Chat, Db, poll_until
from tests.e2e.tcpproxy import TcpProxy
from tests.factories import make_person

OUTAGE_SECONDS = 30
ROOT = Path(__file__).resolve().parents[2]


async def add_members(session, world, n: int) -> list:
    people = [await make_person(session, f"党员{i:02d}", world.branch_a) for i in range(n)]
    await session.commit()
    return people


async def log_lines(emu: Emulator, bot_id: int, users: list[SimUser]) -> list[dict]:
    return [await emu.send_text(u, f"/log 1 今天 志愿服务{i}", bot=bot_id) for i, u in enumerate(users)]


def quick_form(emu: Emulator, bot_id: int, user: SimUser):
    """The bot's quick-form message with the action buttons, once it has arrived."""
    return next(
        (m for m in emu.chat(user.id, bot=bot_id) if m.buttons and "党员志愿服务行动" in str(m.buttons)), None
    )


async def press_all(emu: Emulator, bot_id: int, users: list[SimUser]) -> list[dict]:
    updates = []
    for u in users:
        msg = quick_form(emu, bot_id, u)
        assert msg is not None
        updates.append(await emu.press(u, msg, text="党员志愿服务行动"))
    return updates


async def assert_handled_once(db: Db, updates: list[dict], users: list[SimUser]) -> None:
    ids = [u["update_id"] for u in updates]
    rows = await db.all(select(ProcessedUpdate.update_id).where(ProcessedUpdate.update_id.in_(ids)))
    assert sorted(rows) == sorted(ids)  # each exactly once (it is the primary key with the bot id)
    sources = await db.all(select(ServiceEntry.source))
    assert len(sources) == len(set(sources)) == len(users)


# --- SIGKILL ----------------------------------------------------------------------------------


class BotProcess:
    def __init__(self, emu: Emulator, db_url: str, tmp: Path) -> None:
        self.env = {
            **os.environ,
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": emu.base_url,
            "DATABASE_URL": db_url,
            "LOG_LEVEL": "WARNING",
        }
        self.log = tmp / "bot.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot.cli",
                "run",
                "--only",
                "bot",
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@pytest.fixture
async def bot_process(emulator, clean_db, db_url, tmp_path) -> AsyncIterator[BotProcess]:
    emulator.faults.clear()
    emulator.limits.disable()
    violations = len(emulator.violations)
    proc = BotProcess(emulator, db_url, tmp_path)
    try:
        yield proc
    finally:
        await proc.stop()
    assert emulator.violations[violations:] == []


async def test_sigkill_with_updates_in_flight_loses_and_doubles_nothing(
    emulator, bot_process, session, world, sessionmaker
) -> None:
    db = Db(sessionmaker)
    bot_id = int(TOKEN.split(":")[0])
    people = await add_members(session, world, 30)
    users = [emulator.users.get(p.telegram_id) or emulator.add_user(p.name, id=p.telegram_id) for p in people]

    await bot_process.start()
    lines = await log_lines(emulator, bot_id, users)
    await emulator.wait_for(lambda: all(quick_form(emulator, bot_id, u) for u in users), 60)

    # Three waves of button presses: the bot is killed while the second is being handled
    # (answers slowed down so it is mid-flight), the third arrives while it is down.
    emulator.faults.slow(0.2, method="answerCallbackQuery")
    waves = [users[:10], users[10:20], users[20:]]
    presses = await press_all(emulator, bot_id, waves[0])

    async def first_wave_started() -> bool:
        return await db.count(ServiceEntry) >= 3

    await poll_until(first_wave_started, 60, interval=0.01)
    presses += await press_all(emulator, bot_id, waves[1])

    async def second_wave_in_flight() -> bool:
        return await db.count(ServiceEntry) >= 12

    await poll_until(second_wave_in_flight, 60, interval=0.01)
    bot_process.kill()
    assert await bot_process.wait() == -signal.SIGKILL
    stored_at_kill = await db.count(ServiceEntry)
    assert 3 <= stored_at_kill < len(users)
    presses += await press_all(emulator, bot_id, waves[2])

    emulator.faults.clear()
    await bot_process.start()

    async def all_stored() -> bool:
        return await db.count(ServiceEntry) == len(users)

    await poll_until(all_stored, 60)
    await assert_handled_once(db, lines + presses, users)
    assert bot_process.proc is not None and bot_process.proc.returncode is None


# --- the database away for 30 seconds ---------------------------------------------------------


@contextlib.asynccontextmanager
async def sqlite_locked(db_url: str) -> AsyncIterator[None]:
    """Another connection holds an exclusive lock: every writer must wait or fail."""
    path = make_url(db_url).database
    assert path
    conn = sqlite3.connect(path, timeout=1, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def run_outage(emulator: Emulator, runner: BotRunner, session, world, db: Db, outage) -> None:
    app = await runner.start()
    bot_id = app.bot.id
    chat = Chat(emulator, app)
    people = await add_members(session, world, 12)
    users = [chat.user_for(p) for p in people]
    # Warm up: the bot has answered once before the outage.
    assert (await chat.send(users[0], "/help")).text

    async with outage():
        lines = await log_lines(emulator, bot_id, users)
        await asyncio.sleep(OUTAGE_SECONDS)  # not waiting for anything: the outage lasts this long
        # Nothing could be handled while the database was away (and nothing was confirmed).
        assert not any(quick_form(emulator, bot_id, u) for u in users)
    await emulator.wait_for(lambda: all(quick_form(emulator, bot_id, u) for u in users), 60)
    presses = await press_all(emulator, bot_id, users)
    for u in presses:
        await app.intake.wait_handled(u["update_id"], 60)
    await assert_handled_once(db, lines + presses, users)
    # One reply per /log line: nothing doubled by the retries.
    for u in users:
        assert (
            sum(
                1
                for m in emulator.chat(u.id, bot=bot_id)
                if "党员志愿服务行动" in str(m.buttons)
                or "已登记" in (m.text or "")
                or "待书记审核" in (m.text or "")
            )
            == 1
        )
    polling = next(t for a, t in runner.running if a is app)
    assert not polling.done(), "the bot stopped"


if not dbutil.pg_requested():

    async def test_sqlite_locked_for_30_seconds_under_traffic(
        emulator, bots, session, world, db, db_url
    ) -> None:
        await run_outage(emulator, bots, session, world, db, lambda: sqlite_locked(db_url))

else:

    @pytest.fixture
    async def proxied(emulator, clean_db, db_url, clock) -> AsyncIterator[tuple[BotRunner, TcpProxy]]:
        url = make_url(db_url)
        proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
        proxied_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        engine = make_engine(proxied_url, pool_size=5)
        runner = BotRunner(emulator, engine, proxied_url, clock)
        emulator.faults.clear()
        violations = len(emulator.violations)
        try:
            yield runner, proxy
        finally:
            await runner.stop_all()
            await engine.dispose()
            await proxy.stop()
        assert emulator.violations[violations:] == []

    async def test_postgres_cut_off_for_30_seconds_under_traffic(
        proxied, emulator, session, world, db
    ) -> None:
        runner, proxy = proxied

        @contextlib.asynccontextmanager
        async def cut() -> AsyncIterator[None]:
            proxy.cut_off()
            try:
                yield
            finally:
                proxy.restore()

        await run_outage(emulator, runner, session, world, db, cut)
        assert proxy.refused > 0  # the bot did try, and was refused, during the outage
