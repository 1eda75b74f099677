"""`branchbot check` against the local emulator: silent and 0 when all is well, one line per problem
with what to do (and exit 1) for each thing an operator can get wrong."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.check import PENDING_LIMIT, Problem, run_checks
from config.settings import Settings
from emulator import Emulator
from emulator.state import SimBot
from storage.migrate import current_head, upgrade

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "710001:check-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    e = Emulator(auto_register_bots=False)
    await e.start()
    e.add_bot(TOKEN, username="check_bot")
    try:
        yield e
    finally:
        await e.stop()


@pytest.fixture
async def db_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'check.db'}"
    await asyncio.to_thread(upgrade, url)
    return url


def settings(emu: Emulator, db_url: str, **over: Any) -> Settings:
    base: dict[str, Any] = {"bot_token": TOKEN, "telegram_api_url": emu.base_url, "database_url": db_url}
    if over.get("webhook_url"):
        base["webhook_secret"] = "check-secret"
    return Settings(_env_file=None, **{**base, **over})  # type: ignore[call-arg]


async def problems(s: Settings) -> list[str]:
    found = await run_checks(s)
    assert all(isinstance(p, Problem) and p.todo for p in found)  # each says what to do
    return [p.line() for p in found]


def the_bot(emu: Emulator) -> SimBot:
    return emu.bot(None)


async def test_all_well(emu: Emulator, db_url: str) -> None:
    assert await problems(settings(emu, db_url)) == []


async def test_all_well_with_redis(emu: Emulator, db_url: str) -> None:
    assert await problems(settings(emu, db_url, redis_url=REDIS_URL)) == []


async def test_database_without_schema(emu: Emulator, tmp_path: Path) -> None:
    found = await problems(settings(emu, f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"))
    assert found == ["problem: the database has no schema -> run `branchbot db upgrade`"]


async def test_database_behind_the_code(emu: Emulator, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await asyncio.to_thread(upgrade, url, "0001")
    (line,) = await problems(settings(emu, url))
    assert f"is at migration 0001, the code expects {current_head()}" in line
    assert "branchbot db upgrade" in line


async def test_database_unreachable(emu: Emulator) -> None:
    (line,) = await problems(settings(emu, "postgresql+asyncpg://nobody:secret@127.0.0.1:9/none"))
    assert "unreachable" in line and "DATABASE_URL" in line
    assert "secret" not in line  # the password is not printed


async def test_redis_unreachable(emu: Emulator, db_url: str) -> None:
    (line,) = await problems(settings(emu, db_url, redis_url="redis://127.0.0.1:9/0"))
    assert "Redis" in line and "REDIS_URL" in line


async def test_token_refused(emu: Emulator, db_url: str) -> None:
    (line,) = await problems(settings(emu, db_url, bot_token="710002:unknown-AAAAAAAAAAAAAAAAAAAAAAAA"))
    assert "refuses the token" in line and "BOT_TOKEN" in line


async def test_telegram_unreachable(emu: Emulator, db_url: str) -> None:
    (line,) = await problems(settings(emu, db_url, telegram_api_url="http://127.0.0.1:9"))
    assert "cannot reach Telegram" in line and "TELEGRAM_API_URL" in line


async def test_webhook_not_where_the_settings_say(emu: Emulator, db_url: str) -> None:
    (line,) = await problems(settings(emu, db_url, webhook_url="https://bot.example.org/tg"))
    assert "webhook is 'not set'" in line and "WEBHOOK_URL" in line


async def test_webhook_set_but_bot_would_poll(emu: Emulator, db_url: str) -> None:
    await emu.webhooks.set(the_bot(emu), {"url": "https://old.example.org/tg"})
    (line,) = await problems(settings(emu, db_url))
    assert "a webhook is set (https://old.example.org/tg) but WEBHOOK_URL is empty" in line


async def test_webhook_last_error_and_pending_updates(emu: Emulator, db_url: str) -> None:
    url = "https://bot.example.org/tg"
    bot = the_bot(emu)
    await emu.webhooks.set(bot, {"url": url})
    # What Telegram reports after failed deliveries: the last error, and updates piling up.
    bot.last_error_date, bot.last_error_message = 1_700_000_000, "Connection refused"
    user = emu.add_user("党员")
    for i in range(PENDING_LIMIT + 1):
        await emu.send_text(user, f"hello {i}")
    found = await problems(settings(emu, db_url, webhook_url=url))
    assert len(found) == 2
    assert "last webhook delivery failed: Connection refused" in found[0]
    assert f"{PENDING_LIMIT + 1} updates are waiting" in found[1]


async def test_cli_prints_one_line_per_problem_and_exits_1(emu: Emulator, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": emu.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'none.db'}",
        "WEBHOOK_URL": "https://bot.example.org/tg",
        "WEBHOOK_SECRET": "check-secret",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "check", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    lines = out.decode().strip().splitlines()
    assert proc.returncode == 1
    assert len(lines) == 3 and lines[-1] == "2 problem(s)"
    assert lines[0].startswith("problem: the database has no schema")
    assert lines[1].startswith("problem: Telegram's webhook is 'not set'")


async def test_cli_all_well_exits_0(emu: Emulator, db_url: str) -> None:
    env = {**os.environ, "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": emu.base_url, "DATABASE_URL": db_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "check", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert (proc.returncode, out.decode().strip()) == (0, "all checks passed")
