"""Searching service entries for the admin web: scope, filters, paging, the reviewable mark, audit."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from storage.entry_search import entry_filter, search_entries
from storage.errors import Forbidden, Invalid
from storage.models import AuditEntry, EntryStatus, ServiceEntry


def _entry(person, org, day: date, minutes: int = 60, status=EntryStatus.PENDING, text="社区义诊"):
    return ServiceEntry(
        person_id=person.id,
        org_id=org.id,
        day=day,
        minutes=minutes,
        action="volunteer",
        place="城东社区",
        description=text,
        status=status,
    )


@pytest.fixture
async def entries(session, world):
    rows = [
        _entry(world.member_a, world.branch_a, date(2026, 11, 1)),
        _entry(world.member_a2, world.branch_a, date(2026, 11, 2), status=EntryStatus.APPROVED),
        _entry(world.secretary_a, world.branch_a, date(2026, 11, 3), text="走访困难党员"),
        _entry(world.member_b, world.branch_b, date(2026, 10, 1)),
        _entry(world.member_c, world.branch_c, date(2026, 11, 4)),
    ]
    session.add_all(rows)
    await session.flush()
    return rows


async def test_staff_see_their_subtree_newest_first(session, world, entries) -> None:
    actor = await world.actor(session, world.staff, via="web")
    page = await search_entries(session, actor, entry_filter())
    assert [r.entry.id for r in page.rows] == [entries[2].id, entries[1].id, entries[0].id, entries[3].id]
    assert page.total == 4
    assert {st: (t.entries, t.minutes) for st, t in page.by_status.items()} == {
        EntryStatus.APPROVED: (1, 60),
        EntryStatus.PENDING: (3, 180),
        EntryStatus.REJECTED: (0, 0),
    }
    assert [r.reviewable for r in page.rows] == [True, False, True, True]
    audit = await session.scalar(select(AuditEntry).where(AuditEntry.action == "entries.view"))
    assert audit is not None and audit.detail["rows"] == 4


async def test_a_secretary_cannot_review_their_own_or_see_other_branches(session, world, entries) -> None:
    actor = await world.actor(session, world.secretary_a, via="web")
    page = await search_entries(session, actor, entry_filter())
    assert {r.entry.id: r.reviewable for r in page.rows} == {
        entries[0].id: True,
        entries[1].id: False,
        entries[2].id: False,  # their own: the staff above review it
    }
    with pytest.raises(Forbidden):
        await search_entries(session, actor, entry_filter(org_id=world.branch_b.id))


async def test_filters_and_paging(session, world, entries) -> None:
    actor = await world.actor(session, world.admin, via="web")
    f = entry_filter(status="pending", org_id=world.committee.id, date_from="2026-11-01", per_page=1, page=2)
    page = await search_entries(session, actor, f)
    assert page.total == 2 and page.pages == 2 and [r.entry.id for r in page.rows] == [entries[0].id]
    found = await search_entries(session, actor, entry_filter(q="困难"))
    assert [r.entry.id for r in found.rows] == [entries[2].id]
    by_name = await search_entries(session, actor, entry_filter(q=world.member_b.name))
    assert [r.entry.id for r in by_name.rows] == [entries[3].id]
    assert (await search_entries(session, actor, entry_filter(q="100%_"))).total == 0
    person = await search_entries(session, actor, entry_filter(person_id=world.member_c.id))
    assert [r.branch_name for r in person.rows] == [world.branch_c.name]


async def test_bad_filters_are_invalid(session, world) -> None:
    with pytest.raises(Invalid):
        entry_filter(status="lost")
    with pytest.raises(Invalid):
        entry_filter(date_from="2026-11-02", date_to="2026-11-01")
    with pytest.raises(Invalid):
        entry_filter(per_page=100000)


async def test_totals_are_split_by_status_never_summed(session, world) -> None:
    session.add_all(
        [
            _entry(world.member_a, world.branch_a, date(2026, 11, 1), 120, EntryStatus.APPROVED),
            _entry(world.member_a, world.branch_a, date(2026, 11, 2), 90, EntryStatus.PENDING),
            _entry(world.member_a, world.branch_a, date(2026, 11, 3), 30, EntryStatus.REJECTED),
        ]
    )
    await session.flush()
    actor = await world.actor(session, world.secretary_a, via="web")
    page = await search_entries(session, actor, entry_filter(status=None))
    assert page.total == 3
    assert [(st, t.minutes) for st, t in page.by_status.items()] == [
        (EntryStatus.APPROVED, 120),
        (EntryStatus.PENDING, 90),
        (EntryStatus.REJECTED, 30),
    ]
    assert not hasattr(page, "total_minutes")  # no figure that adds the three together
