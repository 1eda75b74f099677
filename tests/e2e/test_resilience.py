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

from bot.app import BotApp
from emulator import Emulator
from emulator.state import SimUser
from storage.db import make_engine
from storage.models import ProcessedUpdate, ServiceEntry
from tests.dbutil import postgres_only, sqlite_only
from tests.e2e.conftest import BotRunner
from tests.e2e.harness import TOKEN, Chat, Db, poll_until
from tests.e2e.tcpproxy import TcpProxy
from tests.factories import make_person

OUTAGE_SECONDS = 30
# The bot's SQLite busy timeout in the outage test: shorter than the outage, so a writer gives
# up on the lock ("database is locked") and the intake's retry path has to carry the updates.
BUSY_TIMEOUT = 2
# Each failed attempt waits BUSY_TIMEOUT (SQLite) and then a pause of up to a second before
# polling again: a 30 s outage leaves room for about 10; 3 is enough to show it was retried.
MIN_RETRIES = 3
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
    # Telegram's limits on, as in every e2e test: the gate keeps to them through the outage.
    emulator.limits.reset()
    emulator.limits.enable()
    violations = len(emulator.violations)
    refused = emulator.stats.limit_429_total
    proc = BotProcess(emulator, db_url, tmp_path)
    try:
        yield proc
    finally:
        await proc.stop()
    assert emulator.violations[violations:] == []
    assert emulator.stats.limit_429_total == refused  # no 429 from the limits themselves


async def processed(db: Db, updates: list[dict]) -> set[int]:
    """The ones among `updates` whose handling has committed (the database's view)."""
    ids = [u["update_id"] for u in updates]
    return set(await db.all(select(ProcessedUpdate.update_id).where(ProcessedUpdate.update_id.in_(ids))))


def taken(emu: Emulator, bot_id: int, updates: list[dict]) -> list[dict]:
    """The ones among `updates` the bot has confirmed (the emulator's view: Telegram would not
    deliver them again), so from then on they live only in the bot's inbox."""
    waiting = {u["update_id"] for u in emu.pending_updates(bot_id)}
    return [u for u in updates if u["update_id"] not in waiting]


def bot_messages(emu: Emulator, bot_id: int, user: SimUser) -> int:
    return sum(1 for m in emu.chat(user.id, bot=bot_id) if m.outgoing)


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

    # Wave 1 is handled before the kill.
    waves = [users[:10], users[10:20], users[20:]]
    presses = await press_all(emulator, bot_id, waves[0])

    async def first_wave_handled() -> bool:
        return len(await processed(db, presses)) == len(presses)

    await poll_until(first_wave_handled, 60)

    # Wave 2 is in flight at the kill: the emulator holds the answers to its presses (each
    # press has committed its entry and waits for Telegram), and the same people's /help,
    # queued behind their press (one chat's updates run in order), has been taken from
    # Telegram and confirmed, but not handled.
    hold = emulator.faults.slow(3600, method="answerCallbackQuery")
    held_presses = await press_all(emulator, bot_id, waves[1])
    await emulator.wait_for(lambda: hold.hits == len(waves[1]), 60)
    seen_before_help = {u.id: bot_messages(emulator, bot_id, u) for u in waves[1]}
    helps = [await emulator.send_text(u, "/help", bot=bot_id) for u in waves[1]]
    await emulator.wait_for(lambda: len(taken(emulator, bot_id, helps)) == len(helps), 60)
    bot_process.kill()
    assert await bot_process.wait() == -signal.SIGKILL

    # Handled at the kill: the lines and wave 1 (and wave 2's presses, up to their answers).
    done_at_kill = await processed(db, lines + presses + held_presses + helps)
    assert {u["update_id"] for u in lines + presses + held_presses} <= done_at_kill
    # In flight at the kill: Telegram will not send the /help updates again, and none of them
    # had been handled; none was answered.
    assert done_at_kill.isdisjoint(u["update_id"] for u in helps)
    assert all(bot_messages(emulator, bot_id, u) == seen_before_help[u.id] for u in waves[1])
    presses += held_presses
    # Wave 3 arrives while the bot is down.
    presses += await press_all(emulator, bot_id, waves[2])

    emulator.faults.clear()
    await bot_process.start()

    async def all_handled() -> bool:
        return len(await processed(db, lines + presses + helps)) == len(lines + presses + helps)

    await poll_until(all_handled, 60)
    await assert_handled_once(db, lines + presses + helps, users)
    # Each /help taken before the kill was answered once, by the restarted bot.
    await emulator.wait_for(
        lambda: all(bot_messages(emulator, bot_id, u) == seen_before_help[u.id] + 1 for u in waves[1]), 30
    )
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


async def run_outage(emulator: Emulator, runner: BotRunner, session, world, db: Db, outage) -> BotApp:
    app = await runner.start()
    bot_id = app.bot.id
    chat = Chat(emulator, app)
    people = await add_members(session, world, 12)
    users = [chat.user_for(p) for p in people]
    # Warm up: the bot has answered once before the outage.
    assert (await chat.send(users[0], "/help")).text
    assert app.intake.inbox_retries == app.intake.update_retries == 0

    async with outage():
        lines = await log_lines(emulator, bot_id, users)
        await asyncio.sleep(OUTAGE_SECONDS)  # not waiting for anything: the outage lasts this long
        # Nothing could be handled while the database was away (and nothing was confirmed).
        assert not any(quick_form(emulator, bot_id, u) for u in users)
        assert len(emulator.pending_updates(bot_id)) == len(lines)
    # The bot gave up on the database and tried again, more than once: the outage reached the
    # retry path (a wait on a lock that outlasts the outage would show 0 here).
    assert app.intake.inbox_retries + app.intake.update_retries >= MIN_RETRIES
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
    return app


@pytest.fixture
async def short_busy(emulator, clean_db, db_url, clock) -> AsyncIterator[BotRunner]:
    """A bot whose SQLite connection waits BUSY_TIMEOUT for a lock, well under the outage."""
    engine = make_engine(db_url, busy_timeout=BUSY_TIMEOUT)
    runner = BotRunner(emulator, engine, db_url, clock)
    emulator.faults.clear()
    # Telegram's limits on, as in every e2e test: the gate keeps to them through the outage.
    emulator.limits.reset()
    emulator.limits.enable()
    violations = len(emulator.violations)
    refused = emulator.stats.limit_429_total
    try:
        yield runner
    finally:
        await runner.stop_all()
        await engine.dispose()
    assert emulator.violations[violations:] == []
    assert emulator.stats.limit_429_total == refused  # no 429 from the limits themselves


@sqlite_only("another connection holds the file's write lock")
async def test_sqlite_locked_for_30_seconds_under_traffic(
    emulator, short_busy, session, world, db, db_url
) -> None:
    async with short_busy.engine.connect() as conn:  # the bot's engine really has the short timeout
        timeout_ms = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
    assert timeout_ms == BUSY_TIMEOUT * 1000 < OUTAGE_SECONDS * 1000
    await run_outage(emulator, short_busy, session, world, db, lambda: sqlite_locked(db_url))


@pytest.fixture
async def proxied(emulator, clean_db, db_url, clock) -> AsyncIterator[tuple[BotRunner, TcpProxy]]:
    url = make_url(db_url)
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    engine = make_engine(proxied_url, pool_size=5)
    runner = BotRunner(emulator, engine, proxied_url, clock)
    emulator.faults.clear()
    # Telegram's limits on, as in every e2e test: the gate keeps to them through the outage.
    emulator.limits.reset()
    emulator.limits.enable()
    violations = len(emulator.violations)
    refused = emulator.stats.limit_429_total
    try:
        yield runner, proxy
    finally:
        await runner.stop_all()
        await engine.dispose()
        await proxy.stop()
    assert emulator.violations[violations:] == []
    assert emulator.stats.limit_429_total == refused  # no 429 from the limits themselves


@postgres_only("the database server is cut off behind a TCP proxy")
async def test_postgres_cut_off_for_30_seconds_under_traffic(proxied, emulator, session, world, db) -> None:
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
