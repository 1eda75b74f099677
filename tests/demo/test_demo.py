"""The offline demo end to end: migrate and seed a temporary SQLite file, start the emulator and the
runtime in-process (admin web on a free port), and script a terminal session, checking what is
printed and what lands in the database."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.cli import main
from config.clock import FrozenClock
from config.settings import get_settings
from demo.cli import Demo, _remove_database, free_port, show_banner, shown_database, start_demo, stop_demo
from demo.terminal_chat import TerminalChat
from storage import seed
from storage.db import make_engine, make_sessionmaker
from storage.models import EntryStatus, Person, ServiceEntry

# Mid-June: two months of seeded history all fall within the year that /my charts.
NOW = datetime(2026, 6, 15, 2, 0, tzinfo=UTC)
_CELL = re.compile(r"\[(\d+)\] (.+?)(?=\s{3}\[\d+\] |$)")


def sqlite_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder / 'demo.db'}"


def button_number(chat: TerminalChat, label: str) -> int:
    """The number shown for the latest printed button whose text contains `label`."""
    for line in reversed(chat.transcript):
        for n, text in _CELL.findall(line.strip()):
            if label in text:
                return int(n)
    raise AssertionError(f"no button {label!r} in:\n{chat.output}")


def item_number(chat: TerminalChat, since: int, description: str) -> int:
    """The number of the /pending list item whose description line mentions `description`."""
    lines = chat.transcript[since:]
    at = next(i for i, line in enumerate(lines) if description in line)
    m = re.match(r"\s*#(\d+) ", lines[at - 1])
    assert m, lines[at - 1]
    return int(m[1])


@contextlib.asynccontextmanager
async def running_demo(tmp_path: Path, **options: Any) -> AsyncIterator[Demo]:
    """A demo on a fresh SQLite file in `tmp_path` at NOW (`options` go to start_demo). As in
    `branchbot demo`, a watcher prints what the bot sends on its own (the outbox). On the way out
    the demo stops, and the emulator must have seen no call Telegram would refuse."""
    d = await start_demo(
        sqlite_url(tmp_path),
        out=io.StringIO(),
        files_dir=tmp_path / "files",
        clock=FrozenClock(NOW),
        color=False,
        prompt=False,
        **options,
    )
    watcher = asyncio.create_task(d.chat.watch())
    try:
        yield d
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await stop_demo(d)
    assert d.emulator.violations == []


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    async with running_demo(tmp_path, admin_port=free_port()) as d:
        yield d


async def test_banner_says_what_it_is_who_you_are_and_how_to_sign_in(demo: Demo) -> None:
    show_banner(demo, db="demo.db", log_path=None)
    out = demo.chat.output
    assert "离线演示" in out and "不会离开这台电脑" in out
    assert demo.seeded is not None and "已创建演示数据" in out
    if "admin" in demo.parts:
        assert demo.admin_error is None
        assert f"管理后台：http://127.0.0.1:{demo.settings.admin_port}" in out
        assert f"用户名 {seed.ADMIN_USERNAME}，密码 {seed.ADMIN_PASSWORD}" in out
    assert "/quit" in out and "Ctrl-D" in out
    assert "6. 李建华(李书记)  书记 · 西宁市餐饮行业协会党支部" in out
    assert out.rstrip().endswith("你现在的身份是 张伟（党员 · 西宁市餐饮行业协会党支部）。")


async def test_member_logs_service_and_the_secretary_approves_it_by_number(demo: Demo, tmp_path) -> None:
    chat = demo.chat
    await chat.handle_line("/help")
    assert "常用命令" in chat.output

    await chat.handle_line("/log 2 今天 社区义诊")
    await chat.handle_line(str(button_number(chat, "党员志愿服务行动")))
    sm = make_sessionmaker(demo.engine)
    async with sm() as s:
        entry = await s.scalar(select(ServiceEntry).where(ServiceEntry.description == "社区义诊"))
        zhang = await s.scalar(select(Person).where(Person.name == "张伟"))
    assert entry is not None and zhang is not None
    assert (entry.person_id, entry.minutes, entry.action, entry.status) == (
        zhang.id,
        120,
        "volunteer",
        EntryStatus.PENDING,
    )

    await chat.handle_line("/my")
    saved = sorted((tmp_path / "files").glob("*.png"))
    assert len(saved) == 1 and saved[0].read_bytes().startswith(b"\x89PNG")
    assert f"  [图片已保存：{saved[0]}]" in chat.transcript

    await chat.handle_line("/as 李书记")
    mark = len(chat.transcript)
    await chat.handle_line("/pending")
    n = item_number(chat, mark, "社区义诊")
    await chat.handle_line(str(button_number(chat, f"通过 #{n}")))
    async with sm() as s:
        entry = await s.get(ServiceEntry, entry.id)
    assert entry is not None and entry.status is EntryStatus.APPROVED, chat.output
    assert "（按下「✅ 通过" in chat.output

    # The member is told through the outbox; the chat says a message is waiting for them.
    if "worker" in demo.parts:
        await chat.wait_output("张伟 收到", 10)
        await chat.handle_line("/as 张伟")
        assert "（张伟 不在时收到的消息：）" in chat.transcript
        assert chat.transcript[-1] != "（张伟 不在时收到的消息：）"


async def test_demo_restarted_on_the_same_database_still_answers(tmp_path) -> None:
    """Regression: a second run's emulator numbered updates from 1000 again, and the bot skipped
    them all as already handled (the database remembered those ids from the first run)."""
    for run in range(2):
        d = await start_demo(
            sqlite_url(tmp_path),
            out=io.StringIO(),
            files_dir=tmp_path / "files",
            parts=("bot",),
            clock=FrozenClock(NOW),
            color=False,
            prompt=False,
        )
        try:
            assert (d.seeded is None) == (run == 1)
            await d.chat.handle_line("/help")
            assert "常用命令" in d.chat.output, d.chat.output
        finally:
            await stop_demo(d)


async def test_demo_seed_twice_seeds_once(tmp_path, monkeypatch, capsys) -> None:
    url = sqlite_url(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        # The command runs its own event loop (asyncio.run), so it gets a thread of its own.
        assert await asyncio.to_thread(main, ["demo", "seed"]) == 0
        assert await asyncio.to_thread(main, ["demo", "seed"]) == 0
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("已创建演示数据") and out[1].startswith("数据库里已经有数据")
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            assert await s.scalar(select(func.count()).select_from(Person)) == len(seed.PEOPLE)
    finally:
        await engine.dispose()


def test_fresh_removes_only_a_sqlite_file_and_the_banner_hides_passwords(tmp_path) -> None:
    db = tmp_path / "demo.db"
    for p in (db, tmp_path / "demo.db-wal", tmp_path / "keep.db"):
        p.write_bytes(b"x")
    _remove_database(sqlite_url(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.db"]
    server = "postgresql+asyncpg://demo:s3cret@127.0.0.1:5432/demo"
    with pytest.raises(SystemExit):
        _remove_database(server)
    assert "s3cret" not in shown_database(server) and "127.0.0.1:5432/demo" in shown_database(server)
    assert shown_database(sqlite_url(tmp_path)) == str(db)
