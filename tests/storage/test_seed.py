"""The demo's seed data: made through the store's rules, dated back from "now", seeded once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from content.pack import get_pack
from storage import seed, web_auth
from storage.commitments import overdue_clause
from storage.models import (
    Assessment,
    Commitment,
    CommitmentStatus,
    Delivery,
    DeliveryStatus,
    EntryStatus,
    Notice,
    Org,
    OrgKind,
    Person,
    ReminderRule,
    Role,
    ServiceEntry,
    ServiceListItem,
)

NOW = datetime(2026, 5, 20, 4, 0, tzinfo=UTC)  # 12:00 in Xining
TODAY = date(2026, 5, 20)
PACK = get_pack(seed.PACK_ID)  # the pack the seed is written for; the demo passes the same


async def count(s, model, *where) -> int:
    return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_seed_builds_the_demo_province(session) -> None:
    made = await seed.seed_demo(session, now=NOW, pack=PACK)
    await session.commit()
    assert made is not None

    orgs = {o.name: o for o in await session.scalars(select(Org))}
    assert orgs[seed.PROVINCE].kind is OrgKind.PROVINCE
    assert orgs[seed.COMMITTEE].parent_id == orgs[seed.PROVINCE].id
    trade, academic = orgs[seed.TRADE_BRANCH], orgs[seed.ACADEMIC_BRANCH]
    assert (trade.kind, trade.category, academic.category) == (OrgKind.BRANCH, "trade", "academic")
    assert trade.parent_id == academic.parent_id == orgs[seed.COMMITTEE].id

    people = await seed.demo_people(session)
    assert len(people) == len(seed.PEOPLE)
    roles = [p.role for p in people]
    assert roles.count(Role.MEMBER) == 5 and roles.count(Role.SECRETARY) == 2
    assert roles.count(Role.STAFF) == 1 and roles.count(Role.ADMIN) == 1
    assert all(p.telegram_id for p in people)
    assert await count(session, Person, Person.consent_at.is_(None)) == 0
    li = next(p for p in people if p.name == "李建华")
    assert li.aliases == ("李书记",) and li.org_name == seed.TRADE_BRANCH
    assert people[0].person_id == made.people[seed.FIRST_PERSON]


async def test_seed_history_covers_every_state_and_stays_in_the_past(session) -> None:
    await seed.seed_demo(session, now=NOW, pack=PACK)
    await session.commit()

    entries = list(await session.scalars(select(ServiceEntry)))
    statuses = {st: sum(e.status is st for e in entries) for st in EntryStatus}
    assert statuses[EntryStatus.APPROVED] >= 5 and statuses[EntryStatus.PENDING] >= 3
    assert statuses[EntryStatus.REJECTED] == 1
    assert {"volunteer", "integrity", "welfare_day", "walk_with_you"} <= {e.action for e in entries}
    assert all(TODAY - timedelta(days=seed.HISTORY_DAYS) <= e.day <= TODAY for e in entries)
    assert all(e.created_at <= NOW and (e.reviewed_at is None or e.reviewed_at <= NOW) for e in entries)
    # Reviewed by someone else: a secretary's own service by the committee's staff.
    assert all(e.reviewer_id != e.person_id for e in entries if e.status is not EntryStatus.PENDING)
    assert max(e.created_at for e in entries) >= NOW - timedelta(days=7)  # recent enough to look alive

    c_status = [c.status for c in await session.scalars(select(Commitment))]
    assert {CommitmentStatus.MADE, CommitmentStatus.REPORTED, CommitmentStatus.EVALUATED} <= set(c_status)
    assert await count(session, Commitment, overdue_clause(TODAY)) == 1

    assessment = await session.scalar(select(Assessment))
    assert assessment is not None and assessment.checklist_id == "six_haves"
    assert assessment.finished_at is not None and 0 < (assessment.score or 0) < 100
    assert assessment.period == "2026-Q1"

    assert await count(session, ServiceListItem, ServiceListItem.active.is_(True)) == 3
    notice = await session.scalar(select(Notice))
    assert notice is not None
    deliveries = list(await session.scalars(select(Delivery).where(Delivery.notice_id == notice.id)))
    assert len(deliveries) == 3  # the branch's three members; the sender follows the counts
    assert {d.status for d in deliveries} == {DeliveryStatus.SENT}  # nothing left for the worker
    assert sum(d.acknowledged_at is not None for d in deliveries) == 2
    assert await count(session, ReminderRule) == 8  # four default rules per branch


async def test_seeded_web_sign_ins_work(session) -> None:
    await seed.seed_demo(session, now=NOW, pack=PACK)
    await session.commit()
    admin = await web_auth.check_password(session, seed.ADMIN_USERNAME, seed.ADMIN_PASSWORD, NOW)
    staff = await web_auth.check_password(session, seed.STAFF_USERNAME, seed.STAFF_PASSWORD, NOW)
    assert admin is not None and admin.is_admin
    assert staff is not None and staff.top_role is Role.STAFF


async def test_seeding_twice_changes_nothing(session) -> None:
    assert await seed.seed_demo(session, now=NOW, pack=PACK) is not None
    await session.commit()
    before = [await count(session, m) for m in (Org, Person, ServiceEntry, Commitment, Delivery)]
    assert await seed.seed_demo(session, now=NOW + timedelta(days=3), pack=PACK) is None
    await session.commit()
    assert [await count(session, m) for m in (Org, Person, ServiceEntry, Commitment, Delivery)] == before


async def test_seed_leaves_a_database_with_other_data_alone(session, world) -> None:
    before = [await count(session, m) for m in (Org, Person, ServiceEntry)]
    assert await seed.seed_demo(session, now=NOW, pack=PACK) is None
    assert [await count(session, m) for m in (Org, Person, ServiceEntry)] == before
