"""The scheduler with a frozen clock: across a simulated day, week and month each reminder goes
out once (through the delivery worker to the emulator); after downtime a still relevant reminder
is sent once and older ones are recorded as missed; an empty digest is not sent; scheduled
notices are released; old update ids are forgotten; a database failure is outlived; the
APScheduler jobs tick on their own; and two scheduler processes on PostgreSQL send each
reminder once."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from aiogram import Bot
from sqlalchemy import func, select

from bot.delivery import DeliveryWorker
from bot.scheduler import Scheduler
from config.clock import FrozenClock
from content.pack import PACKS_DIR, Bilingual, Milestone, Pack, load_pack_dir
from emulator import Emulator
from storage import notices, reminders
from storage.access import load_actor
from storage.models import (
    Commitment,
    Delivery,
    EntryStatus,
    Notice,
    NoticeStatus,
    ProcessedUpdate,
    ReminderKind,
    ReminderRule,
    ReminderRun,
    RunStatus,
    ServiceEntry,
)
from tests.bot.outbox_world import Branch, FlakySessions, make_branch, make_tg_bot
from tests.dbutil import postgres_only

START = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)  # 2026-11-01 00:00 in Shanghai (UTC+8)
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def pack() -> Pack:
    real = load_pack_dir(PACKS_DIR / "qh-2015")
    m = Milestone(
        id="inspection", title=Bilingual(zh="年检材料报送", en="Annual inspection"), date=date(2026, 11, 20)
    )
    return real.model_copy(update={"milestones": [m.model_copy(update={"remind_days_before": [7, 1]})]})


@pytest.fixture
async def tg(emu: Emulator) -> AsyncIterator[Bot]:
    b = make_tg_bot(emu)
    yield b
    await b.session.close()


async def _branch(session, emu: Emulator, pack: Pack) -> tuple[Branch, dict[ReminderKind, ReminderRule]]:
    br = await make_branch(session, emu, 3)
    rules = await reminders.ensure_default_rules(session, br.org, now=START)
    await session.commit()
    return br, {r.kind: r for r in rules}


async def _simulate(sched: Scheduler, clock: FrozenClock, end: datetime, step: timedelta) -> int:
    """Tick from the clock's time to `end`; each tick is run twice, the second must change nothing."""
    runs = 0
    while clock.now() <= end:
        first = await sched.tick(housekeeping=False)
        again = await sched.tick(housekeeping=False)
        assert first.failures == again.failures == 0 and again.runs == 0
        runs += first.runs
        clock.advance(step)
    return runs


async def _runs(session, rule: ReminderRule) -> list[tuple[datetime, RunStatus]]:
    rows = await session.execute(
        select(ReminderRun.due_at, ReminderRun.status)
        .where(ReminderRun.rule_id == rule.id)
        .order_by(ReminderRun.due_at)
    )
    return [(d, RunStatus(s)) for d, s in rows]


async def _deliver(session, tg: Bot, sessionmaker, clock: FrozenClock) -> None:
    await session.commit()  # end the test's own read: on SQLite it holds the write lock
    worker = DeliveryWorker(tg, sessionmaker, clock, "d1", per_chat_interval=0.01, retry_base=0.01)
    await asyncio.wait_for(worker.drain(), timeout=30)


async def _outbox_per_chat(session) -> Counter[int]:
    rows = await session.execute(select(Delivery.chat_id, func.count()).group_by(Delivery.chat_id))
    return Counter({c: int(n) for c, n in rows})


def _daily(days: range) -> list[datetime]:
    return [datetime(2026, 11, d, 1, 0, tzinfo=UTC) for d in days]


async def test_a_simulated_day_sends_each_daily_reminder_once(session, sessionmaker, emu, tg, pack) -> None:
    br, rules = await _branch(session, emu, pack)
    member = br.members[0]
    session.add(
        Commitment(person_id=member.id, org_id=br.org.id, text="结对帮扶", deadline=date(2026, 11, 4))
    )
    await session.commit()
    clock = FrozenClock(START)
    sched = Scheduler(sessionmaker, clock, "s1", pack)
    await _simulate(sched, clock, START + timedelta(days=1) - timedelta(minutes=1), timedelta(minutes=10))
    for kind in (ReminderKind.COMMITMENT_DUE, ReminderKind.MILESTONE):
        assert [d for d, _ in await _runs(session, rules[kind])] == _daily(range(1, 2))
    await _deliver(session, tg, sessionmaker, clock)
    # 11-01 09:00: the commitment due 11-04 is 3 days away; no milestone is 7 or 1 days away.
    got = emu.stats.per_chat()
    assert got == {member.telegram_id: 1}
    assert "结对帮扶" in emu.chat(member.telegram_id)[0].text


async def test_a_simulated_week_sends_one_digest_and_the_daily_runs(
    session, sessionmaker, emu, tg, pack
) -> None:
    br, rules = await _branch(session, emu, pack)
    session.add(
        ServiceEntry(
            person_id=br.members[1].id,
            org_id=br.org.id,
            day=date(2026, 10, 30),
            minutes=90,
            action="volunteer",
            description="社区义诊",
            status=EntryStatus.PENDING,
        )
    )
    await session.commit()
    clock = FrozenClock(START)
    sched = Scheduler(sessionmaker, clock, "s1", pack)
    await _simulate(sched, clock, START + timedelta(days=7) - HOUR, HOUR)
    assert await _runs(session, rules[ReminderKind.WEEKLY_DIGEST]) == [
        (datetime(2026, 11, 2, 1, 0, tzinfo=UTC), RunStatus.SENT)
    ]
    for kind in (ReminderKind.COMMITMENT_DUE, ReminderKind.MILESTONE):
        assert [d for d, _ in await _runs(session, rules[kind])] == _daily(range(1, 8))
    assert await _runs(session, rules[ReminderKind.MONTHLY_NUDGE]) == []
    await _deliver(session, tg, sessionmaker, clock)
    # The digest (one pending entry), and the milestone of 11-20 seven days ahead, on 11-13: not this week.
    assert emu.stats.per_chat() == {br.secretary.telegram_id: 1}


async def test_a_simulated_month_sends_each_reminder_once(session, sessionmaker, emu, tg, pack) -> None:
    br, rules = await _branch(session, emu, pack)
    m0, m1, m2 = br.members
    session.add(
        Commitment(
            person_id=m0.id, org_id=br.org.id, text="每月参加一次志愿服务", deadline=date(2026, 11, 13)
        )
    )
    session.add(
        ServiceEntry(
            person_id=m1.id,
            org_id=br.org.id,
            day=date(2026, 11, 3),
            minutes=60,
            action="volunteer",
            description="社区服务",
            status=EntryStatus.APPROVED,
        )
    )
    await session.commit()
    clock = FrozenClock(START)
    sched = Scheduler(sessionmaker, clock, "s1", pack)
    await _simulate(sched, clock, START + timedelta(days=30) - HOUR, 2 * HOUR)
    assert [d for d, _ in await _runs(session, rules[ReminderKind.COMMITMENT_DUE])] == _daily(range(1, 31))
    nudges = await _runs(session, rules[ReminderKind.MONTHLY_NUDGE])
    assert nudges == [(datetime(2026, 11, 25, 2, 0, tzinfo=UTC), RunStatus.SENT)]
    await _deliver(session, tg, sessionmaker, clock)
    expected = await _outbox_per_chat(session)
    assert emu.stats.per_chat() == expected  # every outbox row went out exactly once
    # m0: the commitment (11-10) and the monthly nudge (11-25, nothing logged in November); m1
    # logged, so no nudge; m2: the nudge. The secretary: the nudge, the milestone (11-13, 11-19)
    # and five Monday digests (members inactive this quarter, a commitment due soon).
    assert expected == {m0.telegram_id: 2, m2.telegram_id: 1, br.secretary.telegram_id: 8}
    digests = await _runs(session, rules[ReminderKind.WEEKLY_DIGEST])
    assert [s for _, s in digests] == [RunStatus.SENT] * 5


async def test_after_downtime_a_relevant_reminder_goes_once_and_older_ones_are_missed(
    session, sessionmaker, emu, tg, pack
) -> None:
    br, rules = await _branch(session, emu, pack)
    for kind, rule in rules.items():
        rule.enabled = kind is ReminderKind.COMMITMENT_DUE
    m0, m1, _ = br.members
    session.add(Commitment(person_id=m0.id, org_id=br.org.id, text="结对帮扶", deadline=date(2026, 11, 7)))
    session.add(Commitment(person_id=m1.id, org_id=br.org.id, text="学习交流", deadline=date(2026, 11, 5)))
    await session.commit()
    # Down from before 11-01 09:00 until 11-04 10:00 local time.
    clock = FrozenClock(datetime(2026, 11, 4, 2, 0, tzinfo=UTC))
    sched = Scheduler(sessionmaker, clock, "s1", pack)
    assert (await sched.tick()).runs == 1
    assert (await sched.tick()).runs == 0  # never twice
    assert [(d.day, s) for d, s in await _runs(session, rules[ReminderKind.COMMITMENT_DUE])] == [
        (1, RunStatus.MISSED),
        (2, RunStatus.MISSED),  # would have reminded m1 of 11-05: too late now, but recorded
        (3, RunStatus.MISSED),
        (4, RunStatus.SENT),
    ]
    await _deliver(session, tg, sessionmaker, clock)
    assert emu.stats.per_chat() == {m0.telegram_id: 1}


async def test_a_digest_with_nothing_to_say_is_not_sent(session, sessionmaker, emu, tg, pack) -> None:
    br, rules = await _branch(session, emu, pack)
    for p in [br.secretary, *br.members]:  # everyone active this quarter, nothing waiting
        session.add(
            ServiceEntry(
                person_id=p.id,
                org_id=br.org.id,
                day=date(2026, 10, 15),
                minutes=60,
                action="volunteer",
                description="社区服务",
                status=EntryStatus.APPROVED,
            )
        )
    await session.commit()
    clock = FrozenClock(datetime(2026, 11, 2, 1, 0, tzinfo=UTC))  # Monday 09:00
    sched = Scheduler(sessionmaker, clock, "s1", pack)
    await sched.tick()
    assert await _runs(session, rules[ReminderKind.WEEKLY_DIGEST]) == [(clock.now(), RunStatus.EMPTY)]
    assert await session.scalar(select(func.count()).select_from(Delivery)) == 0


async def test_a_scheduled_notice_is_released_by_the_tick(session, sessionmaker, emu, pack) -> None:
    br = await make_branch(session, emu, 2)
    actor = await load_actor(session, br.secretary.id)
    at = START + 3 * HOUR
    notice = await notices.create_notice(
        session, actor, br.org.id, "branch_members", "明早九点开会", scheduled_at=at, now=START
    )
    await notices.send_notice(session, actor, notice.id, now=START)
    await session.commit()
    clock = FrozenClock(at - timedelta(minutes=1))
    woken: list[int] = []
    sched = Scheduler(sessionmaker, clock, "s1", pack, on_enqueued=lambda: woken.append(1))
    assert (await sched.tick()).notices == 0
    clock.advance(timedelta(minutes=1))
    assert (await sched.tick()).notices == 1
    assert (await sched.tick()).notices == 0
    assert woken == [1]
    assert await session.scalar(select(Notice.status).where(Notice.id == notice.id)) is NoticeStatus.SENDING
    assert await session.scalar(select(func.count()).select_from(Delivery)) == 2


async def test_many_rules_due_at_once_reach_the_outbox_in_growing_rounds(
    session, sessionmaker, emu, pack
) -> None:
    """The first round takes one rule and commits, so the worker starts on its messages while
    the rest are built; each round after takes twice as many (1, 2, 4, then the remaining 3)."""
    br = await make_branch(session, emu, 2)
    due = START + 10 * HOUR
    for minute in range(10):
        session.add(
            ReminderRule(
                kind=ReminderKind.MONTHLY_NUDGE,
                org_id=br.org.id,
                cron=f"{minute} 2 * * *",
                timezone="Asia/Shanghai",
                params={},
                enabled=True,
                grace_hours=24,
                next_due_at=due,
                created_at=START,
            )
        )
    await session.commit()
    woken: list[int] = []
    sched = Scheduler(sessionmaker, FrozenClock(due), "s1", pack, on_enqueued=lambda: woken.append(1))
    assert (await sched.tick(housekeeping=False)).runs == 10
    assert len(woken) == 4  # a commit after rounds of 1, 2, 4 and 3 rules
    # Every rule's nudge to the secretary and both members, once.
    assert await session.scalar(select(func.count()).select_from(Delivery)) == 10 * 3


async def test_housekeeping_forgets_update_ids_older_than_two_days(session, sessionmaker, pack) -> None:
    now = datetime(2026, 11, 10, tzinfo=UTC)
    session.add_all(
        [
            ProcessedUpdate(bot_id=1, update_id=1, processed_at=now - timedelta(days=3)),
            ProcessedUpdate(bot_id=1, update_id=2, processed_at=now - timedelta(hours=47)),
        ]
    )
    await session.commit()
    result = await Scheduler(sessionmaker, FrozenClock(now), "s1", pack).tick()
    assert result.forgotten == 1
    assert list(await session.scalars(select(ProcessedUpdate.update_id))) == [2]


async def test_a_database_failure_is_logged_and_the_next_tick_works(
    session, sessionmaker, emu, pack, caplog
) -> None:
    _, rules = await _branch(session, emu, pack)
    clock = FrozenClock(datetime(2026, 11, 1, 1, 0, tzinfo=UTC))
    flaky = FlakySessions(sessionmaker, fail_calls={1, 2, 3})
    sched = Scheduler(flaky, clock, "s1", pack)
    first = await sched.tick()
    assert first.failures == 3 and first.runs == 0
    assert "OperationalError" in caplog.text and "党员" not in caplog.text  # class names, no people
    second = await sched.tick()
    assert second.failures == 0 and second.runs == 2  # the daily commitment and milestone rules
    assert len(await _runs(session, rules[ReminderKind.COMMITMENT_DUE])) == 1


async def test_the_interval_jobs_tick_on_their_own(session, sessionmaker, emu, pack) -> None:
    br = await make_branch(session, emu, 1)
    actor = await load_actor(session, br.secretary.id)
    notice = await notices.create_notice(
        session, actor, br.org.id, "branch_members", "通知", scheduled_at=START + HOUR, now=START
    )
    await notices.send_notice(session, actor, notice.id, now=START)
    await session.commit()
    clock = FrozenClock(START)
    released = asyncio.Event()
    sched = Scheduler(sessionmaker, clock, "s1", pack, tick_seconds=0.05, on_enqueued=released.set)
    stop = asyncio.Event()
    run = asyncio.create_task(sched.run(stop))
    try:
        clock.advance(HOUR)  # the next tick of the interval job finds the notice due
        await asyncio.wait_for(released.wait(), timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(run, timeout=10)
    assert await session.scalar(select(Notice.status).where(Notice.id == notice.id)) is NoticeStatus.SENDING


async def _scheduler_process(db_url: str, worker: str, at: datetime) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.scheduler",
        "--db",
        db_url,
        "--pack",
        "qh-2015",
        "--worker-id",
        worker,
        "--at",
        at.isoformat(),
        "--ticks",
        "3",
        "--wait-go",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@postgres_only("two scheduler processes claim runs concurrently; SQLite has one writer")
async def test_two_scheduler_processes_send_each_reminder_once_on_postgresql(
    session, sessionmaker, db_url, emu, tg
) -> None:
    branches = []
    for i in range(4):
        br = await make_branch(session, emu, 5, name=f"支部{i}")
        await reminders.ensure_default_rules(session, br.org, now=START)
        for p in br.members:
            session.add(Commitment(person_id=p.id, org_id=br.org.id, text="承诺", deadline=date(2026, 11, 5)))
        branches.append(br)
    await session.commit()
    at = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # Monday 09:00: 3 daily/weekly rules per branch
    procs = [await _scheduler_process(db_url, f"s{i}", at) for i in range(2)]
    try:
        for p in procs:
            assert p.stdout is not None
            assert (await asyncio.wait_for(p.stdout.readline(), timeout=60)).strip() == b"ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        outs = [await asyncio.wait_for(p.communicate(), timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    assert [p.returncode for p in procs] == [0, 0], [e.decode()[-2000:] for _, e in outs]
    ticks = [line for out, _ in outs for line in out.decode().splitlines() if line.startswith("tick")]
    assert len(ticks) == 6 and all("failures=0" in t for t in ticks)
    # Monday 09:00: the digest, commitment and milestone rules of 4 branches, claimed once in all.
    assert sum(int(t.split()[1].removeprefix("runs=")) for t in ticks) == 12
    claimed = await session.scalar(
        select(func.count()).select_from(ReminderRun).where(ReminderRun.due_at == at)
    )
    assert claimed == 12
    await _deliver(session, tg, sessionmaker, FrozenClock(at))
    # Each member: one reminder of the commitment due 11-05 (3 days ahead); each secretary: one
    # digest (commitments due soon). Nothing else, and nothing twice.
    people = {p.telegram_id for br in branches for p in [br.secretary, *br.members]}
    assert emu.stats.per_chat() == dict.fromkeys(people, 1)


def test_a_tick_skipped_while_the_last_one_runs_is_not_warned_about(caplog) -> None:
    logging.getLogger("apscheduler.scheduler").warning(
        'Execution of job "%s" skipped: maximum number of running instances reached (%d)', "reminders", 1
    )
    logging.getLogger("apscheduler.scheduler").warning("something else")
    assert "maximum number" not in caplog.text and "something else" in caplog.text
