"""Logs carry ids only, at every level: a chat flow full of personal data, logged at DEBUG
(SQLAlchemy's statements included), leaves no name and no text in any log record."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    from config.logs import setup_logging

    caplog.set_level(logging.DEBUG)
    saved = {n: logging.getLogger(n).level for n in ("aiosqlite", "aiogram.event")}
    setup_logging("DEBUG")  # as LOG_LEVEL=DEBUG (aiosqlite would log every call's arguments)
    # And SQLAlchemy's statements and rows, which someone debugging might well turn on: the engine
    # must hide the parameters even then.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    yield caplog
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


async def test_a_debug_log_of_a_chat_flow_holds_no_name_and_no_text(chat, world, debug_logs) -> None:
    secret_entry = "探望独居老人王秀英"
    secret_notice = "周五体检结果请私下联系"
    reply = await chat.send(world.member_a, f"/log 2 今天 {secret_entry}")
    done = await chat.press(world.member_a, reply, "党员志愿服务行动")
    assert done.alert == "已登记"
    await chat.send(world.secretary_a, "/notify")
    preview = await chat.send(world.secretary_a, secret_notice)
    await chat.press(world.secretary_a, preview.sent[-1], "📤 立即发送")
    records = debug_logs.records
    statements = [r for r in records if r.name.startswith("sqlalchemy.engine")]
    assert len(statements) > 20  # the statements were logged: the check below has something to read
    text = "\n".join(f"{r.getMessage()} {r.args!r}" for r in records)
    for private in (secret_entry, secret_notice, world.member_a.name, world.secretary_a.name):
        assert private not in text, private
    print(f"\nDEBUG log of the flow: {len(records)} records, {len(statements)} from SQLAlchemy")
