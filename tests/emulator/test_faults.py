"""Fault injection: 429 with retry_after, 5xx (before or after the send), HTML error pages,
slow answers, and the early-retry counter."""

from __future__ import annotations

import asyncio

import pytest
from aiogram import Bot
from aiogram.exceptions import ClientDecodeError, TelegramRetryAfter, TelegramServerError

from emulator import Emulator, SimUser
from tests.emulator.clock import FakeClock
from tests.emulator.conftest import TOKEN, close_bot, make_bot


async def test_injected_429_hits_sends_count_times(bot: Bot, emu: Emulator, user: SimUser):
    emu.faults.inject_429(count=2, retry_after=3)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as e:
            await bot.send_message(user.id, "x")
        assert e.value.retry_after == 3
    assert await bot.get_updates(timeout=0) == []  # never hits update intake unless named
    assert (await bot.send_message(user.id, "x")).text == "x"
    assert emu.stats.injected_429 == 2 and emu.stats.limit_429_total == 0
    assert [e.description for e in emu.errors] == ["Too Many Requests: retry after 3"] * 2
    assert emu.stats.sent() == 1


async def test_429_by_method_and_by_chat(bot: Bot, emu: Emulator, user: SimUser):
    other = emu.add_user("李四")
    emu.faults.inject_429(count=None, method="sendPhoto")
    emu.faults.inject_429(count=None, chat_id=other.id)
    await bot.send_message(user.id, "fine")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(other.id, "x")
    emu.faults.clear()
    await bot.send_message(other.id, "fine now")


async def test_429_can_target_get_updates_when_named(bot: Bot, emu: Emulator):
    emu.faults.inject_429(method="getUpdates", retry_after=1)
    with pytest.raises(TelegramRetryAfter):
        await bot.get_updates(timeout=0)


@pytest.mark.parametrize("status", [500, 502])
async def test_injected_5xx(bot: Bot, emu: Emulator, user: SimUser, status: int):
    emu.faults.inject_5xx(count=1, status=status)
    with pytest.raises(TelegramServerError):
        await bot.send_message(user.id, "x")
    assert emu.chat(user) == []  # nothing was sent
    assert emu.stats.injected_5xx == 1 and emu.errors[-1].code == status


async def test_5xx_after_send_delivers_and_still_fails(bot: Bot, emu: Emulator, user: SimUser):
    emu.faults.inject_5xx(status=502, after_send=True)
    with pytest.raises(TelegramServerError):
        await bot.send_message(user.id, "once")
    await bot.send_message(user.id, "once")  # the naive retry
    assert emu.stats.per_chat()[user.id] == 2  # the duplicate a retry causes, visible to tests


async def test_5xx_as_an_html_page(bot: Bot, emu: Emulator, user: SimUser):
    emu.faults.inject_5xx(status=502, html=True)
    with pytest.raises(ClientDecodeError):
        await bot.send_message(user.id, "x")


async def test_slow_answers(bot: Bot, emu: Emulator, user: SimUser):
    rule = emu.faults.slow(0.2, method="getMe", count=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bot.get_me()
    assert loop.time() - started >= 0.2
    assert rule.hits == 1 and rule.remaining == 0


async def test_slow_answer_trips_the_client_timeout(bot: Bot, emu: Emulator, user: SimUser):
    from aiogram.exceptions import TelegramNetworkError

    emu.faults.slow(2.0, method="sendMessage")
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(user.id, "x", request_timeout=0.1)


async def test_sends_before_retry_after_has_passed_count_as_early_retries():
    clock = FakeClock()
    async with Emulator(clock=clock) as emu:
        emu.add_bot(TOKEN)
        user = emu.add_user()
        bot = make_bot(emu)
        try:
            emu.faults.inject_429(retry_after=5)
            with pytest.raises(TelegramRetryAfter):
                await bot.send_message(user.id, "x")
            clock.advance(4.5)
            await bot.send_message(user.id, "too early")  # limits are off: delivered, but counted
            clock.advance(0.5)
            await bot.send_message(user.id, "on time")
            assert emu.stats.early_retries == 1
            assert emu.stats.early_retry_log == [(1004.5, emu.bot().id, user.id)]
        finally:
            await close_bot(bot)
