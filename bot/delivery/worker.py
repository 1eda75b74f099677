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

Pacing. Telegram allows about 30 messages/s per bot, 1/s per chat and 20/min per group, and
counts them at its own end, after network jitter. Sends go out evenly spaced (aiolimiter's leaky
bucket, which never lets two go at once), and a window allows at most `global_rate` sends in any
1 s x (1 + headroom), each counted from when Telegram's answer came back: whatever the jitter, a
send then reaches Telegram after the one it replaces in the window has left Telegram's window
too (see AnswerWindow). Per chat, sends (and the edits of a notice's status message) are spaced
by `per_chat_interval`, and groups keep 20 per minute, with the same few percent of headroom.
Several workers against one bot share its 30/s: give each `global_rate=30 / n`.

Logs carry ids and error class names only, never texts or names.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import random
import signal
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import EditMessageText, SendDocument, SendMessage, SendPhoto
from aiogram.methods.base import TelegramMethod
from aiolimiter import AsyncLimiter
from pydantic import ValidationError
from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.clock import Clock
from content.i18n import normalize_locale, texts
from storage import notices as notices_store
from storage import outbox
from storage.errors import NotFound
from storage.models import Delivery, DeliveryStatus, Notice, NoticeStatus, Person

log = logging.getLogger("branchbot.delivery")

SEND_METHODS: dict[str, type[TelegramMethod[Any]]] = {
    "sendMessage": SendMessage,
    "sendPhoto": SendPhoto,
    "sendDocument": SendDocument,
}
# Seconds added to every retry_after: our clock starts it when the answer arrives, Telegram's
# when it answered, so ours ends later anyway; this covers clock granularity.
PAUSE_MARGIN = 0.05
REQUEST_TIMEOUT = 30
NOT_MODIFIED = "message is not modified"


# ---- pacing ----


class Window:
    """At most `limit` events in any interval of `seconds`: a sliding log of event times.

    The same rule Telegram (and the emulator, emulator/limits.py) applies at its end: an event
    at t is allowed when fewer than `limit` events fell in (t - seconds, t].
    """

    def __init__(self, limit: int, seconds: float) -> None:
        if limit < 1 or seconds <= 0:
            raise ValueError("a window needs limit >= 1 and seconds > 0")
        self.limit = limit
        self.seconds = seconds
        self._times: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._times and self._times[0] + self.seconds <= now:
            self._times.popleft()

    def ready_at(self, now: float) -> float:
        """The earliest time (>= now) at which one more event is allowed."""
        self._prune(now)
        if len(self._times) < self.limit:
            return now
        return self._times[-self.limit] + self.seconds

    def note(self, now: float) -> None:
        self._times.append(now)

    def idle(self, now: float) -> bool:
        self._prune(now)
        return not self._times


class ChatPacer:
    """Per chat: one message per `interval`; group chats (id < 0) also `group_limit` per minute."""

    def __init__(self, interval: float, group_limit: int, headroom: float) -> None:
        self.interval = interval * (1 + headroom)
        self.group_limit = group_limit
        self.group_seconds = 60.0 * (1 + headroom)
        self._chats: dict[int, Window] = {}
        self._groups: dict[int, Window] = {}

    def ready_at(self, chat_id: int, now: float) -> float:
        at = now
        w = self._chats.get(chat_id)
        if w is not None:
            at = max(at, w.ready_at(now))
        g = self._groups.get(chat_id)
        if g is not None:
            at = max(at, g.ready_at(now))
        return at

    def note(self, chat_id: int, now: float) -> None:
        self._chats.setdefault(chat_id, Window(1, self.interval)).note(now)
        if chat_id < 0:
            self._groups.setdefault(chat_id, Window(self.group_limit, self.group_seconds)).note(now)

    def forget_idle(self, now: float) -> None:
        """Drop the logs of chats with nothing recent, so a big broadcast leaves no residue."""
        for logs in (self._chats, self._groups):
            for chat_id in [c for c, w in logs.items() if w.idle(now)]:
                del logs[chat_id]

    def __len__(self) -> int:
        return len(self._chats)


class AnswerWindow:
    """At most `limit` sends in any `seconds`, each counted from when its answer came back.

    Telegram counts a send when it arrives, somewhere between our request and its answer; how
    long the request takes on the way is unknown (network jitter, a busy server). Counting from
    the answer is the one rule that keeps Telegram's count under the limit whatever the jitter:
    a send started `seconds` after an earlier one was answered arrives at least `seconds` after
    that one arrived. A send still on the wire holds its place until answered.
    """

    def __init__(self, limit: int, seconds: float) -> None:
        if limit < 1 or seconds <= 0:
            raise ValueError("a window needs limit >= 1 and seconds > 0")
        self.limit = limit
        self.seconds = seconds
        self.open = 0  # sent, not answered yet
        self._answered: deque[float] = deque()  # answer times, in the order they came

    def ready_at(self, now: float) -> float:
        """When one more send may start (inf: only once a send on the wire is answered)."""
        while self._answered and self._answered[0] + self.seconds <= now:
            self._answered.popleft()
        over = len(self._answered) + self.open - self.limit  # how many must leave the window first
        if over < 0:
            return now
        if over >= len(self._answered):
            return math.inf
        return self._answered[over] + self.seconds

    def start(self) -> None:
        self.open += 1

    def answered(self, now: float) -> None:
        self.open = max(0, self.open - 1)
        self._answered.append(now)


class GlobalPacer:
    """The bot's overall rate: evenly spaced sends, a window counted from the answers, and the
    pause a 429 imposes on every send of the bot."""

    def __init__(self, rate: float, headroom: float) -> None:
        if rate <= 0:
            raise ValueError("global_rate must be positive")
        # Evenly spaced at the nominal rate. The bucket holds one and a half sends: a send the
        # event loop woke late for is made up by sending the next up to half a period early
        # (a bucket of one would lose every late wake-up for good), yet two never go at once.
        self.spacing = AsyncLimiter(1.5, 1.5 / rate)
        # The window keeps Telegram's own count under the limit (see AnswerWindow).
        self.window = AnswerWindow(max(1, int(rate)), 1.0 + headroom) if rate >= 1 else None
        self.paused_until = 0.0
        self.paused_total = 0.0
        self._answer = asyncio.Event()

    def pause(self, seconds: float, now: float) -> None:
        until = now + seconds + PAUSE_MARGIN
        if until > self.paused_until:
            self.paused_total += until - max(now, self.paused_until)
            self.paused_until = until

    def pause_left(self, now: float) -> float:
        return max(0.0, self.paused_until - now)

    async def acquire(self) -> None:
        """Wait for the next send slot; it is taken when this returns. Call `answered()` when
        the send's answer (or its failure) comes back."""
        loop = asyncio.get_running_loop()
        await self.spacing.acquire()
        while True:
            now = loop.time()
            ready = max(self.paused_until, self.window.ready_at(now) if self.window else now)
            if ready <= now:
                if self.window is not None:
                    self.window.start()
                return
            self._answer.clear()
            wait = ready - now if ready != math.inf else REQUEST_TIMEOUT
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answer.wait(), wait)

    def answered(self) -> None:
        if self.window is not None:
            self.window.answered(asyncio.get_running_loop().time())
        self._answer.set()


# ---- jobs and outcomes ----


@dataclass(slots=True)
class _Send:
    id: int
    chat_id: int
    method: TelegramMethod[Any]
    claimed_until: datetime | None
    notice_id: int | None
    attempts: int


@dataclass(slots=True)
class _Edit:
    notice_id: int
    chat_id: int
    message_id: int
    text: str
    final: bool


@dataclass(frozen=True, slots=True)
class _Outcome:
    delivery_id: int
    notice_id: int | None
    kind: str  # sent | blocked | retry | failed
    message_id: int | None = None
    not_before: datetime | None = None
    error: str = ""
    count_attempt: bool = True


@dataclass
class WorkerStats:
    """What the worker did, for logs and the benchmark (counts only)."""

    sent: int = 0
    blocked: int = 0
    failed: int = 0
    retried: int = 0
    rate_limited: int = 0  # 429 answers
    lease_dropped: int = 0  # claimed rows left unsent because their lease was running out
    edits: int = 0
    db_errors: int = 0
    first_send: float | None = None  # loop time
    last_send: float | None = None
    paused_seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)


class BadPayload(ValueError):
    pass


def build_method(chat_id: int, payload: dict[str, Any]) -> TelegramMethod[Any]:
    """The aiogram method for an outbox payload (see storage/outbox.py for its shape)."""
    fields = dict(payload)
    name = fields.pop("method", "sendMessage")
    cls = SEND_METHODS.get(name)
    if cls is None:
        raise BadPayload(f"unknown method {name!r}")
    try:
        return cls(chat_id=chat_id, **fields)
    except (ValidationError, TypeError) as e:
        raise BadPayload(type(e).__name__) from None


def _error_text(e: BaseException) -> str:
    msg = getattr(e, "message", None)
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


# ---- the worker ----


class DeliveryWorker:
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
        self.pacer = GlobalPacer(global_rate, headroom)
        self.chats = ChatPacer(per_chat_interval, group_per_minute, headroom)
        self.stats = WorkerStats()
        self._max_in_flight = max_in_flight
        self._sends: list[_Send] = []
        self._edits: list[_Edit] = []
        self._queued_ids: set[int] = set()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._holding: _Send | _Edit | None = None  # picked by the dispatcher, waiting for its slot
        self._outcomes: list[_Outcome] = []
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
            self.stats.paused_seconds = self.pacer.paused_total

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
        return sum(1 for j in self._sends if self.chats.ready_at(j.chat_id, now) <= now + 1.0)

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

    async def _claim(self) -> int:
        now = self.clock.now()
        async with self.sm() as s:
            rows = await outbox.claim_due(s, self.worker_id, now, self.batch, self.lease_seconds)
            # Only a notice's own rows count towards its status (a nudge about it does not).
            claimed = [
                (
                    r.id,
                    r.chat_id,
                    dict(r.payload or {}),
                    r.claimed_until,
                    r.notice_id if r.kind == notices_store.KIND_NOTICE else None,
                    r.attempts,
                )
                for r in rows
            ]
            await s.commit()
        for rid, chat_id, payload, until, notice_id, attempts in claimed:
            if rid in self._queued_ids:
                continue
            try:
                method = build_method(chat_id, payload)
            except BadPayload as e:
                # Checked before pacing: a payload Telegram would refuse never takes a send slot.
                log.warning("delivery %s: unusable payload (%s)", rid, e)
                self._record(_Outcome(rid, notice_id, "failed", error=f"payload: {e}"))
                continue
            self._queued_ids.add(rid)
            self._sends.append(_Send(rid, chat_id, method, until, notice_id, attempts))
        if claimed:
            log.debug("worker %s claimed %d deliveries", self.worker_id, len(claimed))
        return len(claimed)

    async def _next_due_in(self, horizon: float) -> float | None:
        """Seconds until the next pending row can be claimed, if that is within `horizon`."""
        if horizon <= 0:
            return None
        now = self.clock.now()
        free_at = case(
            (
                Delivery.claimed_until.is_not(None) & (Delivery.claimed_until > Delivery.not_before),
                Delivery.claimed_until,
            ),
            else_=Delivery.not_before,
        )
        try:
            async with self.sm() as s:
                nxt = await s.scalar(
                    select(func.min(free_at)).where(Delivery.status == DeliveryStatus.PENDING)
                )
        except Exception as e:
            log.warning("looking for pending deliveries failed (%s)", type(e).__name__)
            return 0.5
        if nxt is None:
            return None
        if isinstance(nxt, str):  # in case a backend hands the CASE back untyped
            nxt = datetime.fromisoformat(nxt)
        if nxt.tzinfo is None:
            nxt = nxt.replace(tzinfo=UTC)
        wait = (nxt - now).total_seconds()
        return wait if wait <= horizon else None

    def _pick(self, now: float) -> tuple[_Send | _Edit | None, float]:
        """The first job whose chat may be written to now, or None and when one may."""
        earliest = float("inf")
        for queue in (self._edits, self._sends):
            for i, job in enumerate(queue):
                at = self.chats.ready_at(job.chat_id, now)
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
                self.chats.forget_idle(now)
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
                if isinstance(job, _Send):
                    await self.pacer.acquire()
                    if not self._lease_ok(job):
                        self.pacer.answered()  # the slot goes unused
                        self._slots.release()
                        continue
                else:
                    left = self.pacer.pause_left(loop.time())
                    while left > 0:
                        await asyncio.sleep(left)
                        left = self.pacer.pause_left(loop.time())
            except BaseException:
                if acquired:
                    self._slots.release()
                self._requeue(job)
                raise
            finally:
                self._holding = None
            self.chats.note(job.chat_id, loop.time())
            task = asyncio.create_task(self._do(job))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            if len(self._sends) < self.low_water:
                self._wake_feeder.set()

    def _requeue(self, job: _Send | _Edit) -> None:
        if isinstance(job, _Send):
            self._sends.insert(0, job)
        else:
            self._edits.insert(0, job)

    def _lease_ok(self, job: _Send) -> bool:
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

    async def _do(self, job: _Send | _Edit) -> None:
        try:
            if isinstance(job, _Send):
                await self._send(job)
            else:
                await self._edit(job)
        except Exception as e:  # never let one message take the worker down
            log.error("delivery job failed unexpectedly (%s)", type(e).__name__)
        finally:
            self._slots.release()

    def _backoff(self, attempts: int) -> float:
        base = min(self.retry_max, self.retry_base * 2**attempts)
        return base * random.uniform(0.8, 1.2)

    async def _send(self, job: _Send) -> None:
        loop = asyncio.get_running_loop()
        out: _Outcome
        try:
            try:
                result = await self.bot(job.method, request_timeout=REQUEST_TIMEOUT)
            finally:
                self.pacer.answered()
        except TelegramRetryAfter as e:
            self.stats.rate_limited += 1
            self.pacer.pause(e.retry_after, loop.time())
            log.info("delivery %s: 429, every send waits %s s", job.id, e.retry_after)
            out = _Outcome(
                job.id,
                job.notice_id,
                "retry",
                not_before=self.clock.now() + timedelta(seconds=e.retry_after + PAUSE_MARGIN),
                error="TelegramRetryAfter",
                count_attempt=False,
            )
        except TelegramForbiddenError:
            out = _Outcome(job.id, job.notice_id, "blocked")
        except TelegramUnauthorizedError as e:
            # The token itself is refused: hold every send a while rather than burning attempts.
            log.error("delivery %s: the bot token was refused; pausing sends", job.id)
            self.pacer.pause(60, loop.time())
            out = self._retry(job, e, delay=60, count=False)
        except TelegramMigrateToChat as e:
            out = _Outcome(job.id, job.notice_id, "failed", error=_error_text(e))
        except (TelegramServerError, TelegramNetworkError, ClientDecodeError, OSError, TimeoutError) as e:
            log.info("delivery %s: %s, will retry", job.id, type(e).__name__)
            out = self._retry(job, e)
        except TelegramAPIError as e:
            # 400 Bad Request, 404, 413...: the message itself is refused; retrying cannot help.
            log.info("delivery %s: refused (%s)", job.id, type(e).__name__)
            out = _Outcome(job.id, job.notice_id, "failed", error=_error_text(e))
        except Exception as e:
            log.warning("delivery %s: unexpected %s, will retry", job.id, type(e).__name__)
            out = self._retry(job, e)
        else:
            now = loop.time()
            if self.stats.first_send is None:
                self.stats.first_send = now
            self.stats.last_send = now
            out = _Outcome(job.id, job.notice_id, "sent", message_id=getattr(result, "message_id", None))
        self._finish(job, out)

    def _retry(
        self, job: _Send, e: BaseException, *, delay: float | None = None, count: bool = True
    ) -> _Outcome:
        wait = delay if delay is not None else self._backoff(job.attempts)
        return _Outcome(
            job.id,
            job.notice_id,
            "retry",
            not_before=self.clock.now() + timedelta(seconds=wait),
            error=_error_text(e),
            count_attempt=count,
        )

    def _finish(self, job: _Send, out: _Outcome) -> None:
        self._queued_ids.discard(job.id)
        self._record(out)

    def _record(self, out: _Outcome) -> None:
        self.stats.outcomes[out.kind] = self.stats.outcomes.get(out.kind, 0) + 1
        if out.kind == "sent":
            self.stats.sent += 1
        elif out.kind == "blocked":
            self.stats.blocked += 1
        elif out.kind == "failed":
            self.stats.failed += 1
        else:
            self.stats.retried += 1
        self._outcomes.append(out)
        self._wake_recorder.set()

    async def _recorder(self, done: asyncio.Event) -> None:
        failures = 0
        while True:
            if not self._outcomes:
                if done.is_set() and not self._in_flight:
                    return
                self._wake_recorder.clear()
                await self._sleep(self._wake_recorder, 1.0)
                continue
            batch, self._outcomes = self._outcomes, []
            self._writing = True
            try:
                finished = await self._write(batch)
                failures = 0
            except Exception as e:
                failures += 1
                self.stats.db_errors += 1
                log.warning("recording %d outcomes failed (%s); retrying", len(batch), type(e).__name__)
                self._outcomes[:0] = batch
                if done.is_set() and failures >= 5:
                    log.error("giving up recording %d outcomes; their rows will be sent again", len(batch))
                    self._outcomes.clear()
                    self._writing = False
                    return
                await asyncio.sleep(min(self.db_backoff * 2 ** (failures - 1), 5.0))
                continue
            finally:
                self._writing = False
            touched = {o.notice_id for o in batch if o.notice_id is not None}
            for n in touched:
                self._dirty[n] = self._dirty.get(n, False) or n in finished
            if finished:
                self._wake_status.set()
            self._wake_feeder.set()

    async def _write(self, batch: list[_Outcome]) -> set[int]:
        """Write outcomes in one transaction; return the notices that are now DONE."""
        now = self.clock.now()
        notice_ids: set[int] = set()
        async with self.sm() as s:
            for o in batch:
                try:
                    if o.kind == "sent":
                        await outbox.mark_sent(s, o.delivery_id, o.message_id, now)
                    elif o.kind == "blocked":
                        await outbox.mark_blocked(s, o.delivery_id, now)
                    elif o.kind == "failed":
                        await outbox.mark_failed(s, o.delivery_id, o.error)
                    else:
                        assert o.not_before is not None
                        await outbox.mark_retry(
                            s, o.delivery_id, o.not_before, o.error, count_attempt=o.count_attempt
                        )
                except NotFound:
                    continue  # the row went with its notice or person
                if o.notice_id is not None:
                    notice_ids.add(o.notice_id)
            finished = {n for n in sorted(notice_ids) if await notices_store.finish_if_done(s, n, now)}
            await s.commit()
        return finished

    # -- the sender's status message --

    async def _status_loop(self, done: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            self._wake_status.clear()
            now = loop.time()
            due = [
                n
                for n, final in self._dirty.items()
                if final or now - self._last_edit.get(n, -1e9) >= self.status_interval
            ]
            if due:
                flags = {n: self._dirty[n] for n in due}
                try:
                    await self._queue_edits(due)
                except Exception as e:
                    for n, final in flags.items():  # read again next round
                        self._dirty[n] = self._dirty.get(n, False) or final
                    self.stats.db_errors += 1
                    log.warning("reading notice progress failed (%s)", type(e).__name__)
                    await self._sleep(self._wake_status, min(self.db_backoff * 2, 5.0))
                    continue
            waits = [
                self._last_edit.get(n, -1e9) + self.status_interval - now for n in self._dirty if n not in due
            ]
            await self._sleep(self._wake_status, max(0.01, min(waits, default=self.status_interval)))

    async def _queue_edits(self, notice_ids: list[int]) -> None:
        self._reading_status = True
        try:
            await self._read_status(notice_ids)
        finally:
            self._reading_status = False
        self._wake_dispatcher.set()

    async def _read_status(self, notice_ids: list[int]) -> None:
        loop = asyncio.get_running_loop()
        async with self.sm() as s:
            for n in notice_ids:
                final = self._dirty.pop(n, False)
                notice = await s.get(Notice, n)
                if notice is None or notice.status_chat_id is None or notice.status_message_id is None:
                    continue
                counts = await _notice_counts(s, n)
                locale = None
                if notice.sender_id is not None:
                    locale = await s.scalar(select(Person.locale).where(Person.id == notice.sender_id))
                _ = texts(normalize_locale(locale))
                done = notice.status is NoticeStatus.DONE
                text = _("notices.status.done" if done else "notices.status.progress", **counts)
                if text == self._last_text.get(n):
                    continue
                self._last_edit[n] = loop.time()
                # One edit per notice in the queue: a newer count replaces an older one.
                self._edits = [e for e in self._edits if e.notice_id != n]
                self._edits.append(
                    _Edit(n, notice.status_chat_id, notice.status_message_id, text, final or done)
                )

    async def _edit(self, job: _Edit) -> None:
        try:
            await self.bot(
                EditMessageText(
                    chat_id=job.chat_id, message_id=job.message_id, text=job.text, parse_mode="HTML"
                ),
                request_timeout=REQUEST_TIMEOUT,
            )
        except TelegramRetryAfter as e:
            self.stats.rate_limited += 1
            self.pacer.pause(e.retry_after, asyncio.get_running_loop().time())
            self._dirty[job.notice_id] = self._dirty.get(job.notice_id, False) or job.final
            return
        except TelegramBadRequest as e:
            if NOT_MODIFIED not in str(e.message):
                log.info("status of notice %s: edit refused (%s)", job.notice_id, type(e).__name__)
                return
        except (TelegramServerError, TelegramNetworkError, ClientDecodeError, OSError, TimeoutError) as e:
            log.info("status of notice %s: %s, will try again", job.notice_id, type(e).__name__)
            self._dirty[job.notice_id] = self._dirty.get(job.notice_id, False) or job.final
            return
        except TelegramAPIError as e:
            log.info("status of notice %s: edit refused (%s)", job.notice_id, type(e).__name__)
            return
        self.stats.edits += 1
        self._last_text[job.notice_id] = job.text
        if job.final:  # nothing more to say about this notice: forget it
            self._last_edit.pop(job.notice_id, None)
            self._last_text.pop(job.notice_id, None)

    # -- stopping --

    async def _release_unsent(self) -> None:
        """Give back rows claimed but not sent, so a restart or another worker takes them at once."""
        ids = [j.id for j in self._sends]
        self._sends.clear()
        self._queued_ids.difference_update(ids)
        if not ids:
            return
        try:
            async with self.sm() as s:
                await s.execute(
                    update(Delivery)
                    .where(
                        Delivery.id.in_(ids),
                        Delivery.claimed_by == self.worker_id,
                        Delivery.status == DeliveryStatus.PENDING,
                    )
                    .values(claimed_by=None, claimed_until=None)
                    .execution_options(synchronize_session=False)
                )
                await s.commit()
        except Exception as e:
            log.warning("releasing %d unsent deliveries failed (%s)", len(ids), type(e).__name__)


async def _notice_counts(s: AsyncSession, notice_id: int) -> dict[str, int]:
    rows = await s.execute(
        select(Delivery.status, func.count())
        .where(Delivery.notice_id == notice_id, Delivery.kind == notices_store.KIND_NOTICE)
        .group_by(Delivery.status)
    )
    by = {DeliveryStatus(st): int(n) for st, n in rows}
    return {
        "sent": by.get(DeliveryStatus.SENT, 0),
        "failed": by.get(DeliveryStatus.FAILED, 0),
        "blocked": by.get(DeliveryStatus.BLOCKED, 0),
        "pending": by.get(DeliveryStatus.PENDING, 0),
        "total": sum(by.values()),
    }


# ---- running it on its own: python -m bot.delivery ----


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bot.delivery", description="Send the outbox to Telegram.")
    p.add_argument("--db", help="database URL (default: DATABASE_URL)")
    p.add_argument("--api", help="Bot API base URL (default: TELEGRAM_API_URL)")
    p.add_argument("--token", help="bot token (default: BOT_TOKEN)")
    p.add_argument("--worker-id", default=f"{socket.gethostname()}:{os.getpid()}")
    p.add_argument("--rate", type=float, default=30.0, help="messages per second for this worker")
    p.add_argument("--lease", type=int, default=60, help="seconds a claim lasts")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace, on_ready: Callable[[], None] | None = None) -> None:
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    from config.settings import get_settings
    from storage.db import make_engine, make_sessionmaker

    settings = None if (args.db and args.api and args.token) else get_settings()
    db = args.db or (settings.database_url if settings else "")
    api = args.api or (settings.telegram_api_url if settings else "")
    token = args.token or (settings.require_token() if settings else "")
    engine = make_engine(db)
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api)))
    worker = DeliveryWorker(
        bot,
        make_sessionmaker(engine),
        Clock(),
        args.worker_id,
        global_rate=args.rate,
        lease_seconds=args.lease,
        batch=args.batch,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if on_ready is not None:
            on_ready()
        await worker.run(stop)
    finally:
        await bot.session.close()
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    from config.logs import setup_logging

    args = parse_args(argv)
    setup_logging(args.log_level)
    asyncio.run(serve(args, on_ready=lambda: print("ready", flush=True)))


if __name__ == "__main__":
    main()
