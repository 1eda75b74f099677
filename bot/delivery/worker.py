"""The delivery worker: sends the outbox (storage/outbox.py) to Telegram within Telegram's limits.

Every message the bot sends on its own is a Delivery row committed before sending. The worker
claims due rows with a lease (FOR UPDATE SKIP LOCKED on PostgreSQL, so several workers take
disjoint rows), commits the claim, sends each row, and records the outcome promptly:

- sent                  -> mark_sent with Telegram's message id;
- 403 Forbidden         -> mark_blocked (the person is marked unreachable) and go on;
- 429 retry_after       -> every send of this bot waits until it has passed (Telegram's
                           retry_after covers the bot, not one message), and the row is retried;
- 5xx, network errors   -> retried with exponential backoff, given up after outbox.MAX_ATTEMPTS;
- 400 and other refusals of the message itself -> mark_failed.

A crash loses at most the outcomes not yet written: those rows are claimed again when their
lease runs out, so their recipients may get a second copy, and nobody gets none.

Pacing. Every call of the bot passes its gate (bot/gate), which holds Telegram's limits for
handlers and worker alike: the worker asks it which chats may be written to now, picks those,
and waits at the gate for each send's place (a person's reply goes before the next bulk send).
A 429 answered to anyone holds every call of the bot until retry_after has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.delivery.claiming import Claiming
from bot.delivery.jobs import EditJob, Outcome, SendJob, WorkerStats
from bot.delivery.sending import Sending
from bot.delivery.status import StatusMessages
from bot.gate import Limits, gate_of
from bot.gate.pacing import REQUEST_TIMEOUT
from config.clock import Clock

log = logging.getLogger("branchbot.delivery")


class DeliveryWorker(Claiming, Sending, StatusMessages):
    def __init__(
        self,
        bot: Bot,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        worker_id: str,
        *,
        global_rate: float = 30,
        per_chat_interval: float = 1.0,
        group_per_minute: int = 20,
        batch: int | None = None,
        lease_seconds: float = 60,
        headroom: float = 0.03,
        max_in_flight: int = 16,
        idle_seconds: float = 1.0,
        status_interval: float = 2.0,
        retry_base: float = 2.0,
        retry_max: float = 300.0,
        db_backoff: float = 0.5,
    ) -> None:
        self.bot = bot
        self.sm = sessionmaker
        self.clock = clock
        self.worker_id = worker_id
        self.batch = batch or max(10, int(global_rate * 2))
        self.low_water = max(1, self.batch // 2)
        self.lease_seconds = lease_seconds
        # Never start a send this close to the end of its lease: another worker may take the row then.
        self.lease_margin = min(10.0, lease_seconds / 3)
        self.idle_seconds = idle_seconds
        self.status_interval = status_interval
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.db_backoff = db_backoff
        # The bot's gate (bot/gate) holds Telegram's limits for every call of the bot; the worker
        # asks it which chats may be written to and waits there for each send's place. A bot
        # without one (a test's, a one-off run's) gets one with these limits.
        self.gate = gate_of(
            bot,
            Limits(
                rate=global_rate,
                per_chat_interval=per_chat_interval,
                group_per_minute=group_per_minute,
                headroom=headroom,
            ),
        )
        self.limits = self.gate.state
        self.stats = WorkerStats()
        self._max_in_flight = max_in_flight
        self._sends: list[SendJob] = []
        self._edits: list[EditJob] = []
        self._queued_ids: set[int] = set()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._holding: SendJob | EditJob | None = None  # picked by the dispatcher, waiting for its slot
        self._outcomes: list[Outcome] = []
        self._writing = False
        self._reading_status = False
        self._dirty: dict[int, bool] = {}  # notice id -> final edit wanted
        self._last_edit: dict[int, float] = {}  # notice id -> loop time of the last edit queued
        self._last_text: dict[int, str] = {}
        self._wake_feeder = asyncio.Event()
        self._wake_dispatcher = asyncio.Event()
        self._wake_recorder = asyncio.Event()
        self._wake_status = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)

    # -- public --

    def wake(self) -> None:
        """Something was just enqueued in this process: look for due rows now."""
        self._wake_feeder.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; database and Telegram errors are logged and outlived."""
        await self._run(stop, drain=False, horizon=0.0)

    async def drain(self, horizon: float = 0.0) -> None:
        """Send until nothing is due (for tests and one-off runs).

        With `horizon` > 0 (and a real clock) also wait for rows due within that many seconds,
        e.g. those put back by a 429 or a 5xx.
        """
        await self._run(asyncio.Event(), drain=True, horizon=horizon)

    # -- the loops --

    async def _run(self, stop: asyncio.Event, *, drain: bool, horizon: float) -> None:
        done = asyncio.Event()
        dispatcher = asyncio.create_task(self._supervised(self._dispatcher, done), name="delivery-dispatch")
        status = asyncio.create_task(self._supervised(self._status_loop, done), name="delivery-status")
        recorder = asyncio.create_task(self._supervised(self._recorder, done), name="delivery-record")
        relay = asyncio.create_task(self._relay(stop), name="delivery-stop")
        try:
            await self._feeder(stop, drain, horizon)
        finally:
            done.set()
            for t in (dispatcher, status, relay):
                t.cancel()
            await asyncio.gather(dispatcher, status, relay, return_exceptions=True)
            # Let sends already on the wire finish and their outcomes be written.
            if self._in_flight:
                await asyncio.wait(set(self._in_flight), timeout=REQUEST_TIMEOUT + 5)
            self._wake_recorder.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(recorder, timeout=30)
            await self._release_unsent()
            self.stats.paused_seconds = self.limits.paused_total

    async def _supervised(
        self, loop: Callable[[asyncio.Event], Awaitable[None]], done: asyncio.Event
    ) -> None:
        """Run one of the worker's loops; should it fail on something unforeseen, log and restart it."""
        while True:
            try:
                await loop(done)
                return
            except Exception as e:
                log.error("delivery %s failed (%s); restarting it", loop.__name__, type(e).__name__)
                await asyncio.sleep(1.0)

    async def _relay(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake_feeder.set()  # the feeder may be waiting for work: let it see the stop at once

    async def _sleep(self, event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    def _ready_soon(self) -> int:
        now = asyncio.get_running_loop().time()
        return sum(1 for j in self._sends if self.limits.chat_ready_at(j.chat_id, now) <= now + 1.0)

    def _busy(self) -> bool:
        return bool(
            self._sends
            or self._edits
            or self._holding is not None
            or self._in_flight
            or self._outcomes
            or self._writing
            or self._dirty
            or self._reading_status
        )

    async def _feeder(self, stop: asyncio.Event, drain: bool, horizon: float) -> None:
        failures = 0
        while not stop.is_set():
            self._wake_feeder.clear()
            claimed = 0
            if self._ready_soon() < self.low_water and len(self._sends) < 4 * self.batch:
                try:
                    claimed = await self._claim()
                    failures = 0
                except Exception as e:
                    failures += 1
                    self.stats.db_errors += 1
                    log.warning("claiming deliveries failed (%s); retrying", type(e).__name__)
                    await self._sleep(stop, min(self.db_backoff * 2 ** (failures - 1), 10.0))
                    continue
                if claimed:
                    self._wake_dispatcher.set()
                    continue
                if drain and not self._busy():
                    wait = await self._next_due_in(horizon)
                    if wait is None:
                        return
                    await asyncio.sleep(max(wait, 0.02))
                    continue
            await self._sleep(self._wake_feeder, min(self.idle_seconds, 0.05) if drain else self.idle_seconds)

    def _pick(self, now: float) -> tuple[SendJob | EditJob | None, float]:
        """The first job whose chat may be written to now, or None and when one may."""
        earliest = float("inf")
        for queue in (self._edits, self._sends):
            for i, job in enumerate(queue):
                at = self.limits.chat_ready_at(job.chat_id, now)
                if at <= now:
                    return queue.pop(i), now
                earliest = min(earliest, at)
        return None, earliest

    async def _dispatcher(self, done: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        last_prune = loop.time()
        while not done.is_set():
            self._wake_dispatcher.clear()
            now = loop.time()
            if now - last_prune > 30:
                self.limits.forget_idle()
                last_prune = now
            job, at = self._pick(now)
            if job is None:
                timeout = self.idle_seconds if at == float("inf") else max(at - now, 0.001)
                await self._sleep(self._wake_dispatcher, timeout)
                continue
            self._holding = job
            acquired = False
            try:
                await self._slots.acquire()
                acquired = True
                if isinstance(job, SendJob):
                    await self.limits.admit(job.chat_id, bulk=True)
                    if not self._lease_ok(job):
                        self.limits.answered(job.chat_id)  # the place goes unused
                        self._slots.release()
                        continue
                else:
                    left = await self.limits.pause_left()
                    while left > 0:
                        await asyncio.sleep(left)
                        left = await self.limits.pause_left()
            except BaseException:
                if acquired:
                    self._slots.release()
                self._requeue(job)
                raise
            finally:
                self._holding = None
            task = asyncio.create_task(self._do(job))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            if len(self._sends) < self.low_water:
                self._wake_feeder.set()

    def _requeue(self, job: SendJob | EditJob) -> None:
        if isinstance(job, SendJob):
            self._sends.insert(0, job)
        else:
            self._edits.insert(0, job)

    def _lease_ok(self, job: SendJob) -> bool:
        if job.claimed_until is None:
            return True
        left = (job.claimed_until - self.clock.now()).total_seconds()
        if left >= self.lease_margin:
            return True
        # Too late to send safely: the lease runs out, and the row is claimed again then.
        self.stats.lease_dropped += 1
        self._queued_ids.discard(job.id)
        log.info("delivery %s: lease nearly over, left for a later claim", job.id)
        return False

    async def _do(self, job: SendJob | EditJob) -> None:
        try:
            if isinstance(job, SendJob):
                await self._send(job)
            else:
                await self._edit(job)
        except Exception as e:  # never let one message take the worker down
            log.error("delivery job failed unexpectedly (%s)", type(e).__name__)
        finally:
            self._slots.release()
