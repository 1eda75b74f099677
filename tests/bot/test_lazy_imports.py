"""A bot process carries only what it uses: the heavy libraries of charts, workbooks, PDFs and the
admin web are imported when first needed, not when the bot starts (issue 11, memory)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "matplotlib",
    "openpyxl",
    "docx",
    "fpdf",
    "starlette",
    "numpy",
    "PIL",
    "emulator",
    "prompt_toolkit",
    # Migrations (about 9 MB with mako and pygments) run from `db upgrade` and the demo only.
    "alembic",
    "mako",
    "pygments",
    # Password hashing is the admin web's; cron lines are read by the scheduler or on first use.
    "argon2",
    "apscheduler",
    "tzlocal",
)

# What `branchbot run --only bot` imports before its first update: the command line (which
# registers every area's subcommands), the app, the runtime and every router of the dispatcher.
_PROBE = """
import json, sys
import bot.app, bot.runtime
from bot.cli import build_parser
build_parser()
from handlers import routers
routers()
names = %r
print(json.dumps(sorted(m for m in sys.modules if any(m == n or m.startswith(n + ".") for n in names))))
"""


def _loaded(probe: str, names: tuple[str, ...] = HEAVY) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", probe % (names,)], capture_output=True, text=True, check=True, timeout=120
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


# Exactly what `branchbot run --only bot` imports before serving, on SQLite: the command line
# registers only `run`; the engine connects. Neither the PostgreSQL driver, nor SQLAlchemy's
# PostgreSQL dialect (storage/models._partial_index), nor the standard library's multiprocessing
# (a roster upload's parse), nor aiohttp's server side (webhooks only; this process polls), nor
# Babel (content/i18n.py reads the catalogs itself) is loaded.
_RUN_BOT_PROBE = """
import asyncio, json, sys
from bot.cli import build_parser
build_parser(["run", "--only", "bot"])
import bot.runtime
from handlers import routers
routers()
from storage.db import make_engine

async def connect():
    engine = make_engine("sqlite+aiosqlite://")
    async with engine.connect() as c:
        await c.exec_driver_sql("SELECT 1")
    await engine.dispose()

asyncio.run(connect())
names = %r
print(json.dumps(sorted(m for m in sys.modules if any(m == n or m.startswith(n + ".") for n in names))))
"""


def test_bot_process_does_not_import_heavy_libraries() -> None:
    assert _loaded(_PROBE) == []


def test_run_only_bot_on_sqlite_imports_only_what_polling_on_sqlite_uses() -> None:
    postgres = ("asyncpg", "sqlalchemy.dialects.postgresql")
    assert _loaded(_RUN_BOT_PROBE, (*HEAVY, *postgres, "multiprocessing", "aiohttp.web", "babel")) == []


# The same on PostgreSQL (the engine is made, not connected: creating it loads the dialect and
# asyncpg): SQLite's driver, aiosqlite and SQLAlchemy's SQLite dialect stay out (storage/db.py
# imports its SQLite driver for a SQLite URL only; bot/transient.py looks for sqlite3's error
# only where sqlite3 is loaded).
_RUN_BOT_PG_PROBE = """
import json, sys
from bot.cli import build_parser
build_parser(["run", "--only", "bot"])
import bot.runtime
from handlers import routers
routers()
from storage.db import make_engine

make_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
names = %r
print(json.dumps(sorted(m for m in sys.modules if any(m == n or m.startswith(n + ".") for n in names))))
"""


def test_run_only_bot_on_postgres_imports_nothing_of_sqlite() -> None:
    sqlite = ("sqlite3", "_sqlite3", "aiosqlite", "sqlalchemy.dialects.sqlite", "storage.sqlite_driver")
    assert _loaded(_RUN_BOT_PG_PROBE, (*HEAVY, *sqlite, "multiprocessing", "aiohttp.web", "babel")) == []
