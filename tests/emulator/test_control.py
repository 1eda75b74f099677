"""The control API (HTTP mirror of the Python API) and the standalone emulator process."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter

from emulator import Emulator
from emulator.client import ControlError, RemoteEmulator
from tests.emulator.conftest import PNG, TOKEN, close_bot, make_bot


@pytest.fixture
async def remote(emu: Emulator) -> AsyncIterator[RemoteEmulator]:
    async with RemoteEmulator(emu.base_url) as r:
        yield r


async def test_people_talk_and_read_through_the_control_api(remote: RemoteEmulator, emu: Emulator, bot: Bot):
    user = await remote.add_user("张三", language_code="zh")
    update = await remote.send_text(user["id"], "/start abc")
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    [got] = await bot.get_updates(timeout=0)
    assert got.update_id == update["update_id"]

    sent = await bot.send_message(
        user["id"], "选：", reply_markup={"inline_keyboard": [[{"text": "好", "callback_data": "ok"}]]}
    )
    msg = await remote.next_message(user["id"], timeout=2)
    assert (msg["message_id"], msg["text"], msg["buttons"]) == (sent.message_id, "选：", ["好"])
    press = await remote.press(user["id"], sent.message_id, text="好")
    assert press["callback_query"]["data"] == "ok"
    with pytest.raises(ControlError, match="has no button"):
        await remote.press(user["id"], sent.message_id, text="坏")
    with pytest.raises(TimeoutError):
        await remote.next_message(user["id"], timeout=0.05)

    again = await remote.redeliver(update["update_id"])
    assert again == update
    assert [m["text"] for m in await remote.chat(user["id"])] == ["选："]


async def test_faults_limits_and_records_through_the_control_api(
    remote: RemoteEmulator, emu: Emulator, bot: Bot
):
    user = await remote.add_user("李四")
    await remote.inject_429(count=1, retry_after=2)
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(user["id"], "x")
    await remote.inject_5xx(count=1, status=502, method="sendMessage")
    await remote.slow(0.01, method="getMe")
    await remote.clear_faults()
    await bot.send_message(user["id"], "ok")
    await remote.enable_limits(global_per_sec=1)
    assert emu.limits.enabled and emu.limits.global_per_sec == 1
    await remote.disable_limits()
    stats = await remote.stats()
    assert (stats["sent"], stats["injected_429"], stats["per_chat"]) == (1, 1, {str(user["id"]): 1})
    assert [e["code"] for e in await remote.errors()] == [429]
    await remote.block(user["id"])
    assert emu.is_blocked(emu.bot().id, user["id"])
    await remote.unblock(user["id"])
    await remote.reset_records()
    assert await remote.violations() == [] and await remote.errors() == []


async def test_photos_groups_and_bot_state_through_the_control_api(
    remote: RemoteEmulator, emu: Emulator, bot: Bot
):
    a, b = await remote.add_user("甲"), await remote.add_user("乙")
    group = await remote.add_group("支部群", [a["id"], b["id"]])
    await remote.send_text(a["id"], "大家好", chat_id=group["id"])
    await remote.send_photo(a["id"], PNG, caption="照片")
    state = await remote.bot_state(TOKEN)
    assert [next(k for k in u if k != "update_id") for u in state["pending_updates"]] == [
        "message",
        "message",
    ]
    assert state["pending_updates"][0]["message"]["chat"]["type"] == "group"


async def test_standalone_emulator_prints_its_url_and_serves():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "emulator", "--port", "0", "--token", TOKEN,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
        base_url = line.decode().strip()
        assert base_url.startswith("http://127.0.0.1:")
        bot = make_bot(base_url)
        try:
            async with RemoteEmulator(base_url) as remote:
                user = await remote.add_user("王五")
                await remote.send_text(user["id"], "/help")
                [update] = await bot.get_updates(timeout=1)
                await bot.send_message(update.message.chat.id, "帮助")
                assert (await remote.next_message(user["id"]))["text"] == "帮助"
        finally:
            await close_bot(bot)
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0  # SIGTERM is a clean stop
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
