"""Fixtures for the emulator's own tests: a started emulator (stopped after the test), a
real aiogram Bot pointed at it, a simulated person, and small images."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from emulator import Emulator, SimBot, SimUser

TOKEN = "123456:TEST-token_abc"
# A 1x1 PNG and a 2x3 GIF, enough for Telegram's image checks.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8cfc0f01f0005000201e2b2d1f40000000049454e44ae426082"
)
GIF = b"GIF89a\x02\x00\x03\x00" + b"\x00" * 20


def make_bot(emu: Emulator | str, token: str = TOKEN) -> Bot:
    """A real aiogram Bot talking to the emulator (or to an emulator's base URL)."""
    base_url = emu if isinstance(emu, str) else emu.base_url
    return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(base_url)))


async def close_bot(bot: Bot) -> None:
    """Close the bot's HTTP session. aiogram's own close() waits 250 ms for TLS connections to
    wind down; there is no TLS here, and that wait per test would dominate the folder's time."""
    inner = bot.session._session  # type: ignore[attr-defined]
    if inner is not None:
        await inner.close()


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as e:
        yield e


@pytest.fixture
def sim_bot(emu: Emulator) -> SimBot:
    return emu.add_bot(TOKEN)


@pytest.fixture
async def bot(emu: Emulator, sim_bot: SimBot) -> AsyncIterator[Bot]:
    b = make_bot(emu)
    yield b
    await close_bot(b)


@pytest.fixture
def user(emu: Emulator) -> SimUser:
    return emu.add_user("张三", language_code="zh")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def raw_call(
    http: aiohttp.ClientSession, emu: Emulator, method: str, token: str = TOKEN, **params: object
) -> tuple[int, dict]:
    """A Bot API call as JSON, for what aiogram would refuse to send."""
    async with http.post(f"{emu.base_url}/bot{token}/{method}", json=params) as resp:
        return resp.status, await resp.json()
