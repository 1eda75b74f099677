"""The audit log with names: scope comes from list_audit, names from one lookup each."""

from __future__ import annotations

import pytest

from storage import audit
from storage.audit_view import audit_view
from storage.errors import Forbidden


async def test_rows_come_with_the_names_they_refer_to(session, world) -> None:
    staff = await world.actor(session, world.staff, via="web")
    await audit.record(session, staff, "person.view", subject_person_id=world.member_a.id)
    await audit.record(session, staff, "members.view", org_id=world.branch_a.id)
    other = await world.actor(session, world.other_staff, via="web")
    await audit.record(session, other, "person.view", subject_person_id=world.member_c.id)
    view = await audit_view(session, staff)
    assert view.page.total == 2
    assert view.people == {world.staff.id: "王干事", world.member_a.id: "张三"}
    assert view.orgs == {world.branch_a.id: world.branch_a.name}
    admin = await audit_view(
        session, await world.actor(session, world.admin, via="web"), action="person.view"
    )
    assert admin.page.total == 2


async def test_secretaries_have_no_audit_log(session, world) -> None:
    with pytest.raises(Forbidden):
        await audit_view(session, await world.actor(session, world.secretary_a, via="web"))
