"""Run the emulator on its own: `python -m emulator --port 8081`.

Prints its base URL as the first line of output (a parent process can read it), then serves
until interrupted. Drive it with the control API (control.py) or emulator.client."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from emulator.server import Emulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m emulator", description="A local Telegram Bot API emulator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    p.add_argument("--token", action="append", default=[], help="register a bot up front (repeatable)")
    p.add_argument(
        "--limits", action="store_true", help="enforce Telegram's rate limits (30/s, 1/s per chat)"
    )
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    emu = Emulator(host=args.host, port=args.port)
    for token in args.token:
        emu.add_bot(token)
    if args.limits:
        emu.limits.enable()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with emu:
        print(emu.base_url, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
