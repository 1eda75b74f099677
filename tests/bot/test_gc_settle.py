"""The bot process settles its garbage collector once started (bot/runtime.settle_gc)."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

import bot.runtime

_PROBE = """
import gc
from bot.runtime import settle_gc
kept = [[i] for i in range(50_000)]  # what start-up leaves: lives as long as the process
before = gc.get_freeze_count()
settle_gc()
print(before, gc.get_freeze_count(), *gc.get_threshold())
"""


def test_what_start_up_made_is_frozen() -> None:
    # In a process of its own: freezing is for the whole interpreter.
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    before, after, young, older, oldest = map(int, out.stdout.split())
    assert before == 0 and after >= 50_000
    # The youngest generation is collected less often; the older ones as Python's defaults.
    assert (young, older, oldest) == (bot.runtime.YOUNG_GENERATION, 10, 10) and young > 700


async def test_serving_settles_the_collector_after_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class Run:
        tasks: list[object] = []
        admin_url = None

        class stop:  # stands for an asyncio.Event
            @staticmethod
            def set() -> None: ...

            @staticmethod
            async def wait() -> None:
                calls.append("waited")

    async def start(*_a: object, **_kw: object) -> Run:
        calls.append("started")
        return Run()

    async def stop(_run: object) -> None:
        calls.append("stopped")

    monkeypatch.setattr(bot.runtime, "start", start)
    monkeypatch.setattr(bot.runtime, "stop", stop)
    monkeypatch.setattr(bot.runtime, "settle_gc", lambda: calls.append("settled"))
    threshold = gc.get_threshold()
    await bot.runtime.serve_forever(object())  # type: ignore[arg-type]
    assert calls[:2] == ["started", "settled"] and calls[-1] == "stopped"
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0  # the test's own left alone
