"""Stopping a polling bot: what it has begun it finishes; what waits its chat's turn stays in the
inbox for the next start (UPDATES_IN_FLIGHT, 128, may hold many of one chat)."""

from __future__ import annotations

from sqlalchemy import select

from emulator import Emulator
from storage.models import ProcessedUpdate
from storage.updates import pending_inbound
from tests.e2e.conftest import BotRunner
from tests.e2e.harness import Db, poll_until


def _replies(emu: Emulator, bot_id: int, user_id: int) -> int:
    return sum(1 for m in emu.chat(user_id, bot=bot_id) if m.outgoing)


async def test_stopping_leaves_a_chats_waiting_updates_in_the_inbox(
    emulator: Emulator, bots: BotRunner, db: Db, sessionmaker
) -> None:
    app = await bots.start()
    bot_id = app.bot.id
    user = emulator.add_user("等候的人", language_code="zh")
    held = emulator.faults.slow(3, method="sendMessage", chat_id=user.id, count=1)
    first = await emulator.send_text(user, "/help", bot=bot_id)
    await emulator.wait_for(lambda: held.hits == 1, 30)  # its reply is on the way, held back
    second = await emulator.send_text(user, "/help", bot=bot_id)
    # Taken in (stored and confirmed to Telegram), waiting for the first to finish.
    await emulator.wait_for(
        lambda: all(u["update_id"] != second["update_id"] for u in emulator.pending_updates(bot_id)), 30
    )
    ids = [first["update_id"], second["update_id"]]

    await bots.stop(app)  # the first finishes once its reply is through; the second is not begun

    assert await db.all(select(ProcessedUpdate.update_id).where(ProcessedUpdate.update_id.in_(ids))) == [
        first["update_id"]
    ]
    async with sessionmaker() as s:
        assert [u["update_id"] for u in await pending_inbound(s, bot_id)] == [second["update_id"]]
    assert _replies(emulator, bot_id, user.id) == 1

    await bots.start()  # the next start handles it first, once
    await emulator.wait_for(lambda: _replies(emulator, bot_id, user.id) == 2, 30)

    async def both_handled() -> bool:
        done = await db.all(select(ProcessedUpdate.update_id).where(ProcessedUpdate.update_id.in_(ids)))
        return sorted(done) == sorted(ids)

    await poll_until(both_handled, 30)
    assert _replies(emulator, bot_id, user.id) == 2
