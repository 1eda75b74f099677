"""A wizard survives a restart of the bot: its state is in the database, not in the process."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from storage.models import ConversationState, ServiceEntry
from tests.e2e.harness import Chat


async def test_log_wizard_continues_after_a_restart_and_records_once(
    chat, db, world, emulator, bots, bot_app
) -> None:
    m = world.member_a
    reply = await chat.send(m, "/log")
    reply = await chat.press(m, reply, "党员志愿服务行动")
    reply = await chat.press(m, reply, "昨天")
    assert "第 3/6 步" in reply.text
    assert await db.count(ConversationState) == 1

    await bots.stop(bot_app)
    again = Chat(emulator, await bots.start())

    reply = await again.press(m, reply, "3 小时")  # a button of a message the old process sent
    assert "第 4/6 步" in reply.text
    place_prompt = reply
    reply = await again.send(m, "西宁市图书馆")
    reply = await again.send(m, "为读者提供志愿讲解")
    reply = await again.press(m, reply, "跳过")
    assert "2026-11-27" in reply.text and "3 小时" in reply.text
    done = await again.press(m, reply, "✅ 提交")
    assert "待书记审核" in done.text

    rows = list(await db.all(select(ServiceEntry)))
    assert [(r.action, r.day, r.minutes, r.place) for r in rows] == [
        ("volunteer", date(2026, 11, 27), 180, "西宁市图书馆")
    ]
    assert await db.count(ConversationState) == 0
    # The place prompt kept its "skip" button (the place was typed): it is stale now.
    stale = await again.press(m, place_prompt, "跳过")
    assert "失效" in (stale.alert or "")
    assert await db.count(ServiceEntry) == 1


async def test_quick_form_waiting_for_its_action_survives_a_restart(
    chat, db, world, emulator, bots, bot_app
) -> None:
    reply = await chat.send(world.member_a, "/log 2 昨天 社区清扫")
    await bots.stop(bot_app)
    again = Chat(emulator, await bots.start())
    done = await again.press(world.member_a, reply, "党员公益日")
    assert "待书记审核" in done.text
    [row] = await db.all(select(ServiceEntry))
    assert (row.minutes, row.day, row.action) == (120, date(2026, 11, 27), "welfare_day")
