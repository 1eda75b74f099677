"""Reminders with a frozen clock: runs are created once each across a simulated day and month,
downtime gives one catch-up and records the rest as missed, empty digests are not sent, paused
members are not nudged, and two schedulers on PostgreSQL claim each run once."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from content.pack import PACKS_DIR, Bilingual, Milestone, Pack, load_pack_dir
from storage import reminders
from storage.errors import Forbidden, Invalid, Refused
from storage.models import (
    Commitment,
    CommitmentStatus,
    Delivery,
    EntryStatus,
    ReminderKind,
    ReminderRule,
    ReminderRun,
    RunStatus,
    ServiceEntry,
)
from tests.dbutil import postgres_only

# Asia/Shanghai is UTC+8: 09:00 local is 01:00 UTC.
START = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)  # 2026-11-01 00:00 in Shanghai
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def pack() -> Pack:
    real = load_pack_dir(PACKS_DIR / "qh-2015")
    m = Milestone(
        id="inspection", title=Bilingual(zh="年检材料报送", en="Annual inspection"), date=date(2026, 11, 20)
    )
    return real.model_copy(update={"milestones": [m.model_copy(update={"remind_days_before": [7, 1]})]})


async def _rules(session, org) -> dict[ReminderKind, ReminderRule]:
    return {r.kind: r for r in await reminders.ensure_default_rules(session, org, now=START)}


async def _only(session, rules: dict[ReminderKind, ReminderRule], *keep: ReminderKind) -> None:
    for kind, rule in rules.items():
        if kind not in keep:
            rule.enabled = False
    await session.flush()


async def _runs(session, rule: ReminderRule) -> list[ReminderRun]:
    rows = await session.scalars(
        select(ReminderRun).where(ReminderRun.rule_id == rule.id).order_by(ReminderRun.due_at)
    )
    return list(rows)


async def _deliveries(session, prefix: str = "rem:") -> list[Delivery]:
    rows = await session.scalars(
        select(Delivery).where(Delivery.dedupe_key.like(prefix + "%")).order_by(Delivery.id)
    )
    return list(rows)


def _entry(person, org, day: date, status: EntryStatus = EntryStatus.APPROVED) -> ServiceEntry:
    return ServiceEntry(
        person_id=person.id,
        org_id=org.id,
        day=day,
        minutes=60,
        action="volunteer",
        description="社区服务",
        status=status,
    )


async def test_default_rules_are_created_once_with_their_next_due_time(session, world) -> None:
    first = await _rules(session, world.branch_a)
    again = await _rules(session, world.branch_a)
    assert {k: r.id for k, r in first.items()} == {k: r.id for k, r in again.items()}
    assert await session.scalar(select(func.count()).select_from(ReminderRule)) == 4
    due = {k: r.next_due_at for k, r in first.items()}
    assert due[ReminderKind.COMMITMENT_DUE] == datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
    assert due[ReminderKind.MILESTONE] == datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
    assert due[ReminderKind.WEEKLY_DIGEST] == datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # Monday 09:00
    assert due[ReminderKind.MONTHLY_NUDGE] == datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 25th 10:00
    assert first[ReminderKind.COMMITMENT_DUE].params == {"days_before": 3}


@pytest.mark.parametrize(
    ("cron", "fires"),
    [
        ("0 9 * * 1", ["2026-11-02"]),  # crontab's 1 is Monday (APScheduler 3 alone would say Tuesday)
        ("0 9 * * 0", ["2026-11-01"]),
        ("0 9 * * 7", ["2026-11-01"]),
        ("0 9 * * 1-5", ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06"]),
        ("0 9 * * mon,fri", ["2026-11-02", "2026-11-06"]),
    ],
)
def test_weekday_numbers_follow_crontab(cron: str, fires: list[str]) -> None:
    trigger = reminders.make_trigger(reminders.validate_cron(cron), "Asia/Shanghai")
    got, t = [], START
    while True:
        t = trigger.get_next_fire_time(None, t + timedelta(seconds=1))
        if t.date() > date(2026, 11, 7):
            break
        got.append(t.date().isoformat())
    assert got == fires


@pytest.mark.parametrize(
    ("cron", "key"),
    [
        ("0 9 * *", "reminders.bad_cron"),
        ("61 9 * * *", "reminders.bad_cron"),
        ("0 9 * * 8", "reminders.bad_cron"),
        ("0 9 30 2 *", "reminders.bad_cron"),
        ("every day", "reminders.bad_cron"),
        ("*/5 * * * *", "reminders.too_frequent"),
        ("* 9 * * *", "reminders.too_frequent"),
    ],
)
def test_bad_cron_lines_are_refused(cron: str, key: str) -> None:
    with pytest.raises(Refused) as info:
        reminders.validate_cron(cron)
    assert info.value.key == key


async def _simulate(session, pack, start: datetime, end: datetime, step: timedelta) -> None:
    t = start
    while t <= end:
        await reminders.run_due(session, pack, t, "w1")
        assert await reminders.run_due(session, pack, t, "w2") == []  # a second tick changes nothing
        await session.commit()
        t += step


async def test_a_simulated_day_creates_each_daily_run_once(session, world, pack) -> None:
    rules = await _rules(session, world.branch_a)
    await _simulate(
        session, pack, START, START + timedelta(days=1) - timedelta(minutes=1), timedelta(minutes=7)
    )
    for kind in (ReminderKind.COMMITMENT_DUE, ReminderKind.MILESTONE):
        runs = await _runs(session, rules[kind])
        assert [r.due_at for r in runs] == [datetime(2026, 11, 1, 1, 0, tzinfo=UTC)]
        assert runs[0].status is RunStatus.EMPTY  # nothing due that day
    assert await _runs(session, rules[ReminderKind.WEEKLY_DIGEST]) == []
    assert await _runs(session, rules[ReminderKind.MONTHLY_NUDGE]) == []


async def test_a_simulated_month_creates_the_right_runs_once_each(session, world, pack) -> None:
    w = world
    rules = await _rules(session, w.branch_a)
    session.add(
        Commitment(
            person_id=w.member_a.id,
            org_id=w.branch_a.id,
            text="每月参加一次志愿服务",
            deadline=date(2026, 11, 13),
        )
    )
    session.add(_entry(w.member_a2, w.branch_a, date(2026, 11, 3)))  # member_a2 logged this month
    await session.commit()
    await _simulate(session, pack, START, START + timedelta(days=30) - HOUR, HOUR)

    daily = [datetime(2026, 11, d, 1, 0, tzinfo=UTC) for d in range(1, 31)]
    for kind in (ReminderKind.COMMITMENT_DUE, ReminderKind.MILESTONE):
        assert [r.due_at for r in await _runs(session, rules[kind])] == daily
    mondays = [datetime(2026, 11, d, 1, 0, tzinfo=UTC) for d in (2, 9, 16, 23, 30)]
    digest_runs = await _runs(session, rules[ReminderKind.WEEKLY_DIGEST])
    assert [r.due_at for r in digest_runs] == mondays
    nudge_runs = await _runs(session, rules[ReminderKind.MONTHLY_NUDGE])
    assert [r.due_at for r in nudge_runs] == [datetime(2026, 11, 25, 2, 0, tzinfo=UTC)]
    assert all(r.status in (RunStatus.SENT, RunStatus.EMPTY) for r in digest_runs + nudge_runs)

    sent = await _deliveries(session)
    assert len({d.dedupe_key for d in sent}) == len(sent)
    # Commitment due 11-13, 3 days ahead: one reminder on 11-10, to its owner.
    (c_run,) = [
        r for r in await _runs(session, rules[ReminderKind.COMMITMENT_DUE]) if r.status is RunStatus.SENT
    ]
    assert c_run.due_at.date() == date(2026, 11, 10) and c_run.recipients == 1
    # Milestone on 11-20 with remind_days_before [7, 1]: runs of 11-13 and 11-19 reach the secretary.
    m_sent = [r for r in await _runs(session, rules[ReminderKind.MILESTONE]) if r.status is RunStatus.SENT]
    assert [r.due_at.date() for r in m_sent] == [date(2026, 11, 13), date(2026, 11, 19)]
    # The monthly nudge: everyone who logged nothing in November, once.
    nudged = {d.person_id for d in sent if d.dedupe_key.startswith(f"rem:{nudge_runs[0].id}:")}
    assert nudged == {w.secretary_a.id, w.member_a.id}
    digests = [d for d in sent if d.kind == "digest"]
    assert {d.person_id for d in digests} == {w.secretary_a.id} and len(digests) == 5


async def test_downtime_sends_one_catch_up_and_records_older_runs_as_missed(session, world, pack) -> None:
    w = world
    rules = await _rules(session, w.branch_a)
    await _only(session, rules, ReminderKind.COMMITMENT_DUE)
    session.add(
        Commitment(person_id=w.member_a.id, org_id=w.branch_a.id, text="结对帮扶", deadline=date(2026, 11, 7))
    )
    session.add(
        Commitment(
            person_id=w.member_a2.id, org_id=w.branch_a.id, text="学习交流", deadline=date(2026, 11, 5)
        )
    )
    await session.commit()
    back = datetime(2026, 11, 4, 2, 0, tzinfo=UTC)  # down from before 11-01 09:00 to 11-04 10:00 local
    claimed = await reminders.run_due(session, pack, back, "w1")
    runs = await _runs(session, rules[ReminderKind.COMMITMENT_DUE])
    assert [(r.due_at.day, r.status) for r in runs] == [
        (1, RunStatus.MISSED),
        (2, RunStatus.MISSED),  # would have reminded member_a2 of 11-05: too late now, recorded
        (3, RunStatus.MISSED),
        (4, RunStatus.SENT),
    ]
    assert [r.id for r in claimed] == [runs[-1].id]
    assert [d.person_id for d in await _deliveries(session)] == [w.member_a.id]
    assert rules[ReminderKind.COMMITMENT_DUE].next_due_at == datetime(2026, 11, 5, 1, 0, tzinfo=UTC)
    assert await reminders.run_due(session, pack, back + HOUR, "w1") == []
    assert len(await _deliveries(session)) == 1


async def test_downtime_beyond_the_grace_period_sends_nothing_and_misses_everything(
    session, world, pack
) -> None:
    rules = await _rules(session, world.branch_a)
    await _only(session, rules, ReminderKind.COMMITMENT_DUE)
    back = datetime(2026, 11, 4, 0, 30, tzinfo=UTC)  # the last fire time (11-03 01:00) is 23.5 h old
    assert await reminders.run_due(session, pack, back, "w1") == []
    runs = await _runs(session, rules[ReminderKind.COMMITMENT_DUE])
    assert [(r.due_at.day, r.status) for r in runs] == [(d, RunStatus.MISSED) for d in (1, 2, 3)]
    assert await _deliveries(session) == []


async def test_an_empty_digest_is_recorded_but_not_sent(session, world, pack) -> None:
    w = world
    rules = await _rules(session, w.branch_a)
    await _only(session, rules, ReminderKind.WEEKLY_DIGEST)
    for p in (w.secretary_a, w.member_a, w.member_a2):
        session.add(_entry(p, w.branch_a, date(2026, 10, 20)))  # everyone active this quarter
    await session.commit()
    monday = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    (run,) = await reminders.run_due(session, pack, monday, "w1")
    assert run.status is RunStatus.EMPTY and run.recipients == 0
    assert await _deliveries(session) == []

    session.add(_entry(w.member_a, w.branch_a, date(2026, 11, 3), EntryStatus.PENDING))
    session.add(_entry(w.secretary_a, w.branch_a, date(2026, 11, 3), EntryStatus.PENDING))  # staff reviews it
    await session.commit()
    (run,) = await reminders.run_due(session, pack, monday + timedelta(days=7), "w1")
    assert run.status is RunStatus.SENT and run.recipients == 1
    (d,) = await _deliveries(session)
    assert d.person_id == w.secretary_a.id and d.kind == "digest" and d.chat_id == w.secretary_a.telegram_id
    assert "待审核的服务记录：1 条" in d.payload["text"]
    assert "逾期" not in d.payload["text"]


async def test_digest_counts(session, world) -> None:
    w = world
    today = date(2026, 11, 16)
    now = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)
    session.add_all(
        [
            _entry(w.member_a, w.branch_a, date(2026, 11, 10), EntryStatus.PENDING),
            _entry(w.member_a, w.branch_a, date(2026, 11, 11), EntryStatus.PENDING),
            _entry(w.member_b, w.branch_b, date(2026, 11, 11), EntryStatus.PENDING),  # other branch
            Commitment(person_id=w.member_a.id, org_id=w.branch_a.id, text="a", deadline=date(2026, 11, 20)),
            Commitment(person_id=w.member_a2.id, org_id=w.branch_a.id, text="b", deadline=date(2026, 11, 1)),
            Commitment(person_id=w.member_a2.id, org_id=w.branch_a.id, text="c", deadline=date(2026, 12, 30)),
            Commitment(
                person_id=w.member_a2.id,
                org_id=w.branch_a.id,
                text="d",
                deadline=date(2026, 11, 1),
                status=CommitmentStatus.REPORTED,
            ),
        ]
    )
    await session.flush()
    d = await reminders.digest_for(session, w.branch_a, today, now)
    # member_a logged (pending) this quarter; secretary_a and member_a2 did not.
    assert d == reminders.Digest(
        pending_entries=2,
        pending_evaluations=1,
        due_soon=1,
        overdue=1,
        inactive=2,
        unacked_notices=0,
        unacked_people=0,
    )


async def test_paused_or_unreachable_members_get_no_nudge(session, world, pack) -> None:
    w = world
    rules = await _rules(session, w.branch_a)
    await _only(session, rules, ReminderKind.MONTHLY_NUDGE)
    await reminders.pause_nudges(session, w.member_a, True)
    w.secretary_a.blocked_at = START
    await session.commit()
    (run,) = await reminders.run_due(session, pack, datetime(2026, 11, 25, 2, 0, tzinfo=UTC), "w1")
    (d,) = await _deliveries(session)
    assert d.person_id == w.member_a2.id and d.dedupe_key == f"rem:{run.id}:{w.member_a2.id}"
    assert "本月您还没有登记志愿服务" in d.payload["text"]
    (button,) = d.payload["reply_markup"]["inline_keyboard"][0]
    assert button["callback_data"] == reminders.PAUSE_CALLBACK


async def test_reminders_are_in_the_recipients_language(session, world, pack) -> None:
    w = world
    w.member_a.locale = "en"
    rules = await _rules(session, w.branch_a)
    await _only(session, rules, ReminderKind.COMMITMENT_DUE)
    session.add(
        Commitment(
            person_id=w.member_a.id, org_id=w.branch_a.id, text="Visit <x>", deadline=date(2026, 11, 4)
        )
    )
    await session.commit()
    await reminders.run_due(session, pack, datetime(2026, 11, 1, 1, 0, tzinfo=UTC), "w1")
    (d,) = await _deliveries(session)
    assert d.payload["text"].startswith("⏳ Your commitments due in 3 days")
    assert "Visit &lt;x&gt; (deadline 2026-11-04)" in d.payload["text"]


async def test_a_rerun_cannot_double_messages(session, world, pack) -> None:
    rules = await _rules(session, world.branch_a)
    await _only(session, rules, ReminderKind.MONTHLY_NUDGE)
    (run,) = await reminders.run_due(session, pack, datetime(2026, 11, 25, 2, 0, tzinfo=UTC), "w1")
    before = len(await _deliveries(session))
    assert before == 3
    await reminders.execute_run(session, run, pack, datetime(2026, 11, 25, 2, 5, tzinfo=UTC))
    assert len(await _deliveries(session)) == before


@pytest.mark.parametrize(
    ("who", "branch", "allowed"),
    [
        ("secretary_a", "branch_a", True),
        ("secretary_a", "branch_b", False),
        ("member_a", "branch_a", False),
        ("staff", "branch_b", True),
        ("other_staff", "branch_a", False),
        ("admin", "branch_a", True),
    ],
)
async def test_set_rule_is_scoped(session, world, who, branch, allowed) -> None:
    rules = await _rules(session, getattr(world, branch))
    actor = await world.actor(session, getattr(world, who))
    rule = rules[ReminderKind.WEEKLY_DIGEST]
    if allowed:
        await reminders.set_rule(session, actor, rule.id, cron="30 8 * * 5", now=START)
        assert rule.cron == "30 8 * * 5"
        assert rule.next_due_at == datetime(2026, 11, 6, 0, 30, tzinfo=UTC)  # Friday 08:30 local
    else:
        with pytest.raises(Forbidden):
            await reminders.set_rule(session, actor, rule.id, cron="30 8 * * 5", now=START)
        assert rule.cron == "0 9 * * 1"


async def test_set_rule_checks_everything_before_changing_anything(session, world) -> None:
    rules = await _rules(session, world.branch_a)
    actor = await world.actor(session, world.secretary_a)
    rule = rules[ReminderKind.COMMITMENT_DUE]
    with pytest.raises(Refused) as info:
        await reminders.set_rule(
            session, actor, rule.id, cron="0 25 * * *", params={"days_before": 5}, now=START
        )
    assert info.value.key == "reminders.bad_cron"
    for bad in ({"days_before": -1}, {"days_before": 100}, {"colour": "red"}):
        with pytest.raises(Invalid) as info:
            await reminders.set_rule(session, actor, rule.id, cron="0 8 * * *", params=bad, now=START)
        assert info.value.key == "reminders.bad_params"
    assert (rule.cron, rule.params) == ("0 9 * * *", {"days_before": 3})
    await reminders.set_rule(session, actor, rule.id, params={"days_before": 5}, now=START)
    assert rule.params == {"days_before": 5}
    milestone = rules[ReminderKind.MILESTONE]
    await reminders.set_rule(session, actor, milestone.id, params={"days_before": [14, 2]}, now=START)
    assert milestone.params == {"days_before": [14, 2]}


async def test_a_rule_switched_off_and_on_does_not_flood_missed_runs(session, world, pack) -> None:
    rules = await _rules(session, world.branch_a)
    await _only(session, rules, ReminderKind.COMMITMENT_DUE)
    actor = await world.actor(session, world.secretary_a)
    rule = rules[ReminderKind.COMMITMENT_DUE]
    await reminders.set_rule(session, actor, rule.id, enabled=False, now=START)
    later = START + timedelta(days=10)
    assert await reminders.run_due(session, pack, later, "w1") == []
    await reminders.set_rule(session, actor, rule.id, enabled=True, now=later)
    assert rule.next_due_at == datetime(2026, 11, 11, 1, 0, tzinfo=UTC)
    assert await reminders.run_due(session, pack, later, "w1") == []
    assert await _runs(session, rule) == []


async def test_list_rules_is_scoped(session, world) -> None:
    await _rules(session, world.branch_a)
    sec = await world.actor(session, world.secretary_a)
    assert {r.kind for r in await reminders.list_rules(session, sec, world.branch_a.id)} == set(ReminderKind)
    with pytest.raises(Forbidden):
        await reminders.list_rules(session, sec, world.branch_b.id)


async def _claim(maker: async_sessionmaker[AsyncSession], now: datetime, worker: str) -> list[int]:
    async with maker() as s:
        runs = await reminders.claim_due_runs(s, now, worker)
        await s.commit()
        return [r.rule_id for r in runs]


@postgres_only("concurrent claims with SKIP LOCKED; SQLite has one writer")
async def test_two_schedulers_claim_each_run_once_on_postgresql(session, sessionmaker, world) -> None:
    for org in (world.branch_a, world.branch_b, world.branch_c):
        await _rules(session, org)
    await session.commit()
    now = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # Monday 09:00: digest, commitment and milestone rules
    results = await asyncio.gather(*(_claim(sessionmaker, now, f"w{i}") for i in range(3)))
    claimed = [rid for r in results for rid in r]
    assert len(claimed) == len(set(claimed)) == 9
    runs = await session.scalar(
        select(func.count()).select_from(ReminderRun).where(ReminderRun.status == RunStatus.CLAIMED)
    )
    assert runs == 9


@postgres_only("concurrent claims with SKIP LOCKED; SQLite has one writer")
async def test_a_locked_rule_is_skipped_not_waited_for_on_postgresql(session, sessionmaker, world) -> None:
    await _rules(session, world.branch_a)
    await session.commit()
    now = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    async with sessionmaker() as holder:
        held = await reminders.claim_due_runs(holder, now, "w1")
        assert len(held) == 3
        assert await asyncio.wait_for(_claim(sessionmaker, now, "w2"), timeout=10) == []
        await holder.commit()
    assert await _claim(sessionmaker, now, "w2") == []
