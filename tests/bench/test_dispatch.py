"""bench.dispatch runs at a tiny scale, and refuses to report when the two modes answer apart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.types import InlineKeyboardButton

from bench import dispatch
from handlers.kit import keyboards
from tests import dbutil


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own: the run seeds its members and orgs with fixed ids."""
    async with dbutil.empty_database(tmp_path) as created:
        yield created


async def test_tiny_run_times_both_modes(url: str) -> None:
    per_update = await dispatch.run(url, 4, 2)
    assert [len(v) for v in per_update.values()] == [2, 2]
    assert all(ms > 0 for v in per_update.values() for ms in v)
    lines: list[str] = []
    dispatch.report(per_update, lines.append)
    assert lines[-1].startswith("A - B, same round: median")


async def test_answers_that_differ_are_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def other(text: str, data: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(text=text + "!", callback_data=data)

    monkeypatch.setattr(dispatch, "button", other)  # mode B's buttons
    with pytest.raises(SystemExit, match="Bot API calls differ"):
        await dispatch.run(url, 2, 1)
    assert dispatch.service_log.button is keyboards.button  # left as the bot has it
