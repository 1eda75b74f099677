"""Browser tests: the admin web in real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright; never a browser Playwright downloads).

When they run:
- chromium present, TEST_DATABASE_URL unset: they run (CI runs them once, in the SQLite pass);
- TEST_DATABASE_URL set: not collected (the route tests cover both databases);
- chromium missing and BRANCHBOT_REQUIRE_BROWSER=1 (set by .ci/run): the whole run stops, loudly;
- chromium missing otherwise (a newcomer's `make test`): not collected, and one plain line at the
  end of the run says so. Never pytest.skip: a skipped test looks like a passed suite.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# Debian's package; BRANCHBOT_CHROMIUM points elsewhere (the gate's own test uses a missing path).
CHROMIUM = Path(os.environ.get("BRANCHBOT_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE.parent.parent / "test-artifacts" / "screenshots"
NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
TODAY = date(2026, 11, 28)

LEFT_OUT_MISSING = "browser tests left out: chromium is not installed (apt-get install chromium to run them)"
LEFT_OUT_PG = "browser tests left out on PostgreSQL: they run once, in the SQLite pass"


def why_left_out() -> str | None:
    if os.environ.get("TEST_DATABASE_URL", "").strip():
        return LEFT_OUT_PG
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("BRANCHBOT_REQUIRE_BROWSER") == "1":
            pytest.exit(
                f"BRANCHBOT_REQUIRE_BROWSER=1 but {CHROMIUM} is missing: the browser tests cannot run",
                returncode=3,
            )
        return LEFT_OUT_MISSING
    return None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.suffix == ".py" and collection_path.name.startswith("test_") and why_left_out():
        return True
    return None


def pytest_report_header(config: pytest.Config) -> str:
    return why_left_out() or f"browser tests: {CHROMIUM}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    reason = why_left_out()
    if reason:
        terminalreporter.write_line(reason)


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        await b.close()


@dataclass
class Site:
    url: str
    sessionmaker: async_sessionmaker[AsyncSession]
    lived: Any  # tests.browser.seed.Lived
    settings: Any = None  # bot.settings.Settings (evidence_dir: the photo store of this test)

    def at(self, path: str) -> str:
        return self.url + path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def site(clean_db, session, sessionmaker, tmp_path) -> AsyncIterator[Site]:
    """The admin web on a free port, served by uvicorn in this test's loop, over a lived-in province."""
    from admin.web import create_app
    from admin.web.server import make_server, serve_admin
    from config.clock import FrozenClock
    from config.settings import Settings
    from tests.browser.seed import seed

    lived = await seed(session, TODAY)
    port = _free_port()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        admin_secret="browser-test-" + "y" * 32,
        admin_host="127.0.0.1",
        admin_port=port,
        bot_username="branchbot_test_bot",
        evidence_dir=str(tmp_path / "evidence"),
    )
    app = create_app(sessionmaker, settings, clock=FrozenClock(NOW))
    server = make_server(app, "127.0.0.1", port)
    stop = asyncio.Event()
    task = asyncio.create_task(serve_admin(app, "127.0.0.1", port, stop, server=server))

    async def started() -> None:
        while not server.started:
            if task.done():
                task.result()  # the server failed: say why
            await asyncio.sleep(0.01)

    await asyncio.wait_for(started(), timeout=10)
    try:
        yield Site(f"http://127.0.0.1:{port}", sessionmaker, lived, settings)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


@pytest.fixture
async def page(browser) -> AsyncIterator[Any]:
    context = await browser.new_context(
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        viewport={"width": 1440, "height": 900},
        accept_downloads=True,
    )
    pg = await context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(str(e)))
    pg.problems = problems  # console errors and CSP violations, checked by the tests
    yield pg
    await context.close()


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
