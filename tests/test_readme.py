"""The README's "Setting up a province" works as written: its shell block is read from README.md
(so the two cannot drift) and each line is run, in order, as a subprocess of the installed
`branchbot` command on a fresh, empty database (SQLite, or PostgreSQL with TEST_DATABASE_URL).

The one interactive line, `admin user add`, gets a pseudo-terminal as its standard input and
types the password when asked, as a person would.
"""

from __future__ import annotations

import asyncio
import os
import select
import shlex
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import select as sql_select

from storage.db import make_engine, make_sessionmaker
from storage.models import Invite, Membership, Org, Person, Role
from tests import dbutil

ROOT = Path(__file__).resolve().parents[1]
BRANCHBOT = Path(sys.executable).parent / "branchbot"
PASSWORD = "readme-admin-password"
TIMEOUT = 120.0


def readme_setup_commands() -> list[list[str]]:
    """The commands of the README's "Setting up a province" block, split as a shell would."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Setting up a province", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [c for c in commands if c]


@pytest.fixture
async def fresh_url(tmp_path: Path) -> AsyncIterator[str]:
    async with dbutil.empty_database(tmp_path) as url:
        yield url


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_", "ADMIN_"))}
    env.update(DATABASE_URL=url, BOT_USERNAME="qh_branch_bot", DEFAULT_LOCALE="zh", TIMEZONE="Asia/Shanghai")
    return env


def write_roster(path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for row in (["姓名", "角色", "备注"], ["赵七", "党员", "第一党小组"], ["钱八", "书记", ""]):
        ws.append(row)
    wb.save(path)


def run_typing_passwords(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run with a pseudo-terminal for standard input (and no controlling terminal, so the
    password prompt reads from it); answer each password prompt once it appears."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    assert proc.stderr is not None and proc.stdout is not None
    err = b""
    prompts = ["新密码：".encode(), "再输入一次：".encode()]
    deadline = time.monotonic() + TIMEOUT
    try:
        while prompts and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            err += chunk
            # The prompt is written after the terminal is set up (and its input flushed): type now.
            while prompts and prompts[0] in err:
                os.write(master, (PASSWORD + "\n").encode())
                err = err.replace(prompts.pop(0), b"", 1)
        out, rest = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out.decode(), (err + rest).decode()


def run_all(commands: list[list[str]], cwd: Path, env: dict[str, str]) -> list[str]:
    """Each command in turn; every one must succeed without a traceback. Their outputs."""
    outputs: list[str] = []
    for command in commands:
        argv = [str(BRANCHBOT), *command[1:]]
        if command[1:4] == ["admin", "user", "add"]:
            code, out, err = run_typing_passwords(argv, cwd, env)
        else:
            done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
            code, out, err = done.returncode, done.stdout, done.stderr
        assert code == 0, (command, out, err)
        assert "Traceback" not in err, (command, err)
        outputs.append(out)
    return outputs


async def test_the_readme_province_setup_runs_as_written(fresh_url: str, tmp_path: Path) -> None:
    commands = readme_setup_commands()
    assert [c[1:3] for c in commands][:2] == [["db", "upgrade"], ["org", "add"]]
    assert all(c[0] == ".venv/bin/branchbot" for c in commands)
    env = env_for(fresh_url)
    write_roster(tmp_path / "roster.xlsx")  # the file the README imports
    outputs = await asyncio.to_thread(run_all, commands, tmp_path, env)

    text = "\n".join(outputs)
    assert "数据库已迁移到 head" in text and "Database at" not in text
    assert "[3] 西宁市餐饮行业协会党支部（党支部，行业协会商会）" in text  # names, not "trade"
    assert "https://t.me/qh_branch_bot?start=" in text and "(Asia/Shanghai)" in text and "UTC" not in text
    assert "已创建管理员 admin" in text
    assert load_workbook(tmp_path / "links.xlsx").active.max_row == 3
    assert (tmp_path / "service-records-2-2026-01-01-2026-12-31.xlsx").stat().st_size > 0

    engine = make_engine(fresh_url)
    try:
        async with make_sessionmaker(engine)() as s:
            assert await s.scalar(sql_select(Org.name).where(Org.id == 3)) == "西宁市餐饮行业协会党支部"
            admin = await s.scalar(sql_select(Person).where(Person.username == "admin"))
            assert admin is not None and admin.password_hash
            roles = (
                await s.execute(
                    sql_select(Membership.org_id, Membership.role).where(Membership.person_id == admin.id)
                )
            ).all()
            assert roles == [(1, Role.ADMIN)]
            assert len(list(await s.scalars(sql_select(Invite)))) == 3  # the secretary's and two roster links
    finally:
        await engine.dispose()


def test_admin_user_add_with_no_terminal_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    env = env_for(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    done = subprocess.run(
        [str(BRANCHBOT), "admin", "user", "add", "admin"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
        start_new_session=True,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "--password-stdin" in done.stderr
