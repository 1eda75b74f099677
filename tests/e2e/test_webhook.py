"""Webhook mode: the emulator pushes updates with the secret token; duplicates change nothing."""

from __future__ import annotations

import aiohttp
from sqlalchemy import select

from storage.models import ProcessedUpdate
from tests.e2e.harness import Chat


async def test_webhook_mode_answers_commands(emulator, bots, world) -> None:
    app = await bots.start_webhook()
    chat = Chat(emulator, app)
    reply = await chat.send(world.member_a, "/help")
    assert "/log" in reply.text
    # The attempt is recorded once our endpoint has answered 200.
    attempts = await emulator.wait_for(
        lambda: [a for a in emulator.bot(app.bot.id).webhook_attempts if a.status == 200], 10
    )
    assert all(a.secret_token == "s3cret-token" for a in attempts)


async def test_webhook_refuses_a_wrong_secret_token(emulator, bots, world) -> None:
    app = await bots.start_webhook()
    url = app.settings.webhook_url
    assert url
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url, json={"update_id": 1}, headers={"X-Telegram-Bot-Api-Secret-Token": "x"}
        ) as r:
            assert r.status == 401
        async with http.post(url, json={"update_id": 1}) as r:
            assert r.status == 401


async def test_duplicate_webhook_delivery_replies_once(emulator, bots, world, db) -> None:
    app = await bots.start_webhook()
    chat = Chat(emulator, app)
    reply = await chat.send(world.member_a, "/help")
    assert reply.text
    bot = emulator.bot(app.bot.id)
    update_id = max(bot.all_updates)
    count = len(chat.messages(world.member_a))
    emulator.redeliver(bot.all_updates[update_id], bot=app.bot.id)
    await app.intake.wait_handled(update_id, 10, times=2)
    assert len(chat.messages(world.member_a)) == count
    assert await db.count(ProcessedUpdate, ProcessedUpdate.update_id == update_id) == 1
    assert (await db.all(select(ProcessedUpdate.bot_id))) == [app.bot.id]
