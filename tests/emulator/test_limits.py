"""Telegram's rate limits (limits.py), with a clock the test moves by hand."""

from __future__ import annotations

import pytest
from aiogram.exceptions import TelegramRetryAfter

from emulator import Emulator
from emulator.limits import Limits, is_send
from tests.emulator.clock import FakeClock
from tests.emulator.conftest import TOKEN, close_bot, make_bot

BOT = 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limits(clock: FakeClock) -> Limits:
    lim = Limits(clock)
    lim.enable(global_per_sec=30, per_chat_per_sec=1, per_group_per_min=20, per_chat_burst=3)
    return lim


def test_which_methods_are_sends():
    assert is_send("sendMessage") and is_send("SENDPHOTO") and is_send("copyMessage")
    assert not is_send("sendChatAction") and not is_send("editMessageText") and not is_send("getUpdates")


def test_disabled_limits_never_refuse(clock: FakeClock):
    lim = Limits(clock)
    assert all(lim.admit(BOT, 5) is None for _ in range(100))


def test_global_limit_is_a_sliding_one_second_window(limits: Limits, clock: FakeClock):
    assert all(limits.admit(BOT, chat) is None for chat in range(1, 16))
    clock.advance(0.5)
    assert all(limits.admit(BOT, chat) is None for chat in range(16, 31))
    clock.advance(0.4)  # t = 0.9: 30 sends in the last second
    refusal = limits.admit(BOT, 99)
    assert (refusal.limit, refusal.retry_after, refusal.chat_scoped) == ("global", 1, False)
    clock.advance(0.1)  # t = 1.0: the first 15 left the window
    assert all(limits.admit(BOT, chat) is None for chat in range(100, 115))
    assert limits.admit(BOT, 200).limit == "global"
    assert limits.admit(2, 200) is None  # limits are per bot


def test_per_chat_tolerates_a_short_burst_but_not_a_sustained_rate(limits: Limits, clock: FakeClock):
    assert [limits.admit(BOT, 7) for _ in range(3)] == [None] * 3
    refusal = limits.admit(BOT, 7)
    assert (refusal.limit, refusal.retry_after, refusal.chat_scoped) == ("chat", 1, True)
    assert limits.admit(BOT, 8) is None  # another chat is not affected


def test_per_chat_one_per_second_is_always_accepted(limits: Limits, clock: FakeClock):
    for _ in range(20):
        assert limits.admit(BOT, 7) is None
        clock.advance(1.0)


def test_per_chat_two_per_second_is_refused_about_half_the_time(limits: Limits, clock: FakeClock):
    outcomes = []
    for _ in range(40):  # 20 s at 2 messages/s
        outcomes.append(limits.admit(BOT, 7) is None)
        clock.advance(0.5)
    # at most burst + rate * T = 3 + 20 accepted
    assert 20 <= sum(outcomes) <= 23


def test_group_limit_is_twenty_a_minute(clock: FakeClock):
    lim = Limits(clock)
    lim.enable(per_group_per_min=20, per_chat_per_sec=100, per_chat_burst=100)
    for _ in range(20):
        assert lim.admit(BOT, -5) is None
        clock.advance(1.0)
    refusal = lim.admit(BOT, -5)  # t = 20 s; the first send leaves the window at t = 60 s
    assert (refusal.limit, refusal.retry_after) == ("group", 40)
    assert lim.admit(BOT, 5) is None  # a private chat is not a group
    clock.advance(40.0)
    assert lim.admit(BOT, -5) is None


def test_after_a_429_sends_wait_for_retry_after(limits: Limits, clock: FakeClock):
    limits.note_429(BOT, None, 2)
    refusal = limits.admit(BOT, 3)
    assert (refusal.limit, refusal.retry_after) == ("wait", 2)
    assert limits.wait_left(BOT, 3) == 2.0
    clock.advance(2.0)
    assert limits.admit(BOT, 3) is None
    limits.note_429(BOT, 3, 1)  # a chat-scoped 429 holds only that chat
    assert limits.admit(BOT, 3).limit == "wait"
    assert limits.admit(BOT, 4) is None


async def test_a_burst_over_the_global_limit_gets_429s_over_http():
    clock = FakeClock()
    async with Emulator(clock=clock) as emu:
        emu.add_bot(TOKEN)
        users = [emu.add_user(f"u{i}") for i in range(40)]
        emu.limits.enable()
        bot = make_bot(emu)
        try:
            refused = []
            for u in users:  # 40 sends in the same instant
                try:
                    await bot.send_message(u.id, "通知")
                except TelegramRetryAfter as e:
                    refused.append(e.retry_after)
            assert (emu.stats.sent(), refused) == (30, [1] * 10)
            # the 31st hit the limit; the rest came while its retry_after ran
            assert emu.stats.limit_429 == {"global": 1, "wait": 9}
            assert emu.stats.early_retries == 9 and emu.stats.injected_429 == 0
            clock.advance(1.0)
            for u in users[30:]:
                await bot.send_message(u.id, "通知")
            assert emu.stats.sent() == 40 and emu.stats.early_retries == 9
            assert set(emu.stats.per_chat().values()) == {1}
        finally:
            await close_bot(bot)


async def test_sends_that_respect_the_limits_are_never_refused():
    clock = FakeClock()
    async with Emulator(clock=clock) as emu:
        emu.add_bot(TOKEN)
        users = [emu.add_user(f"u{i}") for i in range(90)]
        emu.limits.enable()
        bot = make_bot(emu)
        try:
            for u in users:  # 30 per second for 3 s
                await bot.send_message(u.id, "通知")
                clock.advance(1 / 30)
            for _ in range(10):  # 1 per second to one chat
                await bot.send_message(users[0].id, "提醒")
                clock.advance(1.0)
            assert emu.stats.limit_429_total == 0 and emu.errors == []
            assert emu.stats.max_in_window(1.0) <= 30
            assert emu.stats.max_in_window(1.0, chat_id=users[0].id) <= 3
        finally:
            await close_bot(bot)
