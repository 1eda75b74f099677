"""`branchbot run`: the bot, the delivery worker, the scheduler and the admin web in one process;
or, with `--processes N`, N bot processes sharing the webhook port (SO_REUSEPORT) under one
supervising process that restarts any that dies."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from bot.parts import PARTS
from config.logs import setup_logging
from config.settings import SettingsError, get_settings

RESTART_DELAY = 1.0  # seconds before a bot process that died is started again

log = logging.getLogger("branchbot.run")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the bot with the delivery worker, scheduler and admin web")
    p.add_argument(
        "--only",
        choices=PARTS,
        action="append",
        help="run only these parts (repeatable), e.g. several bot workers and one scheduler",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="with --only bot: N bot processes sharing the webhook port (needs WEBHOOK_URL and REDIS_URL)",
    )
    # Set by the supervisor for its bot processes: share the webhook port with the others.
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    settings.require_token()
    setup_logging(settings.log_level)
    parts = tuple(args.only) if args.only else PARTS
    if args.processes != 1:
        if args.processes < 1:
            raise SettingsError("--processes", "must be 1 or more")
        if parts != ("bot",):
            raise SettingsError("--processes", "several processes run only the bot: add --only bot")
        if not settings.webhook_url:
            raise SettingsError("WEBHOOK_URL", "required for --processes (polling is one process)")
        if not settings.redis_url:
            raise SettingsError("REDIS_URL", "required for --processes (the chats' order is kept there)")
        return asyncio.run(supervise(args.processes))

    from bot.runtime import serve_forever

    asyncio.run(serve_forever(settings, parts=parts, reuse_port=args.reuse_port))
    return 0


async def supervise(n: int) -> int:
    """Start n bot processes on the shared port, restart one that dies, stop them all on
    SIGTERM/SIGINT (each finishes the updates in hand)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    argv = [sys.executable, "-m", "bot.cli", "run", "--only", "bot", "--reuse-port"]

    async def one(slot: int) -> None:
        while not stop.is_set():
            proc = await asyncio.create_subprocess_exec(*argv, env=os.environ.copy())
            log.info("bot process %d started (pid %d)", slot, proc.pid)
            ended = asyncio.ensure_future(proc.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([ended, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not ended.done():
                proc.terminate()
                await ended
                return
            stopping.cancel()
            log.warning(
                "bot process %d (pid %d) ended with %s; starting it again", slot, proc.pid, proc.returncode
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RESTART_DELAY)

    await asyncio.gather(*(one(i) for i in range(n)))
    return 0
