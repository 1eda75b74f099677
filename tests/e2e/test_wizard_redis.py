"""With REDIS_URL set, conversation state lives in Redis (for several bot workers): a wizard
still survives a restart, and nothing of it is written to the database."""

from __future__ import annotations

import uuid
from datetime import date

from redis.asyncio import Redis
from sqlalchemy import select

from storage.models import ConversationState, ServiceEntry
from tests.e2e.harness import Chat

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_log_wizard_state_in_redis_survives_a_restart(emulator, bots, world, db) -> None:
    redis = Redis.from_url(REDIS_URL)
    before = set(await redis.keys("fsm:*"))
    try:
        first = await bots.start(redis_url=REDIS_URL)
        chat = Chat(emulator, first)
        m = world.member_a
        reply = await chat.send(m, "/log")
        reply = await chat.press(m, reply, "党员志愿服务行动")
        reply = await chat.press(m, reply, "昨天")
        assert "第 3/6 步" in reply.text
        assert await db.count(ConversationState) == 0
        ours = set(await redis.keys("fsm:*")) - before
        assert any(str(m.telegram_id).encode() in k for k in ours)

        await bots.stop(first)
        again = Chat(emulator, await bots.start(redis_url=REDIS_URL))
        reply = await again.press(m, reply, "3 小时")
        reply = await again.send(m, "西宁市图书馆")
        reply = await again.send(m, f"为读者提供志愿讲解 {uuid.uuid4().hex[:6]}")
        reply = await again.press(m, reply, "跳过")
        done = await again.press(m, reply, "✅ 提交")
        assert "待书记审核" in done.text
        rows = list(await db.all(select(ServiceEntry)))
        assert [(r.day, r.minutes, r.place) for r in rows] == [(date(2026, 11, 27), 180, "西宁市图书馆")]
    finally:
        leftover = set(await redis.keys("fsm:*")) - before
        if leftover:
            await redis.delete(*leftover)
        await redis.aclose()
