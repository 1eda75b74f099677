"""Scope before anything else: a person outside the viewer's scope is refused before any read,
audit row or name lookup; totals count only the viewer's scope; unknown ids are 404."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from storage.models import AuditEntry, EntryStatus, Membership, Role, ServiceEntry
from tests.admin.conftest import read, sign_in


async def _audit_rows(sessionmaker) -> int:
    return await read(sessionmaker, select(func.count()).select_from(AuditEntry))


def _entry(person_id: int, org_id: int, minutes: int) -> ServiceEntry:
    return ServiceEntry(
        person_id=person_id,
        org_id=org_id,
        day=date(2026, 11, 20),
        minutes=minutes,
        action="volunteer",
        description="义诊",
        status=EntryStatus.APPROVED,
    )


async def test_entries_of_a_person_outside_the_scope_are_refused_before_any_audit_row(
    client, new_client, sessionmaker, session, world
) -> None:
    session.add(_entry(world.member_c.id, world.branch_c.id, 60))
    await session.commit()
    await sign_in(client, sessionmaker, world.staff)
    before = await _audit_rows(sessionmaker)
    r = await client.get(f"/entries?person={world.member_c.id}&status=all")
    assert r.status_code == 404 and "马六" not in r.text
    assert await _audit_rows(sessionmaker) == before  # no row, so nothing names them later
    about_c = (
        select(func.count()).select_from(AuditEntry).where(AuditEntry.subject_person_id == world.member_c.id)
    )
    assert await read(sessionmaker, about_c) == 0
    audit_page = await client.get("/audit")
    assert audit_page.status_code == 200 and "马六" not in audit_page.text
    # Filtering the audit log by that person is refused the same way.
    assert (await client.get(f"/audit?person={world.member_c.id}")).status_code == 404
    # Inside the scope, the same page works and is audited.
    r = await client.get(f"/entries?person={world.member_a.id}&status=all")
    assert r.status_code == 200
    assert await _audit_rows(sessionmaker) == before + 1


@pytest.mark.parametrize(
    "url",
    [
        "/entries?person=999999",
        "/entries?person=12345678901234567890123",
        "/members/999999",
        "/members/12345678901234567890123",
        "/notices/12345678901234567890123",
        "/audit?person=999999",
    ],
)
async def test_unknown_ids_are_404(client, sessionmaker, world, url) -> None:
    await sign_in(client, sessionmaker, world.admin)
    before = await _audit_rows(sessionmaker)
    r = await client.get(url)
    assert r.status_code == 404, r.text[:300]
    assert await _audit_rows(sessionmaker) == before


async def test_person_page_totals_count_only_the_viewers_scope(client, sessionmaker, session, world) -> None:
    """张三 belongs to branch A and, since, branch C too; secretary A sees only A's hours."""
    session.add(Membership(person_id=world.member_a.id, org_id=world.branch_c.id, role=Role.MEMBER))
    session.add_all(
        [_entry(world.member_a.id, world.branch_a.id, 90), _entry(world.member_a.id, world.branch_c.id, 600)]
    )
    await session.commit()
    await sign_in(client, sessionmaker, world.secretary_a)
    page = (await client.get(f"/members/{world.member_a.id}")).text
    assert "<strong>1.5</strong>" in page and "11.5" not in page
    async with client.__class__(transport=client._transport, base_url=str(client.base_url)) as admin:
        await sign_in(admin, sessionmaker, world.admin)
        assert "<strong>11.5</strong>" in (await admin.get(f"/members/{world.member_a.id}")).text
