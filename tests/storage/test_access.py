"""Scopes: a secretary manages the branch, staff the subtree, an admin everything."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.access import require_manager, require_person_access
from storage.errors import Forbidden
from storage.models import Org


async def test_scope_filter_selects_exactly_the_managed_orgs(session, world) -> None:
    async def visible(person) -> set[int]:
        actor = await world.actor(session, person)
        return set(await session.scalars(select(Org.id).where(actor.scope_filter(Org.path))))

    w = world
    assert await visible(w.secretary_a) == {w.branch_a.id}
    assert await visible(w.staff) == {w.committee.id, w.branch_a.id, w.branch_b.id}
    assert await visible(w.admin) == {
        o.id for o in (w.province, w.committee, w.branch_a, w.branch_b, w.other_committee, w.branch_c)
    }
    assert await visible(w.member_a) == set()


@pytest.mark.parametrize(
    ("who", "target", "allowed"),
    [
        ("secretary_a", "member_a", True),
        ("secretary_a", "member_b", False),
        ("staff", "member_b", True),
        ("staff", "member_c", False),
        ("member_a", "member_a", True),
        ("member_a", "member_a2", False),
        ("admin", "member_c", True),
        ("other_staff", "member_a", False),
    ],
)
async def test_person_access(session, world, who: str, target: str, allowed: bool) -> None:
    actor = await world.actor(session, getattr(world, who))
    person = getattr(world, target)
    if allowed:
        assert (await require_person_access(session, actor, person.id)).id == person.id
    else:
        with pytest.raises(Forbidden):
            await require_person_access(session, actor, person.id)


async def test_secretary_cannot_manage_a_sibling_branch(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    assert (await require_manager(session, actor, world.branch_a.id)).id == world.branch_a.id
    with pytest.raises(Forbidden):
        await require_manager(session, actor, world.branch_b.id)


async def test_a_person_outside_the_scope_is_refused_before_their_row_is_read(session, world) -> None:
    """The scope is decided from memberships alone: the `people` row (the name) is never read."""
    from sqlalchemy import event

    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    actor = await world.actor(session, world.staff)
    session.expunge_all()  # nothing cached in the identity map: a read would have to query
    engine = session.bind.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with pytest.raises(Forbidden):
            await require_person_access(session, actor, world.member_c.id)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements and not any("FROM people" in s for s in statements), statements
