"""Running everything in one process: the bot (polling or webhook), the delivery worker, the
scheduler and the admin web, on one event loop, until asked to stop.

`make run` uses it against Telegram; `make demo` uses it against the local emulator.
Beyond one machine, each part can run alone (`--only bot|worker|scheduler|admin`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import BotApp, create_app
from bot.parts import PARTS
from config.clock import Clock
from config.settings import Settings
from handlers.kit.commands import set_default_menus

log = logging.getLogger("branchbot.runtime")

__all__ = ["PARTS", "Running", "serve_forever", "start", "stop"]


@dataclass
class Running:
    """What `serve` started, for the demo and tests to look at."""

    app: BotApp
    admin_url: str | None = None
    bot_username: str | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def _retry(what: str, call: Callable[[], Awaitable[Any]], stop: asyncio.Event) -> Any:
    """Start-up calls to Telegram wait for it to answer rather than crash the process."""
    delay = 0.5
    while not stop.is_set():
        try:
            return await call()
        except (TelegramNetworkError, OSError, TelegramAPIError) as e:
            log.warning("%s failed (%s); retrying in %.0f s", what, type(e).__name__, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30)
    return None


async def start(
    settings: Settings,
    *,
    parts: tuple[str, ...] = PARTS,
    clock: Clock | None = None,
    engine: AsyncEngine | None = None,
    reuse_port: bool = False,
) -> Running:
    # The database driver answers from its own thread; a shorter GIL switch interval lets that
    # thread hand results back promptly while the loop is busy (it halves the time a SQLite
    # transaction stays open under load; see docs/benchmarks.md).
    sys.setswitchinterval(0.001)
    app = create_app(settings, clock=clock, engine=engine)
    run = Running(app)
    if "bot" in parts:
        me = await _retry("getMe", app.bot.get_me, run.stop)
        run.bot_username = me.username if me else None
        await _retry("setMyCommands", lambda: set_default_menus(app.bot), run.stop)
        if settings.webhook_url:
            run.tasks.append(
                asyncio.create_task(_serve_webhook(app, settings, run.stop, reuse_port), name="webhook")
            )
        else:
            run.tasks.append(asyncio.create_task(app.intake.run_polling(), name="polling"))
    # The worker polls the outbox; whoever enqueues in this process wakes it at once instead.
    wake: Callable[[], None] | None = None
    if "worker" in parts:
        from bot.delivery import DeliveryWorker

        worker = DeliveryWorker(app.bot, app.sessionmaker, app.clock, worker_id())
        wake = worker.wake
        run.tasks.append(asyncio.create_task(worker.run(run.stop), name="delivery"))
    app.dp["wake_outbox"] = wake
    if "scheduler" in parts:
        from bot.scheduler import Scheduler

        scheduler = Scheduler(app.sessionmaker, app.clock, worker_id(), app.pack, on_enqueued=wake)
        run.tasks.append(asyncio.create_task(scheduler.run(run.stop), name="scheduler"))
    if "admin" in parts:
        from admin.web import create_app as create_admin
        from admin.web import serve_admin

        admin = create_admin(app.sessionmaker, settings, clock=app.clock, outbox_notify=wake)
        run.admin_url = settings.admin_public_url or f"http://{settings.admin_host}:{settings.admin_port}"
        run.tasks.append(
            asyncio.create_task(
                serve_admin(admin, settings.admin_host, settings.admin_port, run.stop), name="admin"
            )
        )
    return run


async def stop(run: Running) -> None:
    run.stop.set()
    run.app.intake.stop()
    for t in run.tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(t, 20)
    await run.app.close()


async def _serve_webhook(
    app: BotApp, settings: Settings, stop_event: asyncio.Event, reuse_port: bool = False
) -> None:
    from aiohttp import web  # the server side: a polling process does without it

    assert settings.webhook_url and settings.webhook_secret  # Settings refuses one without the other
    path = urlsplit(settings.webhook_url).path or "/webhook"
    runner = web.AppRunner(app.intake.webhook_app(path, settings.webhook_secret))
    await runner.setup()
    # reuse_port: `run --processes N` starts N of these on one port; the kernel spreads the
    # connections over them.
    site = web.TCPSite(runner, settings.webhook_host, settings.webhook_port, reuse_port=reuse_port or None)
    await site.start()
    await _retry(
        "setWebhook",
        lambda: app.bot.set_webhook(
            settings.webhook_url or "",
            secret_token=settings.webhook_secret,
            allowed_updates=app.dp.resolve_used_update_types(),
            drop_pending_updates=False,
        ),
        stop_event,
    )
    log.info("webhook listening on %s:%s%s", settings.webhook_host, settings.webhook_port, path)
    try:
        await stop_event.wait()
    finally:
        await runner.cleanup()


YOUNG_GENERATION = 7_000  # objects allocated (net) before the collector looks at the youngest


def settle_gc() -> None:
    """Once started: what exists now (aiogram's and pydantic's models, SQLAlchemy's tables and
    compiled statements, the catalogs and the pack: most of the heap) lives as long as the
    process. Frozen, the cyclic collector stops walking it at every older-generation collection:
    in the throughput benchmark on PostgreSQL (300 members × 10 lines) the bot process's
    collector CPU went from 2.7 s to 1.6 s over the run, start-up included.

    An update leaves no cyclic garbage (`storage.direct` holds the session's transaction by weak
    reference; `tests/storage/test_direct.py`), so what the youngest generation's collections
    found was almost nothing: about 600 of them in that benchmark's run, each a walk of the live
    young objects, for about 100 objects in all. With the threshold at 7,000 instead of 700 there
    were 6, and the collector's CPU over the run fell from about 0.27 s to 0.01 s (about 80 µs per
    update), with the process's peak memory within 1 MB (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, older, oldest)


async def serve_forever(
    settings: Settings, *, parts: tuple[str, ...] = PARTS, reuse_port: bool = False
) -> None:
    """`branchbot run`: start, then wait for SIGINT/SIGTERM and stop cleanly."""
    run = await start(settings, parts=parts, reuse_port=reuse_port)
    settle_gc()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, run.stop.set)
    log.info(
        "branchbot running (%s)%s",
        ", ".join(parts),
        f"; admin web at {run.admin_url}" if run.admin_url else "",
    )
    failed = asyncio.ensure_future(asyncio.wait(run.tasks, return_when=asyncio.FIRST_EXCEPTION))
    await asyncio.wait([failed, asyncio.ensure_future(run.stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    for t in run.tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            log.error("%s stopped: %s", t.get_name(), type(t.exception()).__name__)
    await stop(run)
