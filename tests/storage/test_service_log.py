"""The service log: logging rules, idempotent redelivery, the member's summary, and review."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from content.pack import get_pack
from storage import people
from storage import service_log as sl
from storage.access import load_actor
from storage.errors import Forbidden, Invalid, NotFound, Refused
from storage.models import EntryStatus, Pairing, Role, ServiceEntry
from tests.dbutil import postgres_only
from tests.factories import add_entry, make_person

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

TODAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def entry(**kw) -> sl.NewEntry:
    data = {"day": TODAY, "minutes": 60, "action": "volunteer", "description": "社区义诊"}
    data.update(kw)
    return sl.new_entry(**data)


async def log(session, world, person, *, source=None, window_days=90, **kw) -> ServiceEntry:
    actor = await world.actor(session, person)
    return await sl.log_service(
        session, actor, entry(**kw), source=source, today=TODAY, window_days=window_days, pack=PACK
    )


async def count(session) -> int:
    return await session.scalar(select(func.count(ServiceEntry.id)))


def put(
    session, person, org, *, day=TODAY, minutes=60, action="volunteer", status=EntryStatus.APPROVED, **kw
):
    """A row written straight to the table (no rules): for setting up a scene."""
    return add_entry(session, person, org, day=day, minutes=minutes, action=action, status=status, **kw)


# --------------------------------------------------------------------------------------------
# Logging


async def test_log_records_one_pending_entry_in_the_members_branch(session, world) -> None:
    row = await log(session, world, world.member_a, minutes=150, place=" 城东社区 ", source="7:1")
    assert (row.org_id, row.person_id, row.minutes, row.status) == (
        world.branch_a.id,
        world.member_a.id,
        150,
        EntryStatus.PENDING,
    )
    assert row.place == "城东社区"
    assert await count(session) == 1


async def test_secretary_may_log_too(session, world) -> None:
    row = await log(session, world, world.secretary_b)
    assert row.org_id == world.branch_b.id


@pytest.mark.parametrize("who", ["staff", "admin", "other_staff"])
async def test_only_branch_people_may_log(session, world, who) -> None:
    with pytest.raises(Refused) as e:
        await log(session, world, getattr(world, who))
    assert e.value.key == "log.not_member"
    assert await count(session) == 0


async def test_future_day_is_refused_but_today_is_fine(session, world) -> None:
    with pytest.raises(Refused) as e:
        await log(session, world, world.member_a, day=TODAY + timedelta(days=1))
    assert e.value.key == "log.future_date"
    assert await count(session) == 0
    await log(session, world, world.member_a, day=TODAY)
    assert await count(session) == 1


async def test_window_edge_is_inside_and_one_day_more_is_refused(session, world) -> None:
    await log(session, world, world.member_a, day=TODAY - timedelta(days=30), window_days=30)
    with pytest.raises(Refused) as e:
        await log(session, world, world.member_a, day=TODAY - timedelta(days=31), window_days=30)
    assert (e.value.key, e.value.params) == ("log.too_old", {"days": 30})
    assert await count(session) == 1


async def test_unknown_action_is_refused(session, world) -> None:
    with pytest.raises(Refused) as e:
        await log(session, world, world.member_a, action="no_such_action")
    assert e.value.key == "log.unknown_action"


async def test_day_fills_up_to_24_hours_and_not_a_minute_more(session, world) -> None:
    await log(session, world, world.member_a, minutes=23 * 60)
    await log(session, world, world.member_a, minutes=59)
    with pytest.raises(Refused) as e:
        await log(session, world, world.member_a, minutes=2)
    assert (e.value.key, e.value.params) == ("log.day_full", {"left": "0.02"})  # hours, not minutes
    await log(session, world, world.member_a, minutes=1)
    with pytest.raises(Refused) as e:
        await log(session, world, world.member_a, minutes=1)
    assert (e.value.key, e.value.params) == ("log.day_no_room", {"day": TODAY.isoformat()})
    assert await count(session) == 3


async def test_day_limit_is_per_person_and_per_day(session, world) -> None:
    await log(session, world, world.member_a, minutes=24 * 60)
    await log(session, world, world.member_a2, minutes=24 * 60)
    await log(session, world, world.member_a, minutes=24 * 60, day=TODAY - timedelta(days=1))
    assert await count(session) == 3


async def test_a_day_total_read_ahead_is_used_once_and_only_where_asked(session, world) -> None:
    """`day_room(read_ahead=True)` takes the totals read along with the update's claim for that
    person and a day they cover, once; anything else asks the database."""
    put(session, world.member_a, world.branch_a, minutes=10 * 60)
    await session.flush()
    person = world.member_a.id
    # A read-ahead that disagrees with the table, so its use shows in the answer.
    sl.remember_day_totals(session, person, TODAY - timedelta(days=1), TODAY, [[TODAY.isoformat(), 60]])
    assert await sl.day_room(session, person, TODAY, read_ahead=True) == 23 * 60
    assert await sl.day_room(session, person, TODAY, read_ahead=True) == 14 * 60  # used up: asked
    for whose, day, read_ahead, left in [
        (world.member_b.id, TODAY, True, 24 * 60),  # someone else
        (person, TODAY - timedelta(days=2), True, 24 * 60),  # a day it does not cover
        (person, TODAY, False, 14 * 60),  # not asked for
    ]:
        sl.remember_day_totals(session, person, TODAY - timedelta(days=1), TODAY, [[TODAY.isoformat(), 60]])
        assert await sl.day_room(session, whose, day, read_ahead=read_ahead) == left
    # A covered day with no entries has all its room; entries of one day add up.
    sl.remember_day_totals(session, person, TODAY - timedelta(days=1), TODAY, [[TODAY.isoformat(), 60]] * 3)
    assert await sl.day_room(session, person, TODAY, read_ahead=True) == 21 * 60
    sl.remember_day_totals(session, person, TODAY - timedelta(days=1), TODAY, None)
    assert await sl.day_room(session, person, TODAY - timedelta(days=1), read_ahead=True) == 24 * 60


async def test_the_persons_query_reads_the_day_totals_asked_for(session, world) -> None:
    """`people.chat_person(days=...)` (SQLite's path; PostgreSQL reads them with the claim): the
    totals are what `day_room` counts, and the check that takes them makes no statement."""
    a = world.member_a
    put(session, a, world.branch_a, minutes=60, status=EntryStatus.PENDING)
    put(session, a, world.branch_a, minutes=90)
    put(session, a, world.branch_a, minutes=600, status=EntryStatus.REJECTED)
    put(session, a, world.branch_a, day=TODAY - timedelta(days=1), minutes=30, status=EntryStatus.PENDING)
    put(session, a, world.branch_a, day=TODAY - timedelta(days=3), minutes=45)  # before the days
    put(session, world.member_b, world.branch_b, minutes=120)  # someone else
    await session.commit()
    days = (TODAY - timedelta(days=2), TODAY + timedelta(days=1))
    expected = {d: await sl.day_room(session, a.id, d) for d in days_between(*days)}
    assert expected[TODAY] == 24 * 60 - 150 and expected[TODAY - timedelta(days=1)] == 24 * 60 - 30
    for day, left in expected.items():
        found = await people.chat_person(session, a.telegram_id, state_key="k:1", days=days)
        assert found == await people.chat_person(session, a.telegram_id, state_key="k:1")
        with statements(session) as seen:
            assert await sl.day_room(session, a.id, day, read_ahead=True) == left
        assert seen == []
    # Someone with no entries: every day has all its room.
    await people.chat_person(session, world.member_a2.telegram_id, days=days)
    with statements(session) as seen:
        assert await sl.day_room(session, world.member_a2.id, TODAY, read_ahead=True) == 24 * 60
    assert seen == []


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@contextmanager
def statements(session) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    event.listen(session.bind.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(session.bind.sync_engine, "before_cursor_execute", note)


async def test_log_service_checks_the_day_with_a_query_of_its_own_under_the_lock(session, world) -> None:
    """A read-ahead is a snapshot from before the person's lock: the write's check never uses
    it, or two deliveries at once could both fit into the same hours."""
    put(session, world.member_a, world.branch_a, minutes=24 * 60)
    await session.flush()
    sl.remember_day_totals(session, world.member_a.id, TODAY, TODAY, [])  # "nothing logged yet"
    with pytest.raises(Refused) as e:
        await log(session, world, world.member_a, minutes=60)
    assert e.value.key == "log.day_no_room"


async def test_rejected_entries_do_not_count_toward_the_day_but_approved_ones_do(session, world) -> None:
    put(session, world.member_a, world.branch_a, minutes=20 * 60, status=EntryStatus.REJECTED)
    put(session, world.member_a, world.branch_a, minutes=20 * 60, status=EntryStatus.APPROVED)
    await session.flush()
    await log(session, world, world.member_a, minutes=4 * 60)
    with pytest.raises(Refused) as e:
        await log(session, world, world.member_a, minutes=1)
    assert e.value.key == "log.day_no_room"


async def test_redelivered_source_returns_the_first_row_even_when_the_day_is_now_full(session, world) -> None:
    first = await log(session, world, world.member_a, minutes=24 * 60, source="42:7")
    again = await log(session, world, world.member_a, minutes=24 * 60, source="42:7")
    assert again.id == first.id
    assert await count(session) == 1


async def test_redelivery_after_review_returns_the_reviewed_row_unchanged(session, world) -> None:
    first = await log(session, world, world.member_a, source="42:8")
    sec = await world.actor(session, world.secretary_a)
    await sl.review(session, sec, first.id, True, None, NOW)
    again = await log(session, world, world.member_a, minutes=300, source="42:8")
    assert (again.id, again.status, again.minutes) == (first.id, EntryStatus.APPROVED, 60)


async def test_same_source_from_another_person_is_refused(session, world) -> None:
    await log(session, world, world.member_a, source="42:9")
    with pytest.raises(Refused) as e:
        await log(session, world, world.member_a2, source="42:9")
    assert e.value.key == "log.duplicate_source"
    assert await count(session) == 1


async def test_concurrent_deliveries_of_one_message_store_one_row(clean_db, sessionmaker) -> None:
    from tests.factories import make_world

    async with sessionmaker() as s:
        w = await make_world(s)
    member_id = w.member_a.id

    async def deliver() -> int:
        async with sessionmaker() as s:
            actor = await load_actor(s, member_id)
            row = await sl.log_service(
                s, actor, entry(minutes=24 * 60), source="99:1", today=TODAY, window_days=90, pack=PACK
            )
            await s.commit()
            return row.id

    ids = await asyncio.wait_for(asyncio.gather(deliver(), deliver()), timeout=30)
    assert ids[0] == ids[1]
    async with sessionmaker() as s:
        assert await count(s) == 1


@postgres_only("a second transaction waiting on the first's uncommitted row")
async def test_a_source_taken_meanwhile_by_someone_else_is_refused_and_the_transaction_goes_on(
    clean_db, sessionmaker
) -> None:
    """The insert itself settles a race on the source (no savepoint): B's entry waits on A's
    uncommitted row with the same source, finds it taken once A commits, is refused, and B's
    transaction stays usable."""
    from sqlalchemy import text

    from tests.factories import make_world

    async with sessionmaker() as s:
        w = await make_world(s)
    async with sessionmaker() as a, sessionmaker() as b:
        actor_a = await load_actor(a, w.member_a2.id)
        await sl.log_service(a, actor_a, entry(), source="55:1", today=TODAY, window_days=90, pack=PACK)
        actor_b = await load_actor(b, w.member_a.id)
        b_pid = (await b.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        logging = asyncio.ensure_future(
            sl.log_service(b, actor_b, entry(), source="55:1", today=TODAY, window_days=90, pack=PACK)
        )
        async with sessionmaker() as watch, asyncio.timeout(10):
            # B has passed its check of the source and waits on A's row: the race is real.
            while not (
                await watch.execute(
                    text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": b_pid},
                )
            ).scalar_one():
                await watch.rollback()
                await asyncio.sleep(0)
        await a.commit()
        with pytest.raises(Refused) as e:
            await asyncio.wait_for(logging, 10)
        assert e.value.key == "log.duplicate_source"
        assert (await b.execute(text("SELECT 1"))).scalar_one() == 1  # not an aborted transaction
        await b.commit()
    async with sessionmaker() as s:
        assert await count(s) == 1


async def test_pairing_must_include_the_loggers_branch(session, world) -> None:
    ab = Pairing(strong_org_id=world.branch_a.id, weak_org_id=world.branch_b.id, started_on=TODAY)
    bc = Pairing(strong_org_id=world.branch_b.id, weak_org_id=world.branch_c.id, started_on=TODAY)
    session.add_all([ab, bc])
    await session.flush()
    row = await log(session, world, world.member_a, pairing_id=ab.id)
    assert row.pairing_id == ab.id
    with pytest.raises(Refused) as e:
        await log(session, world, world.member_a, pairing_id=bc.id)
    assert e.value.key == "log.bad_pairing"
    with pytest.raises(Refused):
        await log(session, world, world.member_a, pairing_id=9999)


# --------------------------------------------------------------------------------------------
# The member's summary


async def test_my_summary_splits_month_and_year_by_action(session, world) -> None:
    m, a = world.member_a, world.branch_a
    put(session, m, a, day=date(2026, 11, 2), minutes=90, action="volunteer")
    put(session, m, a, day=date(2026, 11, 20), minutes=30, action="volunteer")
    put(session, m, a, day=date(2026, 10, 31), minutes=60, action="volunteer")
    put(session, m, a, day=date(2026, 3, 1), minutes=45, action="integrity")
    put(session, m, a, day=date(2025, 12, 31), minutes=500, action="integrity")  # last year
    put(session, m, a, day=date(2026, 11, 3), minutes=40, status=EntryStatus.PENDING)
    put(session, m, a, day=date(2025, 11, 3), minutes=20, status=EntryStatus.PENDING)  # still open
    put(session, m, a, day=date(2026, 5, 3), minutes=20, status=EntryStatus.REJECTED, reason="重复登记")
    put(session, m, a, day=date(2025, 5, 3), minutes=20, status=EntryStatus.REJECTED, reason="去年的")
    put(session, world.member_a2, a, day=date(2026, 11, 3), minutes=999)  # someone else
    await session.flush()
    got = await sl.my_summary(session, await world.actor(session, m), TODAY)
    assert got.month_by_action == {"volunteer": 120}
    assert got.year_by_action == {"volunteer": 180, "integrity": 45}
    assert (got.month_minutes, got.year_minutes) == (120, 225)
    assert (got.pending_count, got.pending_minutes) == (2, 60)
    assert got.rejected_count == 1
    assert [r.reason for r in got.rejected] == ["重复登记"]


async def test_monthly_minutes_gives_twelve_approved_totals(session, world) -> None:
    m, a = world.member_a, world.branch_a
    put(session, m, a, day=date(2026, 1, 31), minutes=10)
    put(session, m, a, day=date(2026, 1, 1), minutes=5)
    put(session, m, a, day=date(2026, 12, 1), minutes=7)
    put(session, m, a, day=date(2026, 6, 1), minutes=100, status=EntryStatus.PENDING)
    put(session, m, a, day=date(2027, 1, 1), minutes=100)
    await session.flush()
    sec = await world.actor(session, world.secretary_a)
    assert await sl.monthly_minutes(session, sec, m.id, 2026) == [15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("member_a", True),
        ("member_a2", False),
        ("secretary_a", True),
        ("secretary_b", False),
        ("staff", True),
        ("other_staff", False),
        ("admin", True),
    ],
)
async def test_monthly_minutes_is_scoped(session, world, who, allowed) -> None:
    actor = await world.actor(session, getattr(world, who))
    if allowed:
        assert len(await sl.monthly_minutes(session, actor, world.member_a.id, 2026)) == 12
    else:
        with pytest.raises(Forbidden):
            await sl.monthly_minutes(session, actor, world.member_a.id, 2026)


# --------------------------------------------------------------------------------------------
# Review


async def _pending_ids(session, world, person) -> list[int]:
    actor = await world.actor(session, person)
    return [p.entry.id for p in await sl.pending_for(session, actor, 50, 0)]


async def test_pending_lists_follow_scope_and_send_secretaries_entries_up(session, world) -> None:
    ma = await log(session, world, world.member_a, day=TODAY - timedelta(days=2))
    sa = await log(session, world, world.secretary_a, day=TODAY - timedelta(days=1))
    mb = await log(session, world, world.member_b)
    mc = await log(session, world, world.member_c)
    assert await _pending_ids(session, world, world.secretary_a) == [ma.id]
    assert await _pending_ids(session, world, world.secretary_b) == [mb.id]
    assert await _pending_ids(session, world, world.staff) == [ma.id, sa.id, mb.id]
    assert await _pending_ids(session, world, world.other_staff) == [mc.id]
    assert await _pending_ids(session, world, world.admin) == [ma.id, sa.id, mb.id, mc.id]
    assert await _pending_ids(session, world, world.member_a) == []
    assert await sl.count_pending_for(session, await world.actor(session, world.staff)) == 3


async def test_pending_is_oldest_first_and_pages(session, world) -> None:
    rows = []
    for i in range(5):
        put_row = put(session, world.member_a, world.branch_a, status=EntryStatus.PENDING, minutes=10 + i)
        put_row.created_at = NOW - timedelta(hours=5 - i)
        rows.append(put_row)
    rows[0].created_at = NOW  # the first row written is the newest
    await session.flush()
    actor = await world.actor(session, world.secretary_a)
    page1 = [p.entry.minutes for p in await sl.pending_for(session, actor, 2, 0)]
    page2 = [p.entry.minutes for p in await sl.pending_for(session, actor, 2, 2)]
    page3 = [p.entry.minutes for p in await sl.pending_for(session, actor, 2, 4)]
    assert (page1, page2, page3) == ([11, 12], [13, 14], [10])


async def test_approve_records_the_reviewer_and_tells_whom_to_notify(session, world) -> None:
    row = await log(session, world, world.member_a)
    sec = await world.actor(session, world.secretary_a)
    out = await sl.review(session, sec, row.id, True, None, NOW)
    assert (out.entry.status, out.entry.reviewer_id, out.entry.reviewed_at) == (
        EntryStatus.APPROVED,
        world.secretary_a.id,
        NOW,
    )
    assert (out.telegram_id, out.locale, out.reachable) == (world.member_a.telegram_id, "zh", True)
    assert await _pending_ids(session, world, world.secretary_a) == []


async def test_reject_needs_a_reason_and_keeps_it(session, world) -> None:
    row = await log(session, world, world.member_a)
    sec = await world.actor(session, world.secretary_a)
    for bad in (None, "", "   "):
        with pytest.raises(Refused) as e:
            await sl.review(session, sec, row.id, False, bad, NOW)
        assert e.value.key == "log.reason_required"
    with pytest.raises(Invalid) as e:
        await sl.review(session, sec, row.id, False, "长" * 301, NOW)
    assert e.value.key == "log.reason_too_long"
    assert row.status is EntryStatus.PENDING
    out = await sl.review(session, sec, row.id, False, "  时长有误 ", NOW)
    assert (out.entry.status, out.entry.reason) == (EntryStatus.REJECTED, "时长有误")


async def test_a_stale_button_is_refused_as_already_reviewed(session, world) -> None:
    row = await log(session, world, world.member_a)
    sec = await world.actor(session, world.secretary_a)
    await sl.review(session, sec, row.id, True, None, NOW)
    with pytest.raises(Refused) as e:
        await sl.review(session, sec, row.id, False, "改主意了", NOW)
    assert e.value.key == "log.already_reviewed"
    assert row.status is EntryStatus.APPROVED


async def test_nobody_reviews_their_own_entry(session, world) -> None:
    # An admin who is also a branch member logs service: even the admin may not approve it.
    await make_person(session, "双重身份", world.branch_a)
    boss = await make_person(session, "管理员二", world.province, Role.ADMIN)
    from storage.models import Membership

    session.add(Membership(person_id=boss.id, org_id=world.branch_a.id, role=Role.MEMBER))
    await session.flush()
    row = await log(session, world, boss)
    with pytest.raises(Forbidden) as e:
        await sl.review(session, await world.actor(session, boss), row.id, True, None, NOW)
    assert e.value.key == "log.own_entry"
    assert row.id not in await _pending_ids(session, world, boss)


async def test_a_secretarys_entry_goes_to_staff_not_to_a_fellow_secretary(session, world) -> None:
    deputy = await make_person(session, "副书记", world.branch_a, Role.SECRETARY)
    row = await log(session, world, world.secretary_a)
    assert row.id not in await _pending_ids(session, world, deputy)
    with pytest.raises(Forbidden) as e:
        await sl.review(session, await world.actor(session, deputy), row.id, True, None, NOW)
    assert e.value.key == "log.secretary_entry"
    out = await sl.review(session, await world.actor(session, world.staff), row.id, True, None, NOW)
    assert out.entry.status is EntryStatus.APPROVED


async def test_review_of_a_missing_entry_is_not_found(session, world) -> None:
    with pytest.raises(NotFound):
        await sl.review(session, await world.actor(session, world.admin), 12345, True, None, NOW)


# Authorization matrix: review of a member's entry in branch A.
@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("member_a2", False),  # member, same branch
        ("member_b", False),  # member, elsewhere
        ("secretary_a", True),  # secretary inside
        ("secretary_b", False),  # secretary outside
        ("staff", True),  # staff above
        ("other_staff", False),  # staff of another committee
        ("admin", True),
    ],
)
async def test_review_authorization_matrix(session, world, who, allowed) -> None:
    row = await log(session, world, world.member_a)
    actor = await world.actor(session, getattr(world, who))
    if allowed:
        out = await sl.review(session, actor, row.id, True, None, NOW)
        assert out.entry.status is EntryStatus.APPROVED
    else:
        with pytest.raises(Forbidden):
            await sl.review(session, actor, row.id, True, None, NOW)
        assert row.status is EntryStatus.PENDING


async def test_review_many_is_all_or_nothing_within_scope(session, world) -> None:
    a1 = await log(session, world, world.member_a)
    a2 = await log(session, world, world.member_a2)
    b1 = await log(session, world, world.member_b)
    sec = await world.actor(session, world.secretary_a)
    with pytest.raises(Forbidden):
        await sl.review_many(session, sec, [a1.id, a2.id, b1.id], True, None, NOW)
    assert [r.status for r in (a1, a2, b1)] == [EntryStatus.PENDING] * 3
    with pytest.raises(NotFound):
        await sl.review_many(session, sec, [a1.id, 99999], True, None, NOW)
    assert a1.status is EntryStatus.PENDING


async def test_review_many_skips_entries_reviewed_meanwhile(session, world) -> None:
    a1 = await log(session, world, world.member_a)
    a2 = await log(session, world, world.member_a2)
    sec = await world.actor(session, world.secretary_a)
    await sl.review(session, sec, a1.id, False, "不符合要求", NOW)
    batch = await sl.review_many(session, sec, [a1.id, a2.id, a2.id], True, None, NOW)
    assert (batch.done, batch.skipped) == (1, 1)
    assert [o.entry.id for o in batch.outcomes] == [a2.id]
    assert (a1.status, a2.status) == (EntryStatus.REJECTED, EntryStatus.APPROVED)


async def test_review_many_reject_needs_a_reason_and_limits_size(session, world) -> None:
    a1 = await log(session, world, world.member_a)
    sec = await world.actor(session, world.secretary_a)
    with pytest.raises(Refused) as e:
        await sl.review_many(session, sec, [a1.id], False, None, NOW)
    assert e.value.key == "log.reason_required"
    with pytest.raises(Invalid) as e:
        await sl.review_many(session, sec, list(range(1, sl.MAX_BATCH + 2)), True, None, NOW)
    assert e.value.key == "log.batch_too_large"
    assert (await sl.review_many(session, sec, [], True, None, NOW)).done == 0
    assert a1.status is EntryStatus.PENDING
