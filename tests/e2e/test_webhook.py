"""Webhook mode: the emulator pushes updates with the secret token; duplicates change nothing."""

from __future__ import annotations

import aiohttp
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from config.settings import Settings
from storage.models import Person, ProcessedUpdate
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


def _forged_erase(update_id: int, user_id: int, message_id: int) -> dict[str, object]:
    """A callback_query for "yes, erase me" as if the member had pressed it."""
    who = {"id": user_id, "is_bot": False, "first_name": "x"}
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"forged-{update_id}",
            "from": who,
            "chat_instance": "1",
            "data": "pv:erase-yes",
            "message": {
                "message_id": message_id,
                "date": 1,
                "chat": {"id": user_id, "type": "private"},
                "text": "x",
            },
        },
    }


async def test_forged_erase_callback_without_the_secret_erases_nobody(emulator, bots, world, db) -> None:
    # The forged query id is unknown to Telegram: the answer to it is refused (and let go).
    bots.expect_error("answerCallbackQuery", 400, "query is too old")
    app = await bots.start_webhook()
    url = app.settings.webhook_url
    assert url
    chat = Chat(emulator, app)
    member = world.member_a
    shown = await chat.send(member, "/privacy")
    assert shown.message is not None
    forged = _forged_erase(990_001, member.telegram_id, shown.message.message_id)
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "guessed"}):
            async with http.post(url, json=forged, headers=headers) as r:
                assert r.status == 401
    person = await db.one(select(Person).where(Person.id == member.id))
    assert person.erased_at is None and person.telegram_id == member.telegram_id
    assert await db.count(ProcessedUpdate, ProcessedUpdate.update_id == 990_001) == 0
    # The same update with Telegram's secret is taken: the forgery itself was a working one.
    async with aiohttp.ClientSession() as http:
        secret = {"X-Telegram-Bot-Api-Secret-Token": app.settings.webhook_secret or ""}
        async with http.post(url, json=forged, headers=secret) as r:
            assert r.status == 200
    person = await db.one(select(Person).where(Person.id == member.id))
    assert person.erased_at is not None


def test_webhook_mode_without_a_secret_does_not_start() -> None:
    with pytest.raises(ValidationError, match="webhook_secret"):
        Settings(_env_file=None, webhook_url="https://bot.example.org/tg", webhook_secret=None)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="webhook_secret"):
        Settings(_env_file=None, webhook_url="https://bot.example.org/tg", webhook_secret="has space")  # type: ignore[call-arg]
