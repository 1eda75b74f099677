"""The systemd units in deploy/ start real `branchbot` commands: each ExecStart parses with the
command line's own parser, and the parts they start cover everything `branchbot run` runs."""

from __future__ import annotations

import asyncio
import configparser
import os
import random
import shlex
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from bench.throughput import seed
from bot.cli import build_parser
from bot.runtime import PARTS
from emulator import Emulator
from storage import outbox
from storage.db import make_engine, make_sessionmaker, utcnow
from tests import dbutil
from tests.dbutil import postgres_only
from tests.e2e.conftest import free_port
from tests.e2e.tcpproxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))


def exec_start(unit: Path) -> list[str]:
    argv = shlex.split(cfg_exec_start(unit).replace("%i", "8081"))
    assert Path(argv[0]).name == "branchbot", f"{unit.name}: ExecStart does not run branchbot"
    return argv[1:]


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_exec_start_is_a_branchbot_command(unit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(exec_start(unit))  # SystemExit on an unknown command/option
    assert callable(args.func)


def test_the_units_start_every_part_once() -> None:
    parts = [p for u in UNITS for p in build_parser().parse_args(exec_start(u)).only]
    assert sorted(parts) == sorted(PARTS)


def test_a_wrong_exec_start_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nExecStart=/opt/branchbot/.venv/bin/branchbot run --only robot\n")
    with pytest.raises(SystemExit):
        build_parser().parse_args(exec_start(bad))


# --- the layout the units describe, run on this machine --------------------------------------


def unit_environment(unit: Path, instance: str) -> dict[str, str]:
    """The unit's own `Environment=` lines (systemd allows several), `%i` filled in."""
    env: dict[str, str] = {}
    for raw in unit.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("Environment="):
            for item in shlex.split(line.removeprefix("Environment=").replace("%i", instance)):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def env_file() -> dict[str, str]:
    env: dict[str, str] = {}
    for raw in (DEPLOY / "branchbot.env.example").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


@postgres_only("the several-process layout runs on PostgreSQL with Redis")
async def test_the_units_command_lines_run_the_layout_on_postgres_and_redis(
    db_url, clean_db, tmp_path
) -> None:
    """Every unit's ExecStart (the bot's for two ports) with the example environment file, its
    machine-specific values pointed at this test (database, Redis, the emulator as Telegram, and a
    round-robin proxy standing in for nginx's upstream): each process comes up, the bot answers
    through both bot processes, the worker delivers the outbox, the admin web serves, `branchbot
    check` finds nothing wrong, and SIGTERM stops each cleanly."""
    token = f"{random.randrange(10**8, 10**9)}:deploy-units-AAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    async with Emulator(webhook_retry_base=0.05, webhook_retry_max=0.5) as emu:
        bot = emu.add_bot(token, username="deploy_test_bot")
        users = [emu.add_user(f"党员{i:02d}", language_code="zh") for i in range(20)]
        await seed(db_url, users)
        bot_ports = [free_port(), free_port()]
        proxy = await TcpProxy("127.0.0.1", bot_ports[0], more=(("127.0.0.1", bot_ports[1]),)).start()
        admin_port = free_port()
        path = urlsplit(env_file()["WEBHOOK_URL"]).path
        common = {
            **os.environ,
            **env_file(),
            "BOT_TOKEN": token,
            "BOT_USERNAME": "deploy_test_bot",
            "TELEGRAM_API_URL": emu.base_url,
            "DATABASE_URL": db_url,
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "WEBHOOK_URL": f"http://127.0.0.1:{proxy.port}{path}",
            "ADMIN_PORT": str(admin_port),
            "ADMIN_PUBLIC_URL": f"http://127.0.0.1:{admin_port}",
            "EVIDENCE_DIR": str(tmp_path / "evidence"),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        starts: list[tuple[str, list[str], dict[str, str]]] = []
        for unit in UNITS:
            instances = [str(p) for p in bot_ports] if unit.name.endswith("@.service") else [""]
            for instance in instances:
                args = shlex.split(cfg_exec_start(unit).replace("%i", instance))[1:]
                starts.append(
                    (f"{unit.name}{instance}", args, {**common, **unit_environment(unit, instance)})
                )
        procs: dict[str, asyncio.subprocess.Process] = {}
        log = tmp_path / "units.log"
        try:
            with log.open("ab") as out:
                for name, args, env in starts:
                    procs[name] = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "bot.cli", *args, cwd=ROOT, env=env, stdout=out, stderr=out
                    )
            await emu.wait_for(lambda: emu.stats.requests["setWebhook"] >= 2, 180)
            # The bot answers, through both bot processes behind the proxy.
            for u in users:
                await emu.send_text(u, "/log 1 今天 部署测试", bot=bot.id)
            for u in users:
                await emu.next_message(u, bot=bot.id, timeout=60)
            assert all(n > 0 for n in proxy.connections.values()), proxy.connections
            # The worker delivers what the outbox holds.
            engine = make_engine(db_url)
            try:
                async with make_sessionmaker(engine)() as s:
                    await outbox.enqueue(
                        s,
                        kind="test",
                        chat_id=users[0].id,
                        person_id=None,
                        dedupe_key="deploy-units-test",
                        payload={"method": "sendMessage", "text": "来自发送进程"},
                        not_before=utcnow(),
                    )
                    await s.commit()
            finally:
                await engine.dispose()
            await emu.wait_for(
                lambda: any(m.text == "来自发送进程" for m in emu.chat(users[0], bot=bot.id)), 60
            )
            # The admin web serves its login page.
            async with aiohttp.ClientSession() as http, asyncio.timeout(120):
                while True:
                    try:
                        async with http.get(f"http://127.0.0.1:{admin_port}/login") as r:
                            assert r.status == 200
                            break
                    except aiohttp.ClientConnectorError:
                        await asyncio.sleep(0.2)  # the admin process is still starting
            check = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot.cli",
                "check",
                cwd=ROOT,
                env=common,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            said, _ = await asyncio.wait_for(check.communicate(), 120)
            assert check.returncode == 0, said.decode()
            assert all(p.returncode is None for p in procs.values()), _tail(log)
        finally:
            for p in procs.values():
                if p.returncode is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs.values():
                try:
                    await asyncio.wait_for(p.wait(), 60)
                except TimeoutError:
                    p.kill()
                    await p.wait()
            await proxy.stop()
            await dbutil.forget_bot_in_redis("redis://127.0.0.1:6379/0", bot.id)
        assert {name: p.returncode for name, p in procs.items()} == dict.fromkeys(procs, 0), _tail(log)
        assert not emu.violations, emu.violations[:3]


def cfg_exec_start(unit: Path) -> str:
    cfg = configparser.ConfigParser(interpolation=None, strict=False)
    cfg.optionxform = str  # type: ignore[assignment,method-assign]
    cfg.read(unit, encoding="utf-8")
    return cfg["Service"]["ExecStart"]


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else ""
