"""An update commits before it talks to Telegram (bot/gate, `before_wait`): while its reply is on
the way, its work is stored and it holds no lock, so other chats' updates go on meanwhile."""

from __future__ import annotations

from sqlalchemy import select

from emulator import Emulator
from storage.models import ProcessedUpdate
from tests.e2e.conftest import BotRunner
from tests.e2e.harness import Db


def _replies(emu: Emulator, bot_id: int, user_id: int) -> int:
    return sum(1 for m in emu.chat(user_id, bot=bot_id) if m.outgoing)


async def test_a_reply_on_its_way_holds_no_database_lock(emulator: Emulator, bots: BotRunner, db: Db) -> None:
    app = await bots.start()
    bot_id = app.bot.id
    slow, quick = emulator.add_user("回复慢的人", language_code="zh"), emulator.add_user("另一个人")
    held = emulator.faults.slow(3, method="sendMessage", chat_id=slow.id, count=1)
    first = await emulator.send_text(slow, "/help", bot=bot_id)
    await emulator.wait_for(lambda: held.hits == 1, 30)  # its reply has reached Telegram, held there

    # Committed before the call: the update's row is there for anyone to read.
    done = await db.all(
        select(ProcessedUpdate.update_id).where(ProcessedUpdate.update_id == first["update_id"])
    )
    assert done == [first["update_id"]]
    # Another chat's update is handled and answered while that reply is still held (on SQLite
    # it needs the one connection, which the first update would otherwise hold until answered).
    await emulator.send_text(quick, "/help", bot=bot_id)
    await emulator.wait_for(lambda: _replies(emulator, bot_id, quick.id) == 1, 30)
    assert _replies(emulator, bot_id, slow.id) == 0

    await emulator.wait_for(lambda: _replies(emulator, bot_id, slow.id) == 1, 30)
