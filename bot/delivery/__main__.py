"""Running the delivery worker on its own: python -m bot.delivery"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable

from aiogram import Bot

from bot.delivery.worker import DeliveryWorker
from bot.gate import Gate, GateState, Limits, LocalState, install
from config.clock import Clock

log = logging.getLogger("branchbot.delivery")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bot.delivery", description="Send the outbox to Telegram.")
    p.add_argument("--db", help="database URL (default: DATABASE_URL)")
    p.add_argument("--api", help="Bot API base URL (default: TELEGRAM_API_URL)")
    p.add_argument("--token", help="bot token (default: BOT_TOKEN)")
    p.add_argument("--worker-id", default=f"{socket.gethostname()}:{os.getpid()}")
    p.add_argument("--rate", type=float, default=30.0, help="messages per second for this worker")
    p.add_argument("--lease", type=int, default=60, help="seconds a claim lasts")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument(
        "--redis",
        help="Redis URL for the gate's limits shared by every process of the bot "
        "(default: REDIS_URL; without it PostgreSQL's database, with SQLite this process alone)",
    )
    p.add_argument("--gate-prefix", default="branchbot:gate", help=argparse.SUPPRESS)  # tests' own keys
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace, on_ready: Callable[[], None] | None = None) -> None:
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    from config.settings import get_settings
    from storage.db import make_engine, make_sessionmaker

    settings = None if (args.db and args.api and args.token) else get_settings()
    db = args.db or (settings.database_url if settings else "")
    api = args.api or (settings.telegram_api_url if settings else "")
    token = args.token or (settings.require_token() if settings else "")
    redis = args.redis if args.redis is not None else (settings.redis_url if settings else None)
    engine = make_engine(db)
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api)))
    # Several workers (and the bot's other processes) share one budget: the gate's state lives
    # in Redis, else in PostgreSQL; with SQLite it stays in this process (SQLite: one process).
    state = gate_state(db, redis, bot.id, args.rate, args.gate_prefix, token.encode())
    install(bot, Gate(state))
    worker = DeliveryWorker(
        bot,
        make_sessionmaker(engine),
        Clock(),
        args.worker_id,
        global_rate=args.rate,
        lease_seconds=args.lease,
        batch=args.batch,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if on_ready is not None:
            on_ready()
        await worker.run(stop)
    finally:
        await bot.session.close()
        await state.close()
        await engine.dispose()


def gate_state(db: str, redis: str | None, bot_id: int, rate: float, prefix: str, secret: bytes) -> GateState:
    """As bot.app.make_gate_state, with the same key for chat ids (the token), so the bot's
    processes and its workers count a chat under one name."""
    limits = Limits(rate=rate)
    if redis:
        from bot.gate.shared import RedisState

        return RedisState(redis, bot_id, limits, prefix=prefix, secret=secret)
    if db.startswith("postgresql"):
        from bot.gate.dbstate import DbState

        return DbState(db, bot_id, limits, prefix=prefix, secret=secret)
    return LocalState(limits)


def main(argv: list[str] | None = None) -> None:
    from config.logs import setup_logging

    args = parse_args(argv)
    setup_logging(args.log_level)
    asyncio.run(serve(args, on_ready=lambda: print("ready", flush=True)))


if __name__ == "__main__":
    main()
