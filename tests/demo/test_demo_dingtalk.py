"""`branchbot demo --platform dingtalk`: the offline demo through the DingTalk bridge and the
stand-in. The terminal chat shows what DingTalk would show (robot messages, cards with numbered
buttons); typing and pressing go through the stand-in, the real `dingtalk-stream` client and the
bridge to the unchanged bot."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bridge.dingtalk.standin import Card
from demo.cli import Demo
from demo.dingtalk_chat import DingTalkChat
from storage import dingtalk
from storage.db import make_sessionmaker
from storage.models import EntryStatus, Person, ServiceEntry
from tests.demo.test_demo import button_number, running_demo


@pytest.fixture
async def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Demo]:
    # The demo may set DINGTALK_OPENAPI_ENDPOINT for the SDK: put it back afterwards.
    monkeypatch.setenv("DINGTALK_OPENAPI_ENDPOINT", os.environ.get("DINGTALK_OPENAPI_ENDPOINT", ""))
    async with running_demo(tmp_path, parts=("bot",), platform="dingtalk") as d:
        yield d
    assert d.dingtalk is not None and d.dingtalk.bridge.relay_errors == []


async def test_the_demo_talks_through_the_bridge_and_shows_cards(demo: Demo) -> None:
    chat = demo.chat
    assert isinstance(chat, DingTalkChat) and demo.dingtalk is not None
    standin = demo.dingtalk.standin
    me = demo.dingtalk.users[chat.current.telegram_id]

    await chat.handle_line("/help")
    assert "常用命令" in chat.output, chat.output
    assert any(s.user_id == me.user_id for s in standin.sent)  # it came as a DingTalk robot message

    await chat.handle_line("/log 2 今天 社区义诊")
    assert "  ┌" + "─" * 30 in chat.transcript  # a card, with numbered buttons
    await chat.handle_line(str(button_number(chat, "党员志愿服务行动")))
    assert "待书记审核" in chat.output, chat.output
    async with make_sessionmaker(demo.engine)() as s:
        entry = await s.scalar(select(ServiceEntry).where(ServiceEntry.description == "社区义诊"))
        person = await s.get(Person, entry.person_id) if entry else None
        kept = {p.dingtalk_id: p.user_id for p in await dingtalk.people(s)}
    assert entry is not None and entry.status is EntryStatus.PENDING and entry.minutes == 120
    assert person is not None and person.telegram_id == chat.current.telegram_id
    assert kept[me.user_id] == chat.current.telegram_id  # the store maps the DingTalk user to them


async def test_the_start_is_quiet_and_each_person_sees_their_command_card_when_switched_to(
    demo: Demo,
) -> None:
    chat = demo.chat
    assert isinstance(chat, DingTalkChat) and demo.dingtalk is not None
    standin, bridge = demo.dingtalk.standin, demo.dingtalk.bridge
    users = demo.dingtalk.users

    def menu_cards(user) -> list:
        return [i for i in standin.inbox(user) if isinstance(i, Card) and bridge.is_menu(i.out_track_id)]

    # Everyone got their command card (DingTalk has no command menu) ...
    await bridge.settled(15)  # the demo set everyone's commands before it started the chat
    assert all(menu_cards(u) for u in users.values())
    first = chat.current
    await chat.wait_output("/help")  # the current person's card is shown once
    # ... and no one else's is announced: no "收到 1 条新消息" for each of them.
    assert "新消息" not in chat.output, chat.output
    assert sum(1 for line in chat.transcript if line == "  ┌" + "─" * 30) == 1

    other = next(p for p in chat.people if p is not first)
    since = len(chat.transcript)
    await chat.handle_line(f"/as {other.name}")
    shown = "\n".join(chat.transcript[since:])
    assert f"（{other.name} 不在时收到的消息：）" in shown
    assert "/help" in shown and "  ┌" + "─" * 30 in shown, shown  # their own command card
    assert "新消息" not in chat.output
