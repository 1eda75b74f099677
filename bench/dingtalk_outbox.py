"""What keeping the bot's changes costs the bot (bridge/dingtalk/outgoing.py): the time a
sendMessage through the DingTalk bridge takes until the bot has its "ok", with the change kept
in the store before the answer ("kept") and without ("memory": the row write replaced by
nothing, as before issue 12's outbox). The two alternate in rounds against one bridge and one
DingTalk stand-in; the best round's median and p95 of each are reported.

    python -m bench.dingtalk_outbox [--sends 200] [--rounds 5]

SQLite by default (the outbox in its own file next to a temporary database); PostgreSQL with
TEST_DATABASE_URL (a database made and dropped for the run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _run(sends: int, rounds: int) -> None:
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    from bridge.dingtalk.openapi import DingTalkApi
    from bridge.dingtalk.relay import DingTalkBridge, stable_id
    from bridge.dingtalk.standin import DingTalkStandIn
    from storage import dingtalk as store
    from storage.db import make_engine, make_sessionmaker
    from storage.migrate import upgrade
    from tests import dbutil

    base = dbutil.pg_requested()
    tmp = tempfile.TemporaryDirectory()
    url = await dbutil.create_pg_database(base) if base else dbutil.sqlite_url(Path(tmp.name))
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url)
    keep = store.keep_outgoing

    async def not_kept(_s: Any, changes: Sequence[Any], _now: Any) -> list[None]:
        return [None] * len(changes)

    token = "123456:BENCH"
    port = int(os.environ["DINGTALK_OPENAPI_ENDPOINT"].rsplit(":", 1)[1])
    try:
        async with DingTalkStandIn(port=port) as standin:
            api = DingTalkApi(
                standin.app_key, standin.app_secret, endpoint=standin.endpoint, oapi=standin.endpoint
            )
            async with DingTalkBridge(api, make_sessionmaker(engine), bot_token=token) as bridge:
                user = standin.add_user("张三")
                await standin.send_text(user, "hi")
                await standin.wait_for(lambda: not standin.pending())
                bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(bridge.base_url)))
                results: dict[str, list[float]] = {
                    m: [] for m in ("kept", "kept p95", "memory", "memory p95")
                }
                try:
                    for n in range(rounds):
                        for mode in ("kept", "memory"):
                            store.keep_outgoing = keep if mode == "kept" else not_kept  # type: ignore[assignment]
                            took = []
                            for i in range(sends):
                                t = time.perf_counter()
                                await bot.send_message(stable_id(user.user_id), f"{mode} {n}.{i}")
                                took.append(time.perf_counter() - t)
                            await bridge.settled(60)
                            took.sort()
                            results[mode].append(statistics.median(took))
                            results[mode + " p95"].append(took[int(len(took) * 0.95)])
                finally:
                    store.keep_outgoing = keep  # type: ignore[assignment]
                    await bot.session.close()
                if bridge.relay_errors:
                    raise SystemExit(f"the bridge reported errors: {bridge.relay_errors[:3]}")
                delivered = len([s for s in standin.sent if s.user_id == user.user_id])
                if delivered != 2 * rounds * sends:
                    raise SystemExit(f"delivered {delivered}, sent {2 * rounds * sends}: not reporting")
    finally:
        await engine.dispose()
        if base:
            await dbutil.drop_pg_database(url, base)
        tmp.cleanup()
    backend = "PostgreSQL" if base else "SQLite"
    print(f"{backend}, {sends} sendMessage per round, {rounds} rounds, best round (ms):")
    for mode in ("kept", "memory"):
        print(
            f"  {mode:7} median {min(results[mode]) * 1000:.2f}  p95 {min(results[mode + ' p95']) * 1000:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # The SDK reads the endpoint when it is imported: set before anything imports it.
    os.environ.setdefault("DINGTALK_OPENAPI_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    asyncio.run(_run(args.sends, args.rounds))


if __name__ == "__main__":
    main()
