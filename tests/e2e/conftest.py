"""End-to-end fixtures: one emulator per test session, a fresh bot (real Dispatcher, real
HTTP long polling) per test on the test database, and the chat and db drivers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import BotApp, create_app
from config.clock import FrozenClock
from config.settings import Settings
from emulator import Emulator
from emulator.state import ErrorRecord
from storage.evidence import EvidenceStore
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def e2e_settings(emu: Emulator, db_url: str, **extra: object) -> Settings:
    return Settings(
        bot_token=TOKEN,
        telegram_api_url=emu.base_url,
        database_url=db_url,
        bot_username="branchbot_test_bot",
        **extra,  # type: ignore[arg-type]
    )


@dataclass
class ExpectedError:
    method: str
    code: int
    contains: str = ""
    required: bool = True
    seen: int = 0

    def matches(self, err: ErrorRecord) -> bool:
        return (
            err.method.lower() == self.method and err.code == self.code and self.contains in err.description
        )


class BotRunner:
    """Starts bots (real polling) on the test database, and stops them: a test may restart one."""

    def __init__(
        self,
        emu: Emulator,
        engine: AsyncEngine,
        db_url: str,
        clock: FrozenClock,
        evidence_dir: Path | None = None,
    ) -> None:
        self.emu, self.engine, self.db_url, self.clock = emu, engine, db_url, clock
        # Evidence photos go to the test's own folder, never into the working tree.
        self.evidence_dir = evidence_dir or Path(tempfile.gettempdir()) / "branchbot-e2e-evidence"
        self.running: list[tuple[BotApp, asyncio.Task[None]]] = []
        self.expected: list[ExpectedError] = []

    def expect_error(
        self, method: str, code: int, contains: str = "", *, required: bool = True
    ) -> ExpectedError:
        """Declare an error answer this test makes the bot get (any number of times; at least
        once unless not `required`): every other 4xx/5xx answered to the bot fails the test."""
        e = ExpectedError(method.lower(), code, contains, required=required)
        self.expected.append(e)
        return e

    def check_errors(self, errors: list[ErrorRecord]) -> None:
        unexpected = []
        for err in errors:
            match = next((e for e in self.expected if e.matches(err)), None)
            if match is None:
                unexpected.append((err.method, err.code, err.description))
            else:
                match.seen += 1
        assert unexpected == [], f"error answers the test did not declare: {unexpected}"
        unmet = [e for e in self.expected if e.required and not e.seen]
        assert unmet == [], f"declared errors that never came: {unmet}"

    async def start(self, **settings: object) -> BotApp:
        settings.setdefault("evidence_dir", str(self.evidence_dir))
        app = create_app(
            e2e_settings(self.emu, self.db_url, **settings), clock=self.clock, engine=self.engine
        )
        task = asyncio.create_task(app.intake.run_polling(poll_timeout=5))
        self.running.append((app, task))
        return app

    async def start_webhook(self, secret: str = "s3cret-token") -> BotApp:
        """A bot in webhook mode: the emulator pushes updates to our HTTP endpoint."""
        from bot.runtime import _serve_webhook

        port = free_port()
        app = create_app(
            e2e_settings(
                self.emu,
                self.db_url,
                webhook_url=f"http://127.0.0.1:{port}/tg/webhook",
                webhook_secret=secret,
                webhook_host="127.0.0.1",
                webhook_port=port,
                evidence_dir=str(self.evidence_dir),
            ),
            clock=self.clock,
            engine=self.engine,
        )
        stop = asyncio.Event()
        app.extras["stop"] = stop
        task = asyncio.create_task(_serve_webhook(app, app.settings, stop))
        self.running.append((app, task))

        def ours() -> bool:
            hook = self.emu.bot(app.bot.id).webhook
            return hook is not None and hook.url == app.settings.webhook_url

        await self.emu.wait_for(ours, 10)
        return app

    async def stop(self, app: BotApp) -> None:
        if "stop" in app.extras:
            app.extras["stop"].set()
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
    emulator: Emulator, clean_db: AsyncEngine, db_url: str, clock: FrozenClock, tmp_path: Path
) -> AsyncIterator[BotRunner]:
    emulator.faults.clear()
    # Telegram's limits are on (30/s per bot, 1/s per chat with a short burst, 20/min per group):
    # every call goes through the bot's gate, which keeps to them; a 429 would fail the test.
    emulator.limits.reset()
    emulator.limits.enable()
    violations_before = len(emulator.violations)
    errors_before = len(emulator.errors)
    refused_before = emulator.stats.limit_429_total
    runner = BotRunner(emulator, clean_db, db_url, clock, evidence_dir=tmp_path / "evidence")
    try:
        yield runner
    finally:
        await runner.stop_all()
    # Every call the bot made must have been one Telegram accepts.
    assert emulator.violations[violations_before:] == []
    # ...and none broke Telegram's limits (the gate retries a 429, so only the count shows it)...
    assert emulator.stats.limit_429_total == refused_before
    # ...and every error answer it got was one the test expected.
    runner.check_errors(emulator.errors[errors_before:])


@pytest.fixture
async def bot_app(bots: BotRunner) -> BotApp:
    return await bots.start()


@pytest.fixture
def chat(emulator: Emulator, bot_app: BotApp) -> Chat:
    return Chat(emulator, bot_app)


@pytest.fixture
def db(sessionmaker: async_sessionmaker[AsyncSession]) -> Db:
    return Db(sessionmaker)


@pytest.fixture
def evidence(bot_app: BotApp) -> EvidenceStore:
    """The bot's evidence photo store (a folder of the test's own)."""
    return EvidenceStore(bot_app.settings.evidence_dir)
