"""Small builders for test data, written straight to the tables (no store rules), so a test
can set up exactly the world it needs and then exercise one rule."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage.access import Actor, load_actor
from storage.models import Certificate, EntryStatus, Membership, Org, OrgKind, Person, Role, ServiceEntry

_tg = itertools.count(100001)


async def make_org(
    s: AsyncSession,
    name: str,
    kind: OrgKind,
    parent: Org | None = None,
    category: str | None = None,
    timezone: str = "Asia/Shanghai",
) -> Org:
    org = Org(
        name=name,
        kind=kind,
        parent_id=parent.id if parent else None,
        category=category,
        timezone=timezone,
        path="/",
    )
    s.add(org)
    await s.flush()
    org.path = f"{parent.path if parent else '/'}{org.id}/"
    await s.flush()
    return org


async def make_person(
    s: AsyncSession,
    name: str,
    org: Org | None = None,
    role: Role = Role.MEMBER,
    *,
    telegram_id: int | None = None,
    consent: bool = True,
    locale: str | None = "zh",
) -> Person:
    p = Person(
        name=name,
        telegram_id=telegram_id if telegram_id is not None else next(_tg),
        locale=locale,
        consent_at=datetime(2026, 1, 1, tzinfo=UTC) if consent else None,
    )
    s.add(p)
    await s.flush()
    if org is not None:
        s.add(Membership(person_id=p.id, org_id=org.id, role=role))
        await s.flush()
    return p


@dataclass
class World:
    """A province with one committee, two branches under it and a second committee's branch outside it."""

    province: Org
    committee: Org
    branch_a: Org
    branch_b: Org
    other_committee: Org
    branch_c: Org  # outside `committee`'s subtree
    admin: Person
    staff: Person  # staff of `committee`
    other_staff: Person  # staff of `other_committee`
    secretary_a: Person
    secretary_b: Person
    secretary_c: Person
    member_a: Person
    member_a2: Person
    member_b: Person
    member_c: Person

    async def actor(self, s: AsyncSession, person: Person, via: str = "bot") -> Actor:
        return await load_actor(s, person.id, via)


async def make_world(s: AsyncSession) -> World:
    prov = await make_org(s, "青海省社会组织党工委", OrgKind.PROVINCE)
    com = await make_org(s, "西宁市社会组织党工委", OrgKind.COMMITTEE, prov)
    a = await make_org(s, "西宁市餐饮行业协会党支部", OrgKind.BRANCH, com, category="trade")
    b = await make_org(s, "青海省地理学会党支部", OrgKind.BRANCH, com, category="academic")
    com2 = await make_org(s, "海东市社会组织党工委", OrgKind.COMMITTEE, prov)
    c = await make_org(s, "海东市慈善基金会党支部", OrgKind.BRANCH, com2, category="foundation")
    w = World(
        province=prov,
        committee=com,
        branch_a=a,
        branch_b=b,
        other_committee=com2,
        branch_c=c,
        admin=await make_person(s, "管理员", prov, Role.ADMIN),
        staff=await make_person(s, "王干事", com, Role.STAFF),
        other_staff=await make_person(s, "赵干事", com2, Role.STAFF),
        secretary_a=await make_person(s, "李书记", a, Role.SECRETARY),
        secretary_b=await make_person(s, "陈书记", b, Role.SECRETARY),
        secretary_c=await make_person(s, "周书记", c, Role.SECRETARY),
        member_a=await make_person(s, "张三", a),
        member_a2=await make_person(s, "李四", a),
        member_b=await make_person(s, "王五", b),
        member_c=await make_person(s, "马六", c),
    )
    await s.commit()
    return w


async def make_certified_service(s: AsyncSession, w: World) -> None:
    """Service for a certificate of `w.member_a` (branch A) over 2026: two approved entries (150
    minutes on 2026-03-05 with an organizer; 90 minutes of "integrity" on 2026-06-01), and three a
    2026 certificate leaves out (one pending, one rejected, one approved on 2025-12-31)."""

    def entry(day: date, minutes: int, status: EntryStatus = EntryStatus.APPROVED, **kw: str) -> ServiceEntry:
        return ServiceEntry(
            person_id=w.member_a.id,
            org_id=w.branch_a.id,
            day=day,
            minutes=minutes,
            status=status,
            action=kw.pop("action", "volunteer"),
            place=kw.pop("place", "城东区八一路社区"),
            description=kw.pop("description", "为社区老人义务测量血压"),
            reviewer_id=w.secretary_a.id if status is not EntryStatus.PENDING else None,
            **kw,
        )

    s.add_all(
        [
            entry(date(2026, 3, 5), 150, organizer="西宁市餐饮行业协会"),
            entry(
                date(2026, 6, 1), 90, action="integrity", description="讲解食品安全规范", place="协会会议室"
            ),
            entry(date(2026, 7, 1), 60, status=EntryStatus.PENDING, description="尚未审核的记录"),
            entry(date(2026, 8, 1), 45, status=EntryStatus.REJECTED, description="被退回的记录"),
            entry(date(2025, 12, 31), 60, description="去年的记录"),
        ]
    )
    await s.commit()


async def make_certificate(
    s: AsyncSession, person: Person, issued_at: datetime, code: str = "QE4CW3X6RKVURKPK"
) -> Certificate:
    """A committed certificate row as if issued to `person` (Chinese, 2026-01-01 to 2026-06-30,
    270 minutes over 3 entries), with no PDF behind it: for what looks a certificate up."""
    cert = Certificate(
        code=code,
        person_id=person.id,
        name=person.name,
        date_from=date(2026, 1, 1),
        date_to=date(2026, 6, 30),
        minutes=270,
        entries=3,
        sha256="0" * 64,
        locale="zh",
        issued_at=issued_at,
    )
    s.add(cert)
    await s.commit()
    return cert


def add_entry(
    s: AsyncSession,
    person: Person,
    org: Org,
    *,
    day: date,
    minutes: int,
    status: EntryStatus = EntryStatus.APPROVED,
    action: str = "volunteer",
    description: str = "x",
    **kw: object,
) -> ServiceEntry:
    """A service entry written straight to the table (no rules): for setting up a scene."""
    row = ServiceEntry(
        person_id=person.id,
        org_id=org.id,
        day=day,
        minutes=minutes,
        action=action,
        description=description,
        status=status,
        **kw,
    )
    s.add(row)
    return row
