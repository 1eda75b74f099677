"""Member search and profiles for the admin web: scope, filters and the audit rows they leave."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.errors import Forbidden, Invalid, NotFound
from storage.member_search import member_profile, people_filter, search_people
from storage.models import AuditEntry, Role


async def test_staff_search_their_subtree(session, world) -> None:
    actor = await world.actor(session, world.staff, via="web")
    page = await search_people(session, actor, people_filter())
    names = {r.name for r in page.rows}
    assert {"李书记", "张三", "李四", "陈书记", "王五", "王干事"} == names
    assert "马六" not in names and page.total == len(page.rows)
    found = await search_people(session, actor, people_filter(q="李", role="member"))
    assert [r.name for r in found.rows] == ["李四"]
    rows = await session.scalars(select(AuditEntry).where(AuditEntry.action == "members.view"))
    assert [a.detail for a in rows] == [{"rows": 6, "search": False}, {"rows": 1, "search": True}]


async def test_a_secretary_sees_only_the_branch(session, world) -> None:
    actor = await world.actor(session, world.secretary_a, via="web")
    page = await search_people(session, actor, people_filter(per_page=2))
    assert page.total == 3 and page.pages == 2 and len(page.rows) == 2
    with pytest.raises(Forbidden):
        await search_people(session, actor, people_filter(org_id=world.branch_b.id))


async def test_members_search_nothing(session, world) -> None:
    actor = await world.actor(session, world.member_a, via="web")
    assert (await search_people(session, actor, people_filter())).total == 0


async def test_profile_is_scoped_and_audited(session, world) -> None:
    actor = await world.actor(session, world.staff, via="web")
    profile = await member_profile(session, actor, world.member_a.id)
    assert profile.person.id == world.member_a.id
    assert [(a.org_id, a.role) for a in profile.affiliations] == [(world.branch_a.id, Role.MEMBER)]
    row = await session.scalar(select(AuditEntry).where(AuditEntry.action == "person.view"))
    assert row is not None and row.subject_person_id == world.member_a.id and row.via == "web"
    with pytest.raises(Forbidden):
        await member_profile(session, actor, world.member_c.id)
    # Nobody at all is refused exactly like someone outside the scope: decided before any read.
    with pytest.raises(Forbidden):
        await member_profile(session, actor, 999_999)
    admin = await world.actor(session, world.admin, via="web")
    with pytest.raises(NotFound):
        await member_profile(session, admin, 999_999)


async def test_bad_filter_is_invalid() -> None:
    with pytest.raises(Invalid):
        people_filter(q="x" * 51)
