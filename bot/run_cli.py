"""`branchbot run`: the bot, the delivery worker, the scheduler and the admin web in one process."""

from __future__ import annotations

import argparse
import asyncio

from bot.runtime import PARTS, serve_forever
from config.logs import setup_logging
from config.settings import get_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the bot with the delivery worker, scheduler and admin web")
    p.add_argument(
        "--only",
        choices=PARTS,
        action="append",
        help="run only these parts (repeatable), e.g. several bot workers and one scheduler",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    settings.require_token()
    setup_logging(settings.log_level)
    parts = tuple(args.only) if args.only else PARTS
    asyncio.run(serve_forever(settings, parts=parts))
    return 0
