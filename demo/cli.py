"""`branchbot demo`: the offline demo. `branchbot demo seed`: migrate and seed only.

One process: a local Telegram emulator, the bot (long polling against it), the delivery worker,
the scheduler and the admin web (those of them that exist), over a SQLite file
(data/demo.db; DATABASE_URL in the environment overrides it), and a chat in the terminal where
the newcomer talks to the bot as one of the seeded people.

The demo's settings are built explicitly (a fixed demo token, the emulator's address) and do not
read `.env`, so a production `.env` beside the checkout can never point the demo at real data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import secrets
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.runtime import PARTS, Running
from bot.runtime import start as start_runtime
from bot.runtime import stop as stop_runtime
from config.clock import Clock
from config.settings import Settings, get_settings
from content.i18n import LOCALES, Texts, texts
from content.pack import get_pack
from handlers.kit.commands import set_person_menu
from storage import seed
from storage.access import load_actor
from storage.db import make_engine, make_sessionmaker
from storage.models import ProcessedUpdate

# The emulator and the terminal chat are imported when the demo starts: every `branchbot`
# command registers the demo's subcommands, and a bot process should not carry them.
if TYPE_CHECKING:
    from bridge.dingtalk.relay import DingTalkBridge
    from bridge.dingtalk.standin import DingTalkStandIn, DtUser
    from demo.terminal_chat import TerminalChat
    from emulator import Emulator

DEMO_TOKEN = "770000001:branchbot-demo-token-local-emulator-only"
DEMO_BOT_USERNAME = "branchbot_demo_bot"
DEMO_BOT_NAME = "支部服务助手"
DEMO_DB_URL = "sqlite+aiosqlite:///./data/demo.db"
DEMO_LOG = Path("data/demo.log")
DEMO_FILES = Path("demo-files")
ADMIN_HOST = "127.0.0.1"
ADMIN_PORT = 8080
REPLY_TIMEOUT = 15.0  # how long a typed line waits for the bot before the prompt comes back
ADMIN_START_TIMEOUT = 10.0
# Which module each optional part needs: a part being built elsewhere is left out until it lands.
PART_MODULES = {"worker": "bot.delivery", "scheduler": "bot.scheduler", "admin": "admin.web"}

log = logging.getLogger("branchbot.demo")


def database_url() -> str:
    """The demo's database: DATABASE_URL from the environment (not `.env`), else data/demo.db."""
    return os.environ.get("DATABASE_URL", "").strip() or DEMO_DB_URL


def available_parts() -> tuple[str, ...]:
    return tuple(p for p in PARTS if p not in PART_MODULES or importlib.util.find_spec(PART_MODULES[p]))


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = ADMIN_HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def demo_settings(*, database_url: str, telegram_api_url: str, admin_port: int) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        bot_token=DEMO_TOKEN,
        bot_username=DEMO_BOT_USERNAME,
        telegram_api_url=telegram_api_url,
        database_url=database_url,
        redis_url=None,
        webhook_url=None,
        webhook_secret=None,
        admin_host=ADMIN_HOST,
        admin_port=admin_port,
        admin_public_url=None,
        # A fresh key per run: demo sign-ins end with the process, and no key sits in the source.
        admin_secret=secrets.token_urlsafe(32),
        content_pack=seed.PACK_ID,
    )


async def migrate_and_seed(engine: AsyncEngine, url: str, clock: Clock) -> seed.Seeded | None:
    """Bring the schema up to date (a no-op when it is) and seed an empty database."""
    # Alembic (about 9 MB) is imported here, not with the module: every `branchbot --help`
    # imports this module, and a process that never migrates should not carry it.
    from storage.migrate import upgrade

    await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop: not in this thread
    async with make_sessionmaker(engine)() as s:
        made = await seed.seed_demo(s, now=clock.now(), pack=get_pack(seed.PACK_ID))
        await s.commit()
    return made


@dataclass
class Demo:
    emulator: Emulator  # the Bot API the bot talks to (with DingTalk: the bridge's front)
    run: Running
    engine: AsyncEngine
    chat: TerminalChat
    settings: Settings
    parts: tuple[str, ...]
    seeded: seed.Seeded | None
    admin_port_wanted: int
    admin_error: str | None = None
    platform: str = "telegram"
    dingtalk: DingTalkSide | None = None


@dataclass
class DingTalkSide:
    """`--platform dingtalk`: the DingTalk stand-in and the bridge between it and the bot."""

    standin: DingTalkStandIn
    bridge: DingTalkBridge
    users: dict[int, DtUser]  # a demo person's telegram_id (the bridge's id) -> DingTalk user

    async def stop(self) -> None:
        try:
            await self.bridge.stop()
        finally:
            await self.standin.stop()


def _standin_port() -> int:
    """The port the DingTalk stand-in listens on. The SDK reads its endpoint once, when it is
    imported: if it is loaded already, the stand-in goes where it points; else there is a free
    port and the variable is set before the bridge imports the SDK."""
    loaded = sys.modules.get("dingtalk_stream.utils")
    if loaded is not None:
        where = urlsplit(loaded.DINGTALK_OPENAPI_ENDPOINT)
        if where.hostname != ADMIN_HOST or where.port is None:
            raise RuntimeError(f"the DingTalk SDK was loaded for {where.geturl()}, not a local stand-in")
        return where.port
    port = free_port()
    os.environ["DINGTALK_OPENAPI_ENDPOINT"] = f"http://{ADMIN_HOST}:{port}"
    return port


async def start_dingtalk(engine: AsyncEngine, people: list[seed.DemoPerson], clock: Clock) -> DingTalkSide:
    """The stand-in with a DingTalk user for each demo person, and the bridge, which knows them
    (kept in the store with the id the bot knows the person by) before it starts."""
    from bridge.dingtalk.standin import DingTalkStandIn

    standin = await DingTalkStandIn(port=_standin_port()).start()
    try:
        from bridge.dingtalk.openapi import DingTalkApi
        from bridge.dingtalk.relay import DingTalkBridge
        from storage import dingtalk

        users: dict[int, DtUser] = {}
        async with make_sessionmaker(engine)() as s:
            for p in people:
                user = standin.add_user(p.name, user_id=f"demo{p.person_id:04d}")
                await dingtalk.remember(
                    s, user.user_id, p.name, p.locale or "zh", clock.now(), lambda _d, _n, i=p.telegram_id: i
                )
                users[p.telegram_id] = user
            await s.commit()
        api = DingTalkApi(
            standin.app_key, standin.app_secret, endpoint=standin.endpoint, oapi=standin.endpoint
        )
        bridge = DingTalkBridge(
            api,
            make_sessionmaker(engine),
            bot_token=DEMO_TOKEN,
            bot_username=DEMO_BOT_USERNAME,
            bot_name=DEMO_BOT_NAME,
        )
        await bridge.start()
    except BaseException:
        await standin.stop()
        raise
    try:
        await standin.wait_for(lambda: standin.connected, timeout=10)
    except BaseException:
        await bridge.stop()
        await standin.stop()
        raise
    return DingTalkSide(standin, bridge, users)


async def start_demo(
    url: str,
    *,
    out: TextIO,
    files_dir: Path,
    admin_port: int = ADMIN_PORT,
    locale: str = "zh",
    clock: Clock | None = None,
    parts: tuple[str, ...] | None = None,
    color: bool | None = None,
    prompt: bool | None = None,
    platform: str = "telegram",
) -> Demo:
    """Migrate, seed if empty, start the emulator (with `platform="dingtalk"`: the DingTalk
    stand-in and the bridge) and the runtime, and set up the terminal chat."""
    clock = clock or Clock()
    parts = parts or available_parts()
    engine = make_engine(url)
    from demo.terminal_chat import TerminalChat
    from emulator import Emulator

    emulator: Emulator | None = None
    side: DingTalkSide | None = None
    try:
        seeded = await migrate_and_seed(engine, url, clock)
        async with make_sessionmaker(engine)() as s:
            people = await seed.demo_people(s)
            actors = {p.person_id: await load_actor(s, p.person_id) for p in people}
        if platform == "dingtalk":
            side = await start_dingtalk(engine, list(people), clock)
            emulator = side.bridge.front
            sim_bot = side.bridge.bot
        else:
            emulator = await Emulator().start()
            sim_bot = emulator.add_bot(DEMO_TOKEN, username=DEMO_BOT_USERNAME, first_name=DEMO_BOT_NAME)
        # A fresh emulator numbers updates from 1000 again, but the database remembers the ids it
        # handled last time and would skip them as redeliveries: carry on above them, as Telegram
        # keeps counting up.
        sim_bot.next_update_id = max(sim_bot.next_update_id, await _last_update_id(engine, sim_bot.id) + 1)
        port = admin_port
        if "admin" in parts and not port_is_free(ADMIN_HOST, port):
            port = free_port()
        settings = demo_settings(database_url=url, telegram_api_url=emulator.base_url, admin_port=port)
        run = await start_runtime(settings, parts=parts, clock=clock, engine=engine)
    except BaseException:
        if side is not None:
            await side.stop()
        elif emulator is not None:
            await emulator.stop()
        await engine.dispose()
        raise
    intake = run.app.intake
    chat: TerminalChat
    if side is not None:
        from demo.dingtalk_chat import DingTalkChat

        chat = DingTalkChat(
            side.standin,
            side.bridge,
            people,
            side.users,
            out=out,
            files_dir=files_dir,
            locale=locale,
            handled=lambda update_id: intake.wait_handled(update_id, REPLY_TIMEOUT),
            color=color,
            prompt=prompt,
            bot_name=DEMO_BOT_NAME,
        )
    else:
        chat = TerminalChat(
            emulator,
            run.app.bot.id,
            people,
            out=out,
            files_dir=files_dir,
            locale=locale,
            handled=lambda update_id: intake.wait_handled(update_id, REPLY_TIMEOUT),
            color=color,
            prompt=prompt,
            bot_name=DEMO_BOT_NAME,
        )
    demo = Demo(
        emulator, run, engine, chat, settings, parts, seeded, admin_port, platform=platform, dingtalk=side
    )
    for p in people:
        # What joining in the chat would have done: whoever's commands differ gets their own menu.
        await set_person_menu(run.app.bot, p.telegram_id, actors[p.person_id], p.locale or "zh")
    if "admin" in parts:
        demo.admin_error = await _admin_ready(settings, run)
    return demo


async def _last_update_id(engine: AsyncEngine, bot_id: int) -> int:
    async with make_sessionmaker(engine)() as s:
        last = await s.scalar(
            select(func.max(ProcessedUpdate.update_id)).where(ProcessedUpdate.bot_id == bot_id)
        )
    return int(last or 0)


async def _admin_ready(settings: Settings, run: Running) -> str | None:
    """None once the admin web accepts connections; else why it did not start."""
    task = next((t for t in run.tasks if t.get_name() == "admin"), None)
    if task is None:
        return "not started"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ADMIN_START_TIMEOUT
    while loop.time() < deadline:
        if task.done():
            error = None if task.cancelled() else task.exception()
            return type(error).__name__ if error else "stopped"
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection(settings.admin_host, settings.admin_port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return None
        # Not listening yet: wait a moment on the task itself (it ends only if the server failed).
        await asyncio.wait([task], timeout=0.05)
    return "timeout"


async def stop_demo(demo: Demo) -> None:
    try:
        await stop_runtime(demo.run)
    finally:
        if demo.dingtalk is not None:
            await demo.dingtalk.stop()
        else:
            await demo.emulator.stop()
        await demo.engine.dispose()


# ---- what the terminal shows first ---------------------------------------------------------------


def banner(demo: Demo, _: Texts, *, db: str, log_path: Path | None) -> list[str]:
    rule = "=" * 72
    lines = [rule, _.plain("demo.title"), rule, _.plain("demo.what"), ""]
    sep = _.plain("demo.list_separator")
    lines.append(_.plain("demo.running", parts=sep.join(_.plain(f"demo.part.{p}") for p in demo.parts)))
    lines.append(_.plain("demo.database", db=db, log=str(log_path) if log_path else "-"))
    if demo.seeded is not None:
        lines.append(_.plain("demo.seeded", people=len(demo.seeded.people)))
    else:
        lines.append(_.plain("demo.seed_kept"))
    if "admin" in demo.parts:
        port = demo.settings.admin_port
        if port != demo.admin_port_wanted:
            lines.append(_.plain("demo.admin_port_taken", wanted=demo.admin_port_wanted, port=port))
        if demo.admin_error is None:
            lines.append(
                _.plain(
                    "demo.admin_web",
                    url=demo.run.admin_url or f"http://{ADMIN_HOST}:{port}",
                    admin_user=seed.ADMIN_USERNAME,
                    admin_password=seed.ADMIN_PASSWORD,
                    staff_user=seed.STAFF_USERNAME,
                    staff_password=seed.STAFF_PASSWORD,
                )
            )
        else:
            lines.append(_.plain("demo.admin_off", reason=demo.admin_error))
    lines += ["", _.plain("demo.commands", files=str(demo.chat.files_dir)), ""]
    return lines


def show_banner(demo: Demo, *, db: str, log_path: Path | None) -> None:
    chat = demo.chat
    for line in banner(demo, chat._, db=db, log_path=log_path):
        chat.write(line)
    chat.show_people()
    chat.write("")
    chat.show_who()


def _watch_parts(demo: Demo, log_path: Path | None) -> None:
    """Say so in the chat if a part of the runtime stops while the demo runs."""
    names = {"polling": "bot", "delivery": "worker", "scheduler": "scheduler", "admin": "admin"}

    def done(task: asyncio.Task[object]) -> None:
        if task.cancelled() or demo.run.stop.is_set():
            return
        error = task.exception()
        part = demo.chat._.plain(f"demo.part.{names.get(task.get_name(), 'bot')}")
        demo.chat.note(
            demo.chat._.plain(
                "demo.part_stopped",
                part=part,
                error=type(error).__name__ if error else "-",
                log=str(log_path) if log_path else "-",
            )
        )

    for t in demo.run.tasks:
        t.add_done_callback(done)


# ---- the command line ----------------------------------------------------------------------------


def _log_to_file(path: Path) -> None:
    """The bot's log goes to a file: the terminal belongs to the chat."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)


def _sqlite_file(url: str) -> Path | None:
    prefix = "sqlite+aiosqlite:///"
    rest = url[len(prefix) :].split("?")[0] if url.startswith(prefix) else ""
    return Path(rest) if rest and rest != ":memory:" else None


def shown_database(url: str) -> str:
    """The database as the banner names it: a file's path, or a server URL without its password."""
    path = _sqlite_file(url)
    return str(path) if path is not None else make_url(url).render_as_string(hide_password=True)


def _remove_database(url: str) -> None:
    """--fresh: delete the demo's SQLite file (never a server database)."""
    path = _sqlite_file(url)
    if path is None:
        raise SystemExit("branchbot demo --fresh: only a SQLite demo database can be removed")
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)


async def _demo(args: argparse.Namespace) -> int:
    url = database_url()
    if args.fresh:
        await asyncio.to_thread(_remove_database, url)
    log_path = DEMO_LOG
    _log_to_file(log_path)
    locale = args.lang or get_settings().default_locale
    demo = await start_demo(
        url,
        out=sys.stdout,
        files_dir=Path(args.files),
        admin_port=args.admin_port,
        locale=locale,
        platform=args.platform,
    )
    leave = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, leave.set)
    try:
        show_banner(demo, db=shown_database(url), log_path=log_path)
        _watch_parts(demo, log_path)
        from demo.terminal_chat import stdin_lines

        chat_task = asyncio.create_task(demo.chat.run(stdin_lines()), name="terminal-chat")
        leave_task = asyncio.create_task(leave.wait())
        await asyncio.wait([chat_task, leave_task], return_when=asyncio.FIRST_COMPLETED)
        for t in (chat_task, leave_task):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
        await stop_demo(demo)
    demo.chat.write(demo.chat._.plain("demo.bye", db=shown_database(url)))
    return 0


async def _seed(args: argparse.Namespace) -> int:
    url = database_url()
    _ = texts(get_settings().default_locale)
    engine = make_engine(url)
    try:
        made = await migrate_and_seed(engine, url, Clock())
    finally:
        await engine.dispose()
    print(_.plain("demo.seeded", people=len(made.people)) if made else _.plain("demo.seed_kept"))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="the offline demo: emulator, bot, scheduler and admin web in one process, chat in the terminal",
    )
    p.add_argument("--lang", choices=LOCALES, default=None, help="language of the demo's own texts")
    p.add_argument("--admin-port", type=int, default=ADMIN_PORT, help="admin web port (a free one if taken)")
    p.add_argument("--files", default=str(DEMO_FILES), help="folder for pictures and files the bot sends")
    p.add_argument("--fresh", action="store_true", help="delete the demo database first and seed it anew")
    p.add_argument(
        "--platform",
        choices=("telegram", "dingtalk"),
        default="telegram",
        help="dingtalk: through the DingTalk bridge and a local DingTalk stand-in (cards in the chat)",
    )
    p.set_defaults(func=_demo)
    dsub = p.add_subparsers(dest="demo_cmd")
    s = dsub.add_parser("seed", help="migrate the demo database and seed it if it is empty")
    s.set_defaults(func=_seed)
