"""Broadcast benchmark: the delivery worker at Telegram's real limits, against the emulator
running in its own process (as Telegram would be).

    python -m bench.broadcast [--scale 1] [--backend sqlite|postgres] [--rate 30] [--latency 0.05]

1. A notice to 3,000 members (x scale), 3% of whom blocked the bot, with three 429s injected
   by the emulator (retry_after 1 s, at a quarter, half and three quarters of the way). Reported:
   the achieved send rate as a fraction of the allowed rate, the 429s our own pacing caused, the
   sends made before a retry_after had passed, lost and duplicate messages. A second, smaller
   notice goes out with the emulator answering after `--latency` (sends on the wire when a 429
   comes back are early by nature). The same notice sent by the usual hand-written aiogram loop
   (send, sleep 1/30 s, on a 429 sleep retry_after and retry), on the same emulator in the same
   run, is the baseline.
2. 10,000 reminders (x scale: a hundred branches of a hundred members, each branch's monthly
   nudge due at the same moment), ticked by the scheduler and sent by the worker: the delay from
   the due time to the first send, and the total time against the rate-limit ideal.

With `--workers 2` (PostgreSQL only) the bench instead sends one notice by 1 and by 2 delivery
worker processes (`python -m bot.delivery`) side by side, the gate's shared state in Redis and
in PostgreSQL: the workers share the bot's one budget. Results go to the broadcast-workers
markers.

Results go to docs/benchmarks.md between the broadcast markers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bench.doc import DOC, machine_line, write_section
from bench.throughput import stop_process
from bot.delivery import DeliveryWorker
from bot.scheduler import Scheduler
from config.clock import Clock
from content.pack import get_pack
from emulator.client import RemoteEmulator
from storage import notices
from storage.access import load_actor
from storage.db import make_engine, make_sessionmaker, utcnow
from storage.migrate import upgrade
from storage.models import (
    Delivery,
    DeliveryStatus,
    Membership,
    Org,
    OrgKind,
    Person,
    ReminderKind,
    ReminderRule,
    Role,
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "710001:bench-broadcast-AAAAAAAAAAAAAAAAAAAAAAAAAAAA"
PG_BASE = os.environ.get("BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
NOTICE_USERS = 6_100_000_000
REMINDER_USERS = 6_200_000_000
BASELINE_USERS = 6_300_000_000
SLOW_USERS = 6_400_000_000
ASKER_USERS = 6_500_000_000
WORKERS_USERS = 6_600_000_000
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# People who write to the bot while the notice goes out: one answer every REPLY_EVERY seconds.
ASKERS = 20
REPLY_EVERY = 0.25


def _say(text: str) -> None:
    print(text, flush=True)


# ---- the emulator in its own process ----


@contextlib.asynccontextmanager
async def emulator_process(rate: float, log: Path) -> Any:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "emulator",
            "--port",
            "0",
            "--token",
            TOKEN,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=fd,
        )
    finally:
        os.close(fd)
    try:
        assert proc.stdout is not None
        base = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        if not base.startswith("http"):
            raise RuntimeError(f"the emulator did not start: {base!r}")
        async with RemoteEmulator(base) as emu:
            await emu.enable_limits(global_per_sec=int(rate))  # 1/s per chat, 20/min per group
            yield base, emu
    finally:
        await stop_process(proc)


@dataclass
class World:
    """What a run of the bench sends through: a migrated database of its own and the emulator."""

    db_url: str
    engine: AsyncEngine
    sm: async_sessionmaker[AsyncSession]
    base: str  # the emulator's Bot API address
    emu: RemoteEmulator


@contextlib.asynccontextmanager
async def bench_world(args: argparse.Namespace, tmp: Path, *, postgres: bool) -> AsyncIterator[World]:
    """A new database (on `args.pg`, or SQLite in `tmp`) and the emulator in its own process at
    the allowed rate; both are gone afterwards."""
    if postgres:
        from tests.dbutil import create_pg_database, drop_pg_database

        db_url = await create_pg_database(args.pg)
    else:
        db_url = f"sqlite+aiosqlite:///{tmp / 'broadcast.db'}"
    try:
        await asyncio.to_thread(upgrade, db_url)
        engine = make_engine(db_url)
        try:
            async with emulator_process(args.rate, tmp / "emulator.log") as (base, emu):
                yield World(db_url, engine, make_sessionmaker(engine), base, emu)
        finally:
            await engine.dispose()
    finally:
        if postgres:
            await drop_pg_database(db_url, args.pg)


def publish(args: argparse.Namespace, section: str, text: str) -> None:
    """Into docs/benchmarks.md (or `--out`) between the section's markers, or only printed."""
    if args.no_write:
        _say(text)
    else:
        write_section(section, text, Path(args.out))
        _say(f"written to {args.out}")


async def add_users(emu: RemoteEmulator, first_id: int, n: int) -> list[int]:
    ids = [first_id + i for i in range(n)]
    for i in range(0, n, 100):
        await asyncio.gather(*(emu.add_user(f"党员{u}", id=u) for u in ids[i : i + 100]))
    return ids


# ---- data ----


async def seed_branches(
    engine: AsyncEngine, branches: list[list[int]], *, name: str, secretary_ids: list[int] | None = None
) -> list[int]:
    """Branches under one committee, each with members of these Telegram ids; return the org ids."""
    now = utcnow()
    org_ids: list[int] = []
    async with engine.begin() as conn:
        top = await conn.scalar(
            insert(Org)
            .values(
                name=f"{name}党工委",
                kind=OrgKind.COMMITTEE,
                path="/",
                timezone="Asia/Shanghai",
                created_at=now,
            )
            .returning(Org.id)
        )
        await conn.execute(Org.__table__.update().where(Org.id == top).values(path=f"/{top}/"))
        for b, tg_ids in enumerate(branches):
            org_id = await conn.scalar(
                insert(Org)
                .values(
                    name=f"{name}支部{b}",
                    kind=OrgKind.BRANCH,
                    parent_id=top,
                    path="/",
                    category="trade",
                    timezone="Asia/Shanghai",
                    created_at=now,
                )
                .returning(Org.id)
            )
            await conn.execute(
                Org.__table__.update().where(Org.id == org_id).values(path=f"/{top}/{org_id}/")
            )
            org_ids.append(org_id)
            people = [(tg, Role.MEMBER) for tg in tg_ids]
            if secretary_ids:
                people.append((secretary_ids[b], Role.SECRETARY))
            pids = (
                await conn.execute(
                    insert(Person).returning(Person.id),
                    [
                        {
                            "telegram_id": tg,
                            "name": f"党员{tg % 100_000}",
                            "locale": "zh",
                            "consent_at": now,
                            "nudges_paused": False,
                            "created_at": now,
                        }
                        for tg, _ in people
                    ],
                )
            ).scalars()
            await conn.execute(
                insert(Membership),
                [
                    {"person_id": pid, "org_id": org_id, "role": role, "created_at": now}
                    for pid, (_, role) in zip(list(pids), people, strict=True)
                ],
            )
    return org_ids


def spread(ids: list[int], share: float) -> set[int]:
    """`share` of the ids, evenly spread over the list."""
    k = round(len(ids) * share)
    return {ids[(i * len(ids)) // k] for i in range(k)} if k else set()


def make_bot(base: str) -> Bot:
    return Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base)))


@dataclass
class Audience:
    """Who a notice goes to: its members, some of whom blocked the bot."""

    members: list[int]
    blocked: set[int]

    @property
    def reachable(self) -> set[int]:
        return set(self.members) - self.blocked


async def notice_in_outbox(
    w: World, n: int, first_user: int, branch: str, text: str, *, status_bot: Bot | None = None
) -> Audience:
    """A branch of `n` members (3% of whom blocked the bot) and its secretary, and the
    secretary's notice to them in the outbox (its status message sent by `status_bot`, if given);
    the emulator's records reset, so what it counts next is the notice's sending."""
    ids = await add_users(w.emu, first_user, n + 1)
    secretary, members = ids[-1], ids[:-1]
    blocked = spread(members, 0.03)
    for u in blocked:
        await w.emu.block(u, notify=False)
    (org_id,) = await seed_branches(w.engine, [members], name=branch, secretary_ids=[secretary])
    status = await status_bot.send_message(secretary, "📤 …") if status_bot is not None else None
    async with w.sm() as s:
        sec = await s.scalar(select(Person.id).where(Person.telegram_id == secretary))
        assert sec is not None
        actor = await load_actor(s, sec)
        now = utcnow()
        notice = await notices.create_notice(s, actor, org_id, "branch_members", text, now=now)
        if status is not None:
            await notices.set_status_message(s, actor, notice.id, secretary, status.message_id)
        await notices.send_notice(s, actor, notice.id, now=now)
        await s.commit()
    await w.emu.reset_records()
    return Audience(members, blocked)


async def _when(progress: Callable[[], int], at: int, action: Callable[[], Awaitable[None]]) -> None:
    while True:  # the bench's own watcher: a short poll is fine here
        if progress() >= at:
            break
        await asyncio.sleep(0.02)
    await action()


# ---- part 1: a notice ----


@dataclass
class BroadcastResult:
    recipients: int
    blocked: int
    admitted: int  # sends Telegram accepted for counting: delivered + refused as blocked
    span: float
    paused: float
    rate: float
    own_429: int
    wait_429: int
    early: int
    injected: int
    lost: int
    duplicates: int
    edits: int
    latency: float = 0.0
    replies: list[float] = field(default_factory=list, repr=False)  # seconds each reply took

    @classmethod
    def of(
        cls,
        o: Outcome,
        audience: Audience,
        rate: float,
        *,
        paused: float,
        edits: int = 0,
        latency: float = 0.0,
        replies: list[float] | None = None,
    ) -> BroadcastResult:
        replies = replies or []
        return cls(
            recipients=len(audience.members),
            blocked=len(audience.blocked),
            admitted=o.admitted - len(replies),  # the notice's own sends
            span=o.span,
            paused=paused,
            rate=rate,
            own_429=o.own_429,
            wait_429=o.wait_429,
            early=o.early,
            injected=o.injected,
            lost=o.lost,
            duplicates=o.duplicates,
            edits=edits,
            latency=latency,
            replies=replies,
        )

    def reply_quantile(self, q: float) -> float:
        if not self.replies:
            return math.nan
        ordered = sorted(self.replies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def achieved(self) -> float:
        """Sends per second while sending was allowed, as a fraction of the allowed rate."""
        return (self.admitted - 1) / max(self.span - self.paused, 1e-9) / self.rate

    @property
    def with_replies(self) -> float:
        """The same, counting the replies sent during the notice too (they share the limit)."""
        return (self.admitted + len(self.replies) - 1) / max(self.span - self.paused, 1e-9) / self.rate

    @property
    def raw(self) -> float:
        return (self.admitted - 1) / max(self.span, 1e-9) / self.rate


@dataclass
class Outcome:
    """What the emulator saw since its records were reset."""

    sends: list[float]  # when each message was delivered (edits are not sends)
    admitted: int  # sends Telegram counted: delivered, and refused as blocked
    own_429: int  # 429s for going over the limits
    wait_429: int  # 429s for calling before a retry_after had passed
    early: int
    injected: int
    lost: int
    duplicates: int

    @property
    def span(self) -> float:
        return self.sends[-1] - self.sends[0]


async def _delivery_outcome(emu: RemoteEmulator, reachable: set[int], blocked: set[int]) -> Outcome:
    stats = await emu.stats()
    per_chat = {int(k): v for k, v in stats["per_chat"].items()}
    errors = await emu.errors()
    refused_blocked = sum(1 for e in errors if e["code"] == 403 and e["method"].startswith("send"))
    lost = sum(1 for c in reachable if per_chat.get(c, 0) == 0)
    duplicates = sum(per_chat.get(c, 0) - 1 for c in reachable if per_chat.get(c, 0) > 1)
    duplicates += sum(per_chat.get(c, 0) for c in blocked)
    limit = stats["limit_429"]
    return Outcome(
        sends=stats["send_times"],
        admitted=stats["sent"] + refused_blocked,
        own_429=sum(v for k, v in limit.items() if k != "wait"),
        wait_429=limit.get("wait", 0),
        early=stats["early_retries"],
        injected=stats["injected_429"],
        lost=lost,
        duplicates=duplicates,
    )


async def run_notice(
    w: World,
    n: int,
    rate: float,
    *,
    latency: float = 0.0,
    first_user: int = NOTICE_USERS,
    askers: int = 0,
) -> BroadcastResult:
    asker_ids = await add_users(w.emu, ASKER_USERS + first_user % 1_000_000, askers) if askers else []
    bot = make_bot(w.base)
    try:
        text = "请各位党员于本周五前报送本月志愿服务情况。"
        audience = await notice_in_outbox(w, n, first_user, f"广播{first_user}", text, status_bot=bot)
        if latency:
            await w.emu.slow(latency)
        worker = DeliveryWorker(bot, w.sm, Clock(), f"bench-notice-{first_user}", global_rate=rate)
        injections = [
            asyncio.create_task(_when(lambda: worker.stats.sent, n * k // 4, lambda: w.emu.inject_429(1, 1)))
            for k in (1, 2, 3)
        ]
        replies: list[float] = []
        replier = asyncio.create_task(_answer_askers(bot, worker, asker_ids, n, replies))
        await worker.drain(horizon=30)
        await replier
        if latency:
            await w.emu.clear_faults()
        for t in injections:
            t.cancel()
        await asyncio.gather(*injections, return_exceptions=True)
    finally:
        await bot.session.close()
    outcome = await _delivery_outcome(w.emu, audience.reachable, audience.blocked)
    return BroadcastResult.of(
        outcome,
        audience,
        rate,
        paused=worker.stats.paused_seconds,
        edits=worker.stats.edits,
        latency=latency,
        replies=replies,
    )


async def _answer_askers(
    bot: Bot, worker: DeliveryWorker, askers: list[int], n: int, out: list[float]
) -> None:
    """While the notice is between an eighth and seven eighths of the way, answer someone every
    REPLY_EVERY seconds, as a handler would (through the same bot, so the same gate), and time
    each answer from the call to Telegram's reply."""
    if not askers:
        return
    loop = asyncio.get_running_loop()

    async def answer(chat: int) -> None:
        t0 = loop.time()
        await bot.send_message(chat, "可用命令：/log 记录服务 /my 我的记录")
        out.append(loop.time() - t0)

    await _when(lambda: worker.stats.sent, n // 8, _nothing)
    answers: list[asyncio.Task[None]] = []
    i = 0
    while True:  # at least one, however quickly a tiny notice goes
        answers.append(asyncio.create_task(answer(askers[i % len(askers)])))
        i += 1
        if worker.stats.sent >= n * 7 // 8:
            break
        await asyncio.sleep(REPLY_EVERY)  # the bench's own clock of people writing in
    await asyncio.gather(*answers)


async def _nothing() -> None:
    return None


@dataclass
class WorkersResult:
    workers: int
    shared: str  # where the gate's state lives: redis | postgresql
    recipients: int
    blocked: int
    admitted: int
    span: float
    rate: float
    own_429: int
    max_in_second: int
    lost: int
    duplicates: int

    @property
    def achieved(self) -> float:
        return (self.admitted - 1) / max(self.span, 1e-9) / self.rate


async def run_workers(
    w: World, n: int, rate: float, workers: int, shared: str, first_user: int, log: Path
) -> WorkersResult:
    """One notice sent by `workers` worker processes sharing the gate's state (`shared`)."""
    from tests.bot.worker_process import start_worker, stop_workers

    audience = await notice_in_outbox(w, n, first_user, f"并行{first_user}", "请按时报送。")
    prefix = f"bench-workers:{first_user}"
    redis = REDIS if shared == "redis" else ""
    options = ("--rate", f"{rate:g}", "--redis", redis, "--gate-prefix", prefix)
    # Started together (each sends once it is ready): one after the other, the first had sent
    # most of the notice alone before the second was up on a loaded machine.
    procs = list(
        await asyncio.gather(
            *(start_worker(log, w.db_url, w.base, TOKEN, f"bw{i}", *options) for i in range(workers))
        )
    )
    try:
        while True:  # the bench's own watcher: a short poll is fine here
            async with w.sm() as s:
                pending = await s.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.status == DeliveryStatus.PENDING)
                )
            if not pending:
                break
            await asyncio.sleep(0.2)
    finally:
        await stop_workers(*procs)
    o = await _delivery_outcome(w.emu, audience.reachable, audience.blocked)
    in_second = best = 0
    for end, t in enumerate(o.sends):
        while t - o.sends[in_second] >= 1.0:
            in_second += 1
        best = max(best, end - in_second + 1)
    return WorkersResult(
        workers=workers,
        shared=shared,
        recipients=n,
        blocked=len(audience.blocked),
        admitted=o.admitted,
        span=o.span,
        rate=rate,
        own_429=o.own_429,
        max_in_second=best,
        lost=o.lost,
        duplicates=o.duplicates,
    )


def workers_report(args: argparse.Namespace, results: list[WorkersResult]) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    rows = "\n".join(
        f"| {r.workers} | {'Redis' if r.shared == 'redis' else 'PostgreSQL'} "
        f"| {r.recipients:,} ({r.blocked} blocked) "
        f"| {r.achieved:.3f} | {r.max_in_second} | {r.own_429} | {r.lost} | {r.duplicates} |"
        for r in results
    )
    head = (
        "| workers | gate's state | recipients | rate / allowed | most in any 1 s | 429s from own pacing "
        "| lost | duplicates |"
    )
    return f"""
## Several delivery workers, one budget (`bench/broadcast.py --workers {args.workers}`)

{machine_line()} Backend: PostgreSQL; allowed rate {args.rate:g} messages/s, enforced by the
emulator in its own process (1/s per chat too). Each worker is its own process
(`python -m bot.delivery`); the gate's state is shared in Redis or, without Redis, in PostgreSQL
(`gate_marks`, bot/gate/dbstate.py). Load average at the end: {load:.1f}.

{head}
| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

- *rate / allowed*: sends Telegram counted (delivered, and refused as blocked) per second from the
  first to the last, over the allowed rate. No 429s were injected in this part.
- Both shared states count each place from its send's answer, as one process does, with 3% of
  headroom (at most 30 sends in any 1.03 s); each worker spaces its own sends at the allowed
  rate, so two workers offer twice what the bot may send and the shared windows hold them to it.
"""


async def run_baseline(w: World, n: int, rate: float) -> BroadcastResult:
    """The usual loop: send, sleep 1/rate, on a 429 sleep retry_after and try again."""
    emu = w.emu
    ids = await add_users(emu, BASELINE_USERS, n)
    audience = Audience(ids, spread(ids, 0.03))
    for u in audience.blocked:
        await emu.block(u, notify=False)
    await emu.reset_records()
    bot = make_bot(w.base)
    paused = 0.0
    sent = 0
    injected_at = {n * k // 4 for k in (1, 2, 3)}
    try:
        for chat in ids:
            if sent in injected_at:
                injected_at.discard(sent)
                await emu.inject_429(1, 1)
            while True:
                try:
                    await bot.send_message(chat, "请各位党员于本周五前报送本月志愿服务情况。")
                    break
                except TelegramRetryAfter as e:
                    paused += e.retry_after
                    await asyncio.sleep(e.retry_after)
                except TelegramForbiddenError:
                    break
            sent += 1
            await asyncio.sleep(1 / rate)
    finally:
        await bot.session.close()
    outcome = await _delivery_outcome(emu, audience.reachable, audience.blocked)
    return BroadcastResult.of(outcome, audience, rate, paused=paused)


# ---- part 2: reminders ----


@dataclass
class ReminderResult:
    reminders: int
    rate: float
    tick_seconds: float
    enqueued_after: float  # due -> the scheduler's commit of the outbox rows
    first_send: float  # due -> first message at Telegram
    total: float  # due -> last message at Telegram
    lost: int
    duplicates: int
    all_enqueued: float = math.nan  # due -> the last of the n outbox rows committed
    sent: int = 0  # messages Telegram got (all n, unless stopped after `window`)
    pace: float = math.nan  # sends per second from the first to the last, over the allowed rate

    @property
    def ideal(self) -> float:
        return self.reminders / self.rate


async def run_reminders(w: World, n: int, rate: float, window: float | None = None) -> ReminderResult:
    """`window`: stop this many seconds after the first send (100,000 reminders at 30/s take
    56 minutes); what was not sent by then is counted neither lost nor sent."""
    emu, sm = w.emu, w.sm
    per_branch = 100
    ids = await add_users(emu, REMINDER_USERS, n)
    groups = [ids[i : i + per_branch] for i in range(0, n, per_branch)]
    org_ids = await seed_branches(w.engine, groups, name="提醒")
    lead = 3.0
    due = (utcnow() + timedelta(seconds=lead)).replace(microsecond=0) + timedelta(seconds=1)
    due_mono = time.monotonic() + (due - utcnow()).total_seconds()
    async with sm() as s:
        for org_id in org_ids:
            s.add(
                ReminderRule(
                    kind=ReminderKind.MONTHLY_NUDGE,
                    org_id=org_id,
                    cron="0 10 25 * *",
                    timezone="Asia/Shanghai",
                    params={},
                    enabled=True,
                    grace_hours=24,
                    next_due_at=due,  # as if the 25th, 10:00 were now
                    created_at=utcnow(),
                )
            )
        await s.commit()
    await emu.reset_records()
    bot = make_bot(w.base)
    tick = 1.0
    try:
        worker = DeliveryWorker(bot, sm, Clock(), "bench-reminders", global_rate=rate)
        enqueued: list[float] = []

        def wake() -> None:
            enqueued.append(time.monotonic())
            worker.wake()

        sched = Scheduler(
            sm, Clock(), "bench-scheduler", get_pack("qh-2015"), tick_seconds=tick, on_enqueued=wake
        )
        stop = asyncio.Event()
        tasks = [asyncio.create_task(worker.run(stop)), asyncio.create_task(sched.run(stop))]
        first_done: float | None = None
        all_enqueued = math.nan
        try:
            async with asyncio.timeout(n / rate * 3 + 120):
                while True:
                    await asyncio.sleep(0.5)
                    async with sm() as s:
                        queued, done = (
                            await s.execute(
                                select(
                                    func.count(),
                                    func.count().filter(Delivery.status != DeliveryStatus.PENDING),
                                )
                                .select_from(Delivery)
                                .where(Delivery.kind == "reminder")
                            )
                        ).one()
                    if queued >= n and math.isnan(all_enqueued):
                        all_enqueued = time.monotonic() - due_mono
                    if done >= n:
                        break
                    if done and first_done is None:
                        first_done = time.monotonic()
                    if (
                        window is not None
                        and first_done is not None
                        and time.monotonic() - first_done >= window
                    ):
                        break
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await bot.session.close()
    outcome = await _delivery_outcome(emu, set(ids), set())
    times, lost = outcome.sends, outcome.lost
    if window is not None:
        # Stopped early: the unsent are not lost, they are still in the outbox.
        async with sm() as s:
            unsent = await s.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.kind == "reminder", Delivery.status == DeliveryStatus.PENDING)
            )
        lost -= int(unsent or 0)
    return ReminderResult(
        reminders=n,
        rate=rate,
        tick_seconds=tick,
        enqueued_after=(enqueued[0] - due_mono) if enqueued else math.nan,
        first_send=times[0] - due_mono,
        total=times[-1] - due_mono,
        lost=lost,
        duplicates=outcome.duplicates,
        all_enqueued=all_enqueued,
        sent=len(times),
        pace=(len(times) - 1) / (times[-1] - times[0]) / rate if len(times) > 1 else math.nan,
    )


# ---- report ----


@dataclass
class Results:
    notice: BroadcastResult
    slow: BroadcastResult  # the same, with the emulator answering after a delay
    baseline: BroadcastResult
    reminders: ReminderResult


def report(args: argparse.Namespace, backend: str, r: Results) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    notice, rem = r.notice, r.reminders

    def row(label: str, b: BroadcastResult) -> str:
        return (
            f"| {label} | {b.recipients:,} ({b.blocked} blocked) | {b.achieved:.3f} | {b.raw:.3f} | "
            f"{b.own_429} | {b.early} | {b.lost} | {b.duplicates} |"
        )

    head = (
        "| sender | recipients | rate / allowed | incl. 429 waits | 429s from own pacing "
        "| sends before retry_after passed | lost | duplicates |"
    )
    rem_head = (
        "| due → outbox committed | due → first send | due → last send | rate-limit ideal "
        "| ideal / actual | lost | duplicates |"
    )
    rem_row = (
        f"| {rem.enqueued_after:.2f} s | {rem.first_send:.2f} s | {rem.total:.1f} s | {rem.ideal:.1f} s "
        f"| {rem.ideal / rem.total:.3f} | {rem.lost} | {rem.duplicates} |"
    )
    slow_ms = f"{r.slow.latency * 1000:.0f} ms"
    return f"""
## Broadcast (`bench/broadcast.py`)

{machine_line()} Backend: {backend}; scale {args.scale:g}; allowed rate {args.rate:g} messages/s
(the emulator enforces it per bot, 1/s per chat and 20/min per group, counting each send when it
arrives, as Telegram does); the emulator runs in its own process. Load average at the end:
{load:.1f}.

{head}
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{row("delivery worker", notice)}
{row(f"delivery worker, answers after {slow_ms}", r.slow)}
{row("plain aiogram loop (baseline)", r.baseline)}

- *rate / allowed*: sends Telegram counted (delivered, and refused as blocked) per second while
  sending was allowed, over the allowed rate; *incl. 429 waits* counts the time the injected
  429s forbade too (three, retry_after 1 s, at a quarter, half and three quarters of the way:
  {notice.paused:.1f} s of the worker's {notice.span:.1f} s).
- Replies during the first notice: {len(notice.replies)} answers to people who wrote in (one
  every {REPLY_EVERY:g} s while the notice was between an eighth and seven eighths of the way),
  sent through the same bot and so the same gate (bot/gate) as the worker's sends. Time from
  the call to Telegram's answer: median {notice.reply_quantile(0.5) * 1000:.0f} ms, 95th
  percentile {notice.reply_quantile(0.95) * 1000:.0f} ms, longest
  {notice.reply_quantile(1.0) * 1000:.0f} ms
  (the three injected retry_after waits fall in this stretch too). The notice's rate above
  counts its own sends only; with the replies, {notice.with_replies:.3f} of the allowed rate.
- How the worker paces (bot/gate/pacing.py): bulk sends evenly spaced at the allowed rate by
  aiolimiter's leaky bucket; at most that many in any 1.03 s, each counted from the moment
  Telegram's answer came back; a reply waiting at the gate takes the next free place before the
  worker's next send; a 429 holds every call of the bot until retry_after has passed. 429s
  from the limits themselves in this run: {notice.own_429} (worker and replies together). The
  sender's status message was edited {notice.edits} times (at most every 2 s).
- With answers after {slow_ms}: *sends before retry_after passed* (sends already on the wire
  when a 429 was answered) {r.slow.early}; without the added latency {notice.early}.
- The baseline is send, sleep 1/30 s, on a 429 sleep retry_after and retry.

Reminders: {rem.reminders:,} due at the same moment ({rem.reminders // 100} branches' monthly
nudges), the scheduler ticking every {rem.tick_seconds:g} s (30 s by default, which can add up to
that much to the first delay). The outbox rows are built and committed in one transaction per
tick; the worker, woken by the scheduler, sent the first {rem.first_send - rem.enqueued_after:.2f} s after
that commit:

{rem_head}
| ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{rem_row}
"""


async def main_workers(args: argparse.Namespace) -> list[WorkersResult]:
    results: list[WorkersResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp_dir:
        tmp = Path(tmp_dir)
        async with bench_world(args, tmp, postgres=True) as w:
            n = max(10, round(3000 * args.scale))
            run = 0
            for shared in ("redis", "postgresql"):
                for workers in sorted({1, args.workers}):
                    _say(f"notice to {n} members, {workers} worker(s), gate in {shared} ...")
                    first_user = WORKERS_USERS + run * 100_000
                    r = await run_workers(w, n, args.rate, workers, shared, first_user, tmp / "workers.log")
                    run += 1
                    _say(f"  {r} achieved={r.achieved:.3f}")
                    results.append(r)
    publish(args, "broadcast-workers", workers_report(args, results))
    return results


def reminders_only(args: argparse.Namespace, rem: ReminderResult) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return (
        f"{machine_line()} Backend: {args.backend}; {rem.reminders:,} reminders due at once "
        f"({rem.reminders // 100:,} branches of 100), scheduler tick {rem.tick_seconds:g} s, allowed rate "
        f"{rem.rate:g}/s; load average at the end {load:.1f}.\n"
        f"due -> first outbox commit {rem.enqueued_after:.2f} s; due -> first send {rem.first_send:.2f} s; "
        f"due -> all {rem.reminders:,} in the outbox {rem.all_enqueued:.1f} s; "
        f"sent {rem.sent:,} in {rem.total - rem.first_send:.1f} s, pace / allowed {rem.pace:.3f}; "
        f"lost {rem.lost}, duplicates {rem.duplicates}"
    )


async def main_async(args: argparse.Namespace) -> Results:
    with tempfile.TemporaryDirectory(prefix="bench-broadcast-") as tmp_dir:
        async with bench_world(args, Path(tmp_dir), postgres=args.backend == "postgres") as w:
            if args.reminders:
                _say(f"{args.reminders} reminders, stopping {args.window:g} s after the first send ...")
                rem = await run_reminders(w, args.reminders, args.rate, args.window)
                _say(reminders_only(args, rem))
                return Results(None, None, None, rem)  # type: ignore[arg-type]
            n = max(10, round(3000 * args.scale))
            _say(f"notice to {n} members at {args.rate:g}/s ...")
            notice = await run_notice(w, n, args.rate, askers=ASKERS)
            _say(f"  {notice}")
            n2 = max(10, round(600 * args.scale))
            _say(f"notice to {n2} members, answers after {args.latency:g} s ...")
            slow = await run_notice(w, n2, args.rate, latency=args.latency, first_user=SLOW_USERS)
            _say(f"  {slow}")
            _say(f"baseline loop, {n2} members ...")
            baseline = await run_baseline(w, n2, args.rate)
            _say(f"  {baseline}")
            nr = max(100, round(10_000 * args.scale))
            _say(f"{nr} reminders ...")
            rem = await run_reminders(w, nr, args.rate)
            _say(f"  {rem}")
    results = Results(notice, slow, baseline, rem)
    backend = "PostgreSQL" if args.backend == "postgres" else "SQLite"
    publish(args, "broadcast", report(args, backend, results))
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.broadcast", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="fraction of 3,000 recipients / 10,000 reminders")
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--pg", default=PG_BASE, help="PostgreSQL server to create the bench database on")
    p.add_argument("--rate", type=float, default=30.0, help="the allowed rate (Telegram's: 30/s)")
    p.add_argument(
        "--latency", type=float, default=0.05, help="seconds the emulator waits before answering, second run"
    )
    p.add_argument(
        "--reminders",
        type=int,
        default=0,
        help="only the reminders part, with this many (printed, not written), stopped after --window",
    )
    p.add_argument("--window", type=float, default=60.0, help="seconds of sending measured with --reminders")
    p.add_argument("--out", default=str(DOC), help="the markdown file to write the section into")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="only compare 1 and this many delivery worker processes sharing one budget (PostgreSQL)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.workers:
        asyncio.run(main_workers(args))
    else:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
