"""The scheduler: an in-process APScheduler 3 that only ticks.

APScheduler cannot share a job store between processes, so the reminder rules live in our own
tables (storage/reminders.py, editable from the admin module) and APScheduler's CronTrigger only
computes their fire times there. Here an AsyncIOScheduler with a memory job store runs three
interval jobs, each one short transaction:

- reminders: claim the due runs and put their messages in the outbox (storage.reminders.run_due:
  runs are unique per rule and due time, so several scheduler processes send each reminder once;
  after downtime the catch-up rules of storage/reminders.py apply);
- scheduled notices: put the notices whose time has come in the outbox (release_scheduled);
- housekeeping: forget processed update ids older than two days.

`tick()` runs one round directly (tests drive it with a FrozenClock). A failure (database away,
a bad row) is logged with its class name and the next tick tries again: the scheduler never dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.clock import Clock, FrozenClock
from content.pack import Pack
from storage import notices, reminders, updates

log = logging.getLogger("branchbot.scheduler")

KEEP_UPDATES = timedelta(days=2)
# Runs claimed per transaction are bounded (storage.reminders.claim_due_runs); a tick goes on
# claiming until nothing is left, up to this many rounds, so a busy 09:00 is not spread over ticks.
MAX_ROUNDS = 50
# Rules claimed in a tick's first round; each round after takes twice as many, up to
# ROUND_RULES. A small first transaction puts the first messages in the outbox (and the worker
# on its way) within a second even when a thousand branches are due at once; bounded rounds
# keep each transaction short, so on SQLite the worker's own writes are not held up for long.
FIRST_ROUND_RULES = 1
ROUND_RULES = 32


class _QuietSkips(logging.Filter):
    """A tick still running when the next is due is skipped on purpose (max_instances=1): that
    is not worth a warning each time."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


logging.getLogger("apscheduler.scheduler").addFilter(_QuietSkips())
# APScheduler reports every run of every job at INFO; ours log what they did themselves.
logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class TickResult:
    runs: int  # reminder runs claimed (sent or empty)
    notices: int  # scheduled notices released
    forgotten: int  # processed update ids dropped
    failures: int  # steps that failed and will be tried again


class Scheduler:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        worker_id: str,
        pack: Pack,
        *,
        tick_seconds: float = 30,
        housekeeping_seconds: float = 3600,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self.sm = sessionmaker
        self.clock = clock
        self.worker_id = worker_id
        self.pack = pack
        self.tick_seconds = tick_seconds
        self.housekeeping_seconds = housekeeping_seconds
        # Called after a commit that put messages in the outbox (e.g. DeliveryWorker.wake).
        self.on_enqueued = on_enqueued
        self._aps: AsyncIOScheduler | None = None

    # -- the steps --

    async def remind(self) -> int:
        """Claim the due reminder runs and enqueue their messages; return the runs claimed."""
        total = 0
        for round_ in range(MAX_ROUNDS):
            limit = min(ROUND_RULES, FIRST_ROUND_RULES << round_)
            async with self.sm() as s:
                runs = await reminders.run_due(s, self.pack, self.clock.now(), self.worker_id, limit)
                await s.commit()
            if not runs:
                break
            total += len(runs)
            log.info("worker %s: %d reminder runs", self.worker_id, len(runs))
            self._enqueued()
        return total

    async def release(self) -> int:
        """Put the scheduled notices that are due in the outbox; return how many."""
        async with self.sm() as s:
            ids = await notices.release_scheduled(s, self.clock.now())
            await s.commit()
        if ids:
            log.info("worker %s: released scheduled notices %s", self.worker_id, ids)
            self._enqueued()
        return len(ids)

    async def housekeep(self) -> int:
        async with self.sm() as s:
            n = await updates.forget_before(s, self.clock.now() - KEEP_UPDATES)
            await s.commit()
        return n

    def _enqueued(self) -> None:
        if self.on_enqueued is not None:
            try:
                self.on_enqueued()
            except Exception as e:
                log.warning("on_enqueued failed (%s)", type(e).__name__)

    async def _guarded(self, name: str, step: Callable[[], Awaitable[int]]) -> int | None:
        """Run one step; log a failure (class name only) and return None instead of raising."""
        try:
            result = await step()
        except Exception as e:
            log.warning(
                "scheduler %s: %s failed (%s); next tick tries again", self.worker_id, name, type(e).__name__
            )
            return None
        return int(result)

    async def tick(self, *, housekeeping: bool = True) -> TickResult:
        """One round of every job, directly (what the interval jobs do, for tests and --ticks)."""
        runs = await self._guarded("reminders", self.remind)
        released = await self._guarded("scheduled notices", self.release)
        forgotten = await self._guarded("housekeeping", self.housekeep) if housekeeping else 0
        results = (runs, released, forgotten)
        return TickResult(
            runs=runs or 0,
            notices=released or 0,
            forgotten=forgotten or 0,
            failures=sum(r is None for r in results),
        )

    # -- APScheduler --

    async def _remind_job(self) -> None:
        await self._guarded("reminders", self.remind)
        await self._guarded("scheduled notices", self.release)

    async def _housekeeping_job(self) -> None:
        await self._guarded("housekeeping", self.housekeep)

    def start(self) -> None:
        """Start the interval jobs on the running event loop (first tick at once)."""
        if self._aps is not None:
            return
        aps = AsyncIOScheduler(timezone=UTC)
        first = datetime.now(UTC)
        # One instance of each job at a time; a tick missed while the loop was busy is merged.
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        aps.add_job(
            self._remind_job,
            "interval",
            seconds=self.tick_seconds,
            next_run_time=first,
            id="reminders",
            **common,
        )
        aps.add_job(
            self._housekeeping_job,
            "interval",
            seconds=self.housekeeping_seconds,
            next_run_time=first,
            id="housekeeping",
            **common,
        )
        aps.start()
        self._aps = aps

    def shutdown(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set."""
        self.start()
        try:
            await stop.wait()
        finally:
            self.shutdown()


# ---- running it on its own: python -m bot.scheduler ----


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bot.scheduler", description="Tick reminders and scheduled notices."
    )
    p.add_argument("--db", help="database URL (default: DATABASE_URL)")
    p.add_argument("--pack", help="content pack id (default: CONTENT_PACK)")
    p.add_argument("--worker-id", default=f"{socket.gethostname()}:{os.getpid()}")
    p.add_argument("--tick-seconds", type=float, default=30.0)
    p.add_argument("--at", help="a frozen clock at this ISO time (for tests)")
    p.add_argument("--ticks", type=int, default=0, help="run this many ticks back to back, then exit")
    p.add_argument("--wait-go", action="store_true", help="print 'ready', then wait for a line on stdin")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    from config.settings import get_settings
    from content.pack import get_pack
    from storage.db import make_engine, make_sessionmaker

    settings = None if (args.db and args.pack) else get_settings()
    engine = make_engine(args.db or (settings.database_url if settings else ""))
    pack = get_pack(args.pack or (settings.content_pack if settings else ""))
    clock: Clock = Clock()
    if args.at:
        at = datetime.fromisoformat(args.at.replace("Z", "+00:00"))
        clock = FrozenClock(at if at.tzinfo else at.replace(tzinfo=UTC))
    sched = Scheduler(make_sessionmaker(engine), clock, args.worker_id, pack, tick_seconds=args.tick_seconds)
    try:
        if args.wait_go:
            # Warm the connection first, so processes started together really tick together.
            await sched.housekeep()
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if args.ticks:
            for _ in range(args.ticks):
                r = await sched.tick()
                print(f"tick runs={r.runs} notices={r.notices} failures={r.failures}", flush=True)
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await sched.run(stop)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    from config.logs import setup_logging

    args = parse_args(argv)
    setup_logging(args.log_level)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
