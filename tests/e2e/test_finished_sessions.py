"""Regression: a finished update's database session stayed alive.

The update guard put the session in context variables (for the conversation storage, and in the
gate's hook that commits before a wait). A timer or task started during the update (aiohttp's
request timeouts) copies the context and keeps it until it fires or is cleaned away, so the
session, its connection wrapper and what it held lived on after the update. Now the variables
hold containers emptied when the update ends (`bot.fsm_storage.update_session`,
`bot.gate.UpdateHook`), and nothing else may keep a session either."""

from __future__ import annotations

import gc

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import EntryStatus, ServiceEntry


def _sessions() -> set[int]:
    return {id(o) for o in gc.get_objects() if isinstance(o, Session)}


async def test_no_session_outlives_its_update(chat, db, world) -> None:
    gc.collect()
    before = _sessions()
    reply = await chat.send(world.member_a, "/log 2 今天 社区义诊")
    done = await chat.press(world.member_a, reply, "党员志愿服务行动")
    assert done.alert == "已登记"
    [entry] = await db.all(select(ServiceEntry))
    listing = (await chat.send(world.secretary_a, "/pending")).sent[0]
    pressed = await chat.press(world.secretary_a, listing, f"✅ 通过 #{entry.id}")
    assert pressed.alert and "已通过" in pressed.alert
    [row] = await db.all(select(ServiceEntry))
    assert row.status is EntryStatus.APPROVED

    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, Session) and id(o) not in before]
    assert alive == [], [sorted(s.info) for s in alive]
