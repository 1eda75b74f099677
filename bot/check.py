"""`branchbot check`: is this machine ready to run the bot? One line per problem, with what to do.

Checks, in order: the settings, the database and whether its migrations are at the newest
revision, Redis (when REDIS_URL is set), reaching Telegram with the token (getMe), and the
webhook's state (getWebhookInfo: its URL against WEBHOOK_URL, updates waiting, the last
delivery error). Exit status 0 when all is well, 1 when there are problems.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass

from config.settings import Settings, SettingsError

# More updates than this waiting at Telegram means nobody is taking them in.
PENDING_LIMIT = 100


@dataclass(frozen=True)
class Problem:
    what: str
    todo: str

    def line(self) -> str:
        return f"problem: {self.what} -> {self.todo}"


async def _database(settings: Settings) -> list[Problem]:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine

    from storage.migrate import current_head

    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            revision = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    except Exception as e:
        return [
            Problem(
                f"database {engine.url.render_as_string(hide_password=True)} unreachable"
                f" ({type(e).__name__})",
                "check DATABASE_URL and that the database server is running",
            )
        ]
    finally:
        await engine.dispose()
    head = current_head()
    if revision is None:
        return [Problem("the database has no schema", "run `branchbot db upgrade`")]
    if revision != head:
        return [
            Problem(
                f"the database is at migration {revision}, the code expects {head}",
                "run `branchbot db upgrade` (after a backup)",
            )
        ]
    return []


async def database_problems(settings: Settings) -> list[str]:
    """The database's problems as lines (for the CLI when a command fails on the database)."""
    return [p.line() for p in await _database(settings)]


async def _redis(settings: Settings) -> list[Problem]:
    if not settings.redis_url:
        return []
    from redis.asyncio import Redis

    client = Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    try:
        await client.ping()
    except Exception as e:
        what = f"Redis at REDIS_URL unreachable ({type(e).__name__})"
        return [Problem(what, "start Redis or fix REDIS_URL")]
    finally:
        await client.aclose()
    return []


async def _telegram(settings: Settings) -> list[Problem]:
    from aiogram.exceptions import TelegramUnauthorizedError

    from bot.app import make_bot

    try:
        settings.require_token()
    except SettingsError as e:
        return [Problem(f"bad setting {e}", "set BOT_TOKEN to the token @BotFather gave")]
    bot = make_bot(settings, gate=False)  # the gate would retry an unreachable Telegram for ever
    try:
        try:
            await bot.get_me(request_timeout=10)
        except TelegramUnauthorizedError:
            what = "Telegram refuses the token (getMe: unauthorized)"
            return [Problem(what, "check BOT_TOKEN with @BotFather")]
        except Exception as e:
            return [
                Problem(
                    f"cannot reach Telegram at {settings.telegram_api_url} ({type(e).__name__})",
                    "check TELEGRAM_API_URL and this machine's network (proxy, firewall)",
                )
            ]
        info = await bot.get_webhook_info(request_timeout=10)
    finally:
        await bot.session.close()
    problems: list[Problem] = []
    if settings.webhook_url:
        if info.url != settings.webhook_url:
            problems.append(
                Problem(
                    f"Telegram's webhook is {info.url or 'not set'!r},"
                    f" WEBHOOK_URL is {settings.webhook_url!r}",
                    "start the bot processes (they set the webhook) or fix WEBHOOK_URL",
                )
            )
    elif info.url:
        problems.append(
            Problem(
                f"a webhook is set ({info.url}) but WEBHOOK_URL is empty, so the bot will poll and remove it",
                "set WEBHOOK_URL to that address if the bot runs behind it",
            )
        )
    if info.last_error_message:
        problems.append(
            Problem(
                f"Telegram's last webhook delivery failed: {info.last_error_message}",
                "check the reverse proxy (deploy/nginx.conf), its certificate and WEBHOOK_SECRET",
            )
        )
    if info.pending_update_count > PENDING_LIMIT:
        problems.append(
            Problem(
                f"{info.pending_update_count} updates are waiting at Telegram",
                "start the bot processes (`systemctl status 'branchbot-bot@*'`)",
            )
        )
    return problems


async def run_checks(settings: Settings) -> list[Problem]:
    problems: list[Problem] = []
    for check in (_database, _redis, _telegram):
        problems += await check(settings)
    return problems


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check", help="check settings, database, Redis, Telegram and the webhook")
    p.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from config.settings import get_settings

    problems = asyncio.run(run_checks(get_settings()))
    for p in problems:
        print(p.line())
    print("all checks passed" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0
