"""End-to-end fixtures: one emulator per test session, a fresh bot (real Dispatcher, real
HTTP long polling) per test on the test database, and the chat and db drivers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import BotApp, create_app
from bot.clock import FrozenClock
from bot.settings import Settings
from emulator.core import Emulator
from tests.e2e.harness import NOW, TOKEN, Chat, Db


@pytest.fixture(scope="session")
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator()
    await emu.start()
    emu.add_bot(TOKEN, username="branchbot_test_bot", first_name="支部助手")
    yield emu
    await emu.stop()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


def e2e_settings(emu: Emulator, db_url: str, **extra: object) -> Settings:
    return Settings(
        bot_token=TOKEN,
        telegram_api_url=emu.base_url,
        database_url=db_url,
        bot_username="branchbot_test_bot",
        **extra,  # type: ignore[arg-type]
    )


class BotRunner:
    """Starts bots (real polling) on the test database, and stops them: a test may restart one."""

    def __init__(self, emu: Emulator, engine: AsyncEngine, db_url: str, clock: FrozenClock) -> None:
        self.emu, self.engine, self.db_url, self.clock = emu, engine, db_url, clock
        self.running: list[tuple[BotApp, asyncio.Task[None]]] = []

    async def start(self, **settings: object) -> BotApp:
        app = create_app(
            e2e_settings(self.emu, self.db_url, **settings), clock=self.clock, engine=self.engine
        )
        task = asyncio.create_task(app.intake.run_polling(poll_timeout=5))
        self.running.append((app, task))
        return app

    async def stop(self, app: BotApp) -> None:
        for item in [r for r in self.running if r[0] is app]:
            self.running.remove(item)
            app.intake.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(item[1], 15)
            await app.close()

    async def stop_all(self) -> None:
        for app, _task in list(self.running):
            await self.stop(app)


@pytest.fixture
async def bots(
    emulator: Emulator, clean_db: AsyncEngine, db_url: str, clock: FrozenClock
) -> AsyncIterator[BotRunner]:
    emulator.faults.clear()
    emulator.limits.disable()
    violations_before = len(emulator.violations)
    runner = BotRunner(emulator, clean_db, db_url, clock)
    try:
        yield runner
    finally:
        await runner.stop_all()
    # Every call the bot made must have been one Telegram accepts.
    assert emulator.violations[violations_before:] == []


@pytest.fixture
async def bot_app(bots: BotRunner) -> BotApp:
    return await bots.start()


@pytest.fixture
def chat(emulator: Emulator, bot_app: BotApp) -> Chat:
    return Chat(emulator, bot_app)


@pytest.fixture
def db(sessionmaker: async_sessionmaker[AsyncSession]) -> Db:
    return Db(sessionmaker)
