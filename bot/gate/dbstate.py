"""The gate's limits shared through PostgreSQL, for a bot with several processes and no Redis.

The same pacing as Redis (`SharedState`); the counts are rows of `gate_marks` (UNLOGGED), and an
admission is one call of the `gate_take` function (migration 0007): under a per-bot advisory
lock it reads the pause, the reply marks and every window and takes the places, in one round
trip; the answer's stamp is one UPDATE more. Times are the database server's clock, so
processes on several machines agree. Its own
small pool, never the update's session: an admission must not wait for, or hold, the update's
transaction. SQLite is never shared this way: SQLite means one process, and `LocalState`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.gate.pacing import PAUSE_MARGIN, REQUEST_TIMEOUT, Limits
from bot.gate.shared import REPLY_MARK_SECONDS, Rule, SharedState
from bot.gate.state import LocalState

log = logging.getLogger("branchbot.gate")
# What an unreachable database raises (the statement timeout of a hung connection included).
DB_DOWN = (SQLAlchemyError, OSError, TimeoutError)

# Rows older than this (the longest window, a group's minute with headroom) are deleted, at
# most this often.
KEEP_SECONDS = 70.0
CLEAN_EVERY = 30.0

_NOW = "extract(epoch FROM clock_timestamp())"
_TAKE = text("SELECT gate_take(:scope, :names, :limits, :seconds, :bulk, :open)")
_ANSWERED = text(f"UPDATE gate_marks SET t = {_NOW} - :ago WHERE id = ANY(:ids)")
_PAUSE = text(
    f"INSERT INTO gate_marks (scope, name, t) SELECT CAST(:scope AS varchar), 'pause', {_NOW} + :seconds "
    f"WHERE NOT EXISTS (SELECT 1 FROM gate_marks WHERE scope = :scope AND name = 'pause' "
    f"AND t >= {_NOW} + :seconds) RETURNING t"
)
_PAUSE_LEFT = text(f"SELECT max(t) - {_NOW} FROM gate_marks WHERE scope = :scope AND name = 'pause'")
_MARK = text(
    f"INSERT INTO gate_marks (scope, name, t) VALUES (:scope, 'reply', {_NOW} + :seconds) RETURNING id"
)
_UNMARK = text("DELETE FROM gate_marks WHERE id = :id")
_CLEAN = text(f"DELETE FROM gate_marks WHERE scope = :scope AND t < {_NOW} - :keep")


class DbState(SharedState):
    def __init__(
        self,
        database_url: str,
        bot_id: int,
        limits: Limits = Limits(),
        *,
        prefix: str = "branchbot:gate",
        engine: AsyncEngine | None = None,
        secret: bytes = b"",
    ) -> None:
        if not database_url.startswith("postgresql"):
            raise ValueError("the gate's state is shared through PostgreSQL only (SQLite is one process)")
        super().__init__(limits, secret=secret)
        # Autocommit: each statement is its own transaction, so gate_take's advisory lock ends
        # with it. A few connections: one attempt at a time per process, plus pauses and marks.
        self._engine = engine or create_async_engine(
            database_url,
            pool_size=2,
            max_overflow=2,
            pool_pre_ping=True,
            hide_parameters=True,
            isolation_level="AUTOCOMMIT",
            # An unreachable or hung server must not hold a reply: give up quickly, see below.
            connect_args={"timeout": 2, "command_timeout": 2},
        )
        # While the database cannot be reached (an outage), this process paces alone: the
        # bot's replies and edits go on; the worker cannot claim rows then anyway.
        self._alone = LocalState(limits)
        self._down = False
        self.scope = f"{prefix}:{bot_id}"
        self._cleaned = 0.0

    async def close(self) -> None:
        await self._settle()
        await self._engine.dispose()

    async def _scalar(self, statement: Any, **params: Any) -> Any:
        async with self._engine.connect() as conn:
            result = await conn.execute(statement, {"scope": self.scope, **params})
            return result.scalar() if result.returns_rows else None

    def _failed(self, e: BaseException) -> None:
        if not self._down:
            self._down = True
            log.warning("gate: database unreachable (%s), pacing in this process alone", type(e).__name__)

    def _back(self) -> None:
        if self._down:
            self._down = False
            log.info("gate: database back, limits shared again")

    async def pause(self, seconds: float) -> None:
        await self._alone.pause(seconds)  # this process holds in any case
        try:
            if await self._scalar(_PAUSE, seconds=seconds + PAUSE_MARGIN) is not None:
                self.paused_total += seconds
        except DB_DOWN as e:
            self._failed(e)
            self.paused_total += seconds

    async def pause_left(self) -> float:
        alone = await self._alone.pause_left()
        try:
            left = await self._scalar(_PAUSE_LEFT)
        except DB_DOWN as e:
            self._failed(e)
            return alone
        self._back()
        return max(alone, float(left)) if left is not None else alone

    async def admit(self, chat_id: int | None, *, bulk: bool) -> None:
        try:
            await super().admit(chat_id, bulk=bulk)
        except DB_DOWN as e:
            self._failed(e)
            await self._alone.admit(chat_id, bulk=bulk)
            self._alone.answered(chat_id)  # counted from now: no answer reaches this state

    async def _take(self, rules: list[Rule], bulk: bool) -> tuple[float, int, Any]:
        now = asyncio.get_running_loop().time()
        if now - self._cleaned > CLEAN_EVERY:
            self._cleaned = now
            await self._scalar(_CLEAN, keep=KEEP_SECONDS)
        wait, why, *ids = await self._scalar(
            _TAKE,
            names=[r.name for r in rules],
            limits=[r.limit for r in rules],
            seconds=[r.seconds for r in rules],
            bulk=bulk,
            open=float(REQUEST_TIMEOUT),
        )
        return float(wait), int(why), [int(i) for i in ids]

    async def _stamp(self, places: Any, ago: float) -> None:
        try:
            await self._scalar(_ANSWERED, ids=places, ago=ago)
        except DB_DOWN as e:
            self._failed(e)  # the places lapse REQUEST_TIMEOUT after they were taken

    async def _mark_reply(self) -> object:
        return await self._scalar(_MARK, seconds=REPLY_MARK_SECONDS)

    async def _unmark_reply(self, mark: object) -> None:
        try:
            await self._scalar(_UNMARK, id=mark)
        except DB_DOWN as e:
            self._failed(e)  # the mark lapses by itself
