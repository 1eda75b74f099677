"""Where the gate keeps Telegram's limits: in this process (`LocalState`), or shared by every
process of the bot (`bot/gate/shared.py`: Redis; `bot/gate/dbstate.py`: PostgreSQL). The gate
asks only these questions."""

from __future__ import annotations

import asyncio
from typing import Protocol

from bot.gate.pacing import GlobalPacer, Limits


class GateState(Protocol):
    paused_total: float  # seconds every call was held by 429s, for logs and benchmarks

    async def pause(self, seconds: float) -> None:
        """Telegram said 429 retry_after=seconds: every call of the bot waits that long."""

    async def pause_left(self) -> float:
        """Seconds until calls may go again (0 when not paused)."""

    async def admit(self, chat_id: int | None, *, bulk: bool) -> None:
        """Wait until one more message may go (to this chat, if given) and count it as gone.
        Replies (bulk=False) go before bulk sends. `answered()` must follow."""

    def answered(self, chat_id: int | None = None) -> None:
        """The admitted message's answer (or failure) came back."""

    def chat_ready_at(self, chat_id: int, now: float) -> float:
        """When a bulk send to this chat may go, as far as this process knows (loop time)."""

    def forget_idle(self) -> None:
        """Drop what is remembered of chats with nothing recent."""

    async def close(self) -> None:
        """Let go of connections."""


class LocalState:
    """One process's view: exact, and what a bot that runs in one process needs."""

    def __init__(self, limits: Limits = Limits()) -> None:
        self.pacer = GlobalPacer(limits.rate, limits.headroom)
        self.chats = limits.chat_pacer()

    @property
    def paused_total(self) -> float:
        return self.pacer.paused_total

    async def pause(self, seconds: float) -> None:
        self.pacer.pause(seconds, asyncio.get_running_loop().time())

    async def pause_left(self) -> float:
        return self.pacer.pause_left(asyncio.get_running_loop().time())

    async def admit(self, chat_id: int | None, *, bulk: bool) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if chat_id is not None:
                at = self.chats.ready_at(chat_id, loop.time(), bulk=bulk)
                if at > loop.time():
                    # A known instant, not a poll: the chat's own limit frees up then.
                    await asyncio.sleep(at - loop.time())
            await self.pacer.acquire(bulk=bulk)
            now = loop.time()
            if chat_id is None:
                return
            if self.chats.ready_at(chat_id, now, bulk=bulk) <= now:
                self.chats.note(chat_id, now)
                return
            self.pacer.answered()  # another message took the chat meanwhile: give the place back

    def answered(self, chat_id: int | None = None) -> None:
        self.pacer.answered()
        if chat_id is not None:
            self.chats.answered(chat_id, asyncio.get_running_loop().time())

    def chat_ready_at(self, chat_id: int, now: float) -> float:
        return self.chats.ready_at(chat_id, now, bulk=True)

    def forget_idle(self) -> None:
        self.chats.forget_idle(asyncio.get_running_loop().time())

    async def close(self) -> None:
        pass
