"""aiogram's side of a `/log` update, in one process: routing, the reply's buttons and its body.

    python -m bench.dispatch [--updates 150] [--rounds 12] [--backend postgres|sqlite]

The real Dispatcher (`bot.app.make_dispatcher`, its middlewares and store) handles `/log 1 今天
社区志愿服务N` quick-form lines from 200 members; the Bot API call is cut after its body is
built, and the answer parsed from a canned reply (the message with its buttons). Two modes take
turns, A B B A ..., and each round's process CPU per update is reported:
- A: aiogram as it comes: every router visited, aiogram's form body, buttons validated by pydantic;
- B: as the bot runs: `bot/routing.py`, `bot/session.py`, `handlers/kit/keyboards.button`.
After a first round of each, not measured. The two modes get the same messages (same chat and
message ids), and the run refuses to report
when their Bot API calls differ (method, chat, text, buttons). The database part is the same in
both: read the difference, not the totals. Nothing is written to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.enums import ParseMode
from aiogram.methods.base import TelegramMethod
from aiogram.types import InlineKeyboardButton, Update
from aiohttp import FormData

import handlers.service_log as service_log
from bench.store import _create_pg, _drop_pg
from bench.throughput import PG_BASE, seed
from bot.app import KeepResponseModels, make_dispatcher
from bot.session import BotSession, _dumps
from config.clock import Clock
from config.settings import Settings
from content.pack import get_pack
from emulator.state import SimUser
from handlers.kit.keyboards import button
from storage.db import make_engine, make_sessionmaker

TOKEN = "123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
USERS = [SimUser(id=5_000_000_000 + i, first_name=f"党员{i}", language_code="zh") for i in range(200)]
DEFAULTS = DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True)


def pydantic_button(text: str, data: str) -> InlineKeyboardButton:
    """`keyboards.button` before it copied a model: pydantic validates each button."""
    if len(data.encode()) > 64:
        raise ValueError(f"callback data over 64 bytes: {data!r}")
    return InlineKeyboardButton(text=text, callback_data=data)


def cut_off(session: AiohttpSession, calls: list[tuple[str, dict[str, Any]]]) -> None:
    """The session builds the body as for Telegram, keeps what the call says, and answers with
    the message it would have sent."""

    async def make_request(bot: Bot, method: TelegramMethod[Any], timeout: int | None = None) -> Any:
        body = session.build_form_data(bot, method)
        if isinstance(body, FormData):
            payload = body()  # aiohttp's urlencoding, as when posted
            fields = {f[0]["name"]: f[2] for f in body._fields}
            assert payload is not None
        else:
            fields = orjson.loads(body._value)  # type: ignore[attr-defined]
        calls.append((method.__api_method__, fields))
        result: dict[str, Any] = {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": int(fields.get("chat_id", 1)), "type": "private"},
            "from": {"id": 123456, "is_bot": True, "first_name": "b"},
            "text": fields.get("text") or "x",
        }
        if "reply_markup" in fields:
            result["reply_markup"] = orjson.loads(fields["reply_markup"])
        answer = orjson.dumps({"ok": True, "result": result}).decode()
        return session.check_response(bot, method, 200, answer).result

    session.make_request = make_request  # type: ignore[method-assign]


class Modes:
    def __init__(self, dp: Dispatcher) -> None:
        self.dp = dp
        self.shortcuts = {r.name: vars(r)["propagate_event"] for r in dp.sub_routers}
        self.calls: dict[str, list[tuple[str, dict[str, Any]]]] = {"A": [], "B": []}
        a, b = AiohttpSession(json_loads=orjson.loads, json_dumps=_dumps), BotSession()
        self.bots = {
            "A": Bot(TOKEN, session=a, default=DEFAULTS),
            "B": Bot(TOKEN, session=b, default=DEFAULTS),
        }
        for mode, bot in self.bots.items():
            bot.session.middleware(KeepResponseModels())
            cut_off(bot.session, self.calls[mode])  # type: ignore[arg-type]

    def use(self, mode: str) -> Bot:
        for r in self.dp.sub_routers:
            if mode == "B":
                vars(r)["propagate_event"] = self.shortcuts[r.name]
            else:
                vars(r).pop("propagate_event", None)
        service_log.button = button if mode == "B" else pydantic_button  # type: ignore[attr-defined]
        return self.bots[mode]


def updates(bot: Bot, first_id: int, count: int) -> list[Update]:
    out = []
    for i in range(count):
        user = USERS[i % len(USERS)]
        out.append(
            Update.model_validate(
                {
                    "update_id": first_id + i,  # new for each update: the guard skips one seen
                    "message": {
                        "message_id": i + 1,  # the same in both modes: the same buttons
                        "date": 1_700_000_000,
                        "chat": {"id": user.id, "type": "private"},
                        "from": {
                            "id": user.id,
                            "is_bot": False,
                            "first_name": user.first_name,
                            "language_code": "zh",
                        },
                        "text": f"/log 1 今天 社区志愿服务{i}",
                    },
                },
                context={"bot": bot},
            )
        )
    return out


async def run(db_url: str, count: int, rounds: int) -> dict[str, list[float]]:
    await seed(db_url, USERS)
    settings = Settings(bot_token=TOKEN, database_url=db_url, telegram_api_url="http://127.0.0.1:1")
    engine = make_engine(db_url)
    kept = service_log.button  # put back afterwards: the handlers are module-level
    try:
        dp = make_dispatcher(settings, make_sessionmaker(engine), Clock(), get_pack(settings.content_pack))
        modes = Modes(dp)
        per_update: dict[str, list[float]] = {"A": [], "B": []}
        next_id = 1
        for mode in ("A", "B"):  # a first round of each, not measured: first calls build caches
            bot = modes.use(mode)
            for update in updates(bot, next_id, 20):
                await dp.feed_update(bot, update)
            next_id += 20
        for n in range(rounds):
            for mode in ("A", "B") if n % 2 == 0 else ("B", "A"):
                bot = modes.use(mode)
                batch = updates(bot, next_id, count)
                next_id += count
                before = len(modes.calls[mode])
                t0 = time.process_time()
                for update in batch:
                    await dp.feed_update(bot, update)
                per_update[mode].append((time.process_time() - t0) * 1000 / count)
                if len(modes.calls[mode]) - before != count:
                    raise SystemExit(
                        f"mode {mode}: {len(modes.calls[mode]) - before} answers to {count} lines"
                    )
        modes.use("B")
        if modes.calls["A"] != modes.calls["B"]:
            diff = next(
                i for i, (x, y) in enumerate(zip(modes.calls["A"], modes.calls["B"], strict=True)) if x != y
            )
            raise SystemExit(
                f"the modes' Bot API calls differ, first at {diff}: {modes.calls['A'][diff]} != "
                f"{modes.calls['B'][diff]}"
            )
        return per_update
    finally:
        service_log.button = kept  # type: ignore[attr-defined]
        await engine.dispose()


def report(per_update: dict[str, list[float]], say: Callable[[str], None] = print) -> None:
    a, b = per_update["A"], per_update["B"]
    gaps = [x - y for x, y in zip(a, b, strict=True)]
    say(
        "CPU ms per update, each round: "
        + "; ".join(f"A {x:.3f} B {y:.3f}" for x, y in zip(a, b, strict=True))
    )
    say(f"A (aiogram as it comes): best {min(a):.3f}  median {statistics.median(a):.3f}")
    say(f"B (as the bot runs):     best {min(b):.3f}  median {statistics.median(b):.3f}")
    say(f"A - B, same round: median {statistics.median(gaps):.3f} ms; best vs best {min(a) - min(b):.3f}")


async def main_async(args: argparse.Namespace) -> None:
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            report(await run(f"sqlite+aiosqlite:///{Path(tmp) / 'dispatch.db'}", args.updates, args.rounds))
        return
    url = await _create_pg(PG_BASE)
    try:
        report(await run(url, args.updates, args.rounds))
    finally:
        await _drop_pg(url, PG_BASE)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dispatch", description=__doc__.split("\n\n")[0])
    p.add_argument("--updates", type=int, default=150, help="updates per mode and round")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    asyncio.run(main_async(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
