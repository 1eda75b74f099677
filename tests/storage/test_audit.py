"""The audit log: ids and field names only; read by admins (all) and staff (their subtree)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.audit import list_audit, record, system_actor
from storage.errors import Forbidden
from storage.models import AuditEntry

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


async def test_record_keeps_ids_and_field_names(session, world) -> None:
    actor = await world.actor(session, world.admin, via="web")
    row = await record(
        session,
        actor,
        "person.change",
        subject_person_id=world.member_a.id,
        org_id=world.branch_a.id,
        detail={"fields": ["locale", "nudges_paused"], "count": 2, "from": "2026-01-01"},
    )
    assert (row.actor_id, row.via, row.subject_person_id, row.org_id) == (
        world.admin.id,
        "web",
        world.member_a.id,
        world.branch_a.id,
    )


async def test_the_system_actor_has_no_person(session, world) -> None:
    row = await record(session, system_actor(), "org.add", org_id=world.province.id)
    assert (row.actor_id, row.via) == (None, "cli")
    assert system_actor().is_admin


@pytest.mark.parametrize(
    "detail",
    [
        {"name": "张三"},
        {"text": "Zhang San lives at 5 Main St"},
        {"fields": ["ok", "not ok"]},
        {"nested": {"phone": "+86 138 0000 0000"}},
        {"张": 1},
        {"obj": object()},
    ],
)
async def test_record_refuses_names_and_free_text(session, world, detail) -> None:
    with pytest.raises(ValueError):
        await record(session, system_actor(), "person.view", detail=detail)


@given(st.text(min_size=1, max_size=80))
def test_no_text_with_spaces_or_chinese_ever_passes(value: str) -> None:
    from storage.audit import _check_detail

    try:
        _check_detail({"v": value})
    except ValueError:
        return
    assert value.isascii() and " " not in value and len(value) <= 64


async def seed(session, w) -> None:
    def at(days: int) -> datetime:
        return NOW - timedelta(days=days)

    session.add_all(
        [
            AuditEntry(
                at=at(0),
                actor_id=w.admin.id,
                via="web",
                action="person.view",
                subject_person_id=w.member_a.id,
            ),
            AuditEntry(
                at=at(1), actor_id=w.staff.id, via="web", action="records.export", org_id=w.branch_b.id
            ),
            AuditEntry(
                at=at(2),
                actor_id=w.admin.id,
                via="web",
                action="person.view",
                subject_person_id=w.member_c.id,
            ),
            AuditEntry(at=at(3), actor_id=None, via="cli", action="org.add", org_id=w.branch_c.id),
            AuditEntry(
                at=at(4), actor_id=w.admin.id, via="web", action="members.view", org_id=w.committee.id
            ),
        ]
    )
    await session.commit()


async def test_admin_sees_all_newest_first(session, world) -> None:
    await seed(session, world)
    page = await list_audit(session, await world.actor(session, world.admin))
    assert page.total == 5
    assert [e.at for e in page.entries] == sorted((e.at for e in page.entries), reverse=True)


async def test_staff_see_their_subtree_only(session, world) -> None:
    await seed(session, world)
    page = await list_audit(session, await world.actor(session, world.staff))
    assert {(e.action, e.org_id, e.subject_person_id) for e in page.entries} == {
        ("person.view", None, world.member_a.id),  # about a member of their subtree
        ("records.export", world.branch_b.id, None),
        ("members.view", world.committee.id, None),
    }
    other = await list_audit(session, await world.actor(session, world.other_staff))
    assert {e.action for e in other.entries} == {"person.view", "org.add"}
    assert all(e.subject_person_id in (None, world.member_c.id) for e in other.entries)


@pytest.mark.parametrize("who", ["member_a", "secretary_a"])
async def test_members_and_secretaries_may_not_read_the_log(session, world, who) -> None:
    with pytest.raises(Forbidden):
        await list_audit(session, await world.actor(session, getattr(world, who)))


async def test_filters_and_pages(session, world) -> None:
    await seed(session, world)
    admin = await world.actor(session, world.admin)
    by_action = await list_audit(session, admin, action="person.view")
    assert by_action.total == 2 and {e.action for e in by_action.entries} == {"person.view"}
    by_person = await list_audit(session, admin, person_id=world.member_c.id)
    assert [e.subject_person_id for e in by_person.entries] == [world.member_c.id]
    by_actor = await list_audit(session, admin, person_id=world.staff.id)
    assert [e.action for e in by_actor.entries] == ["records.export"]
    day = (NOW - timedelta(days=2)).date()
    by_day = await list_audit(session, admin, date_from=day, date_to=day)
    assert [e.action for e in by_day.entries] == ["person.view"] and by_day.entries[
        0
    ].subject_person_id == world.member_c.id
    since = await list_audit(session, admin, date_from=date(2026, 11, 19))
    assert since.total == 2
    p1 = await list_audit(session, admin, page=1, per_page=2)
    p3 = await list_audit(session, admin, page=3, per_page=2)
    assert (p1.total, len(p1.entries), p1.pages, len(p3.entries)) == (5, 2, 3, 1)
    everything = [
        e.id for p in (1, 2, 3) for e in (await list_audit(session, admin, page=p, per_page=2)).entries
    ]
    assert sorted(everything) == sorted(e.id for e in (await list_audit(session, admin)).entries)
