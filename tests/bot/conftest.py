"""The emulator every test here talks to, with the outbox world's bot (TOKEN) registered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from emulator import Emulator
from tests.bot.outbox_world import TOKEN


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as e:
        e.add_bot(TOKEN)
        yield e
