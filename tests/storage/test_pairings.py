"""Pairings and exemplars: recorded by staff and admins within their subtree, listed by scope."""

from __future__ import annotations

from datetime import date

import pytest

from storage import pairings as pr
from storage.errors import Forbidden, Invalid, Refused

DAY = date(2026, 3, 1)


async def pair(session, world, person, strong, weak, **kw):
    actor = await world.actor(session, person)
    data = pr.new_pairing(strong_org_id=strong.id, weak_org_id=weak.id, started_on=DAY, **kw)
    return await pr.record_pairing(session, actor, data)


async def exemplar(session, world, person, org, *, title="服务型党组织标杆", year=2026, **kw):
    actor = await world.actor(session, person)
    return await pr.record_exemplar(
        session, actor, pr.new_exemplar(org_id=org.id, title=title, year=year, **kw)
    )


async def test_staff_pairs_two_branches_of_the_subtree(session, world) -> None:
    p = await pair(session, world, world.staff, world.branch_a, world.branch_b, note=" 以强带弱 ")
    assert (p.strong_org_id, p.weak_org_id, p.started_on, p.note, p.recorded_by_id) == (
        world.branch_a.id,
        world.branch_b.id,
        DAY,
        "以强带弱",
        world.staff.id,
    )


async def test_not_with_itself_not_twice_either_way(session, world) -> None:
    with pytest.raises(Refused) as e:
        await pair(session, world, world.staff, world.branch_a, world.branch_a)
    assert e.value.key == "pairing.same_branch"
    await pair(session, world, world.staff, world.branch_a, world.branch_b)
    for strong, weak in ((world.branch_a, world.branch_b), (world.branch_b, world.branch_a)):
        with pytest.raises(Refused) as e:
            await pair(session, world, world.staff, strong, weak)
        assert e.value.key == "pairing.duplicate"


async def test_only_branches_are_paired(session, world) -> None:
    with pytest.raises(Refused) as e:
        await pair(session, world, world.admin, world.committee, world.branch_a)
    assert e.value.key == "pairing.not_branch"


def test_note_length_is_checked() -> None:
    with pytest.raises(Invalid) as e:
        pr.new_pairing(strong_org_id=1, weak_org_id=2, started_on=DAY, note="n" * 501)
    assert e.value.key == "pairing.bad_note"


@pytest.mark.parametrize(
    ("who", "strong", "weak", "allowed"),
    [
        ("member_a", "branch_a", "branch_b", False),
        ("secretary_a", "branch_a", "branch_b", False),  # a secretary does not record pairings
        ("staff", "branch_a", "branch_b", True),
        ("staff", "branch_a", "branch_c", False),  # branch_c is outside the staff's subtree
        ("other_staff", "branch_a", "branch_b", False),
        ("admin", "branch_a", "branch_c", True),
    ],
)
async def test_pairing_authorization_matrix(session, world, who, strong, weak, allowed) -> None:
    args = (session, world, getattr(world, who), getattr(world, strong), getattr(world, weak))
    if allowed:
        await pair(*args)
    else:
        with pytest.raises(Forbidden):
            await pair(*args)
    assert len(await pr.list_pairings(session, await world.actor(session, world.admin))) == int(allowed)


async def test_pairings_are_listed_by_scope(session, world) -> None:
    ab = await pair(session, world, world.staff, world.branch_a, world.branch_b)
    ac = await pair(session, world, world.admin, world.branch_c, world.branch_a)

    async def seen(person, org_id=None) -> list[int]:
        actor = await world.actor(session, person)
        return [v.pairing.id for v in await pr.list_pairings(session, actor, org_id)]

    assert await seen(world.admin) == [ab.id, ac.id]
    assert await seen(world.staff) == [ab.id, ac.id]  # both touch its subtree
    assert await seen(world.other_staff) == [ac.id]
    assert await seen(world.secretary_b) == [ab.id]
    assert await seen(world.member_a) == [ab.id, ac.id]  # a member sees their branch's
    assert await seen(world.member_b) == [ab.id]
    assert await seen(world.admin, world.branch_c.id) == [ac.id]
    views = await pr.list_pairings(session, await world.actor(session, world.admin), world.branch_b.id)
    assert (views[0].strong_name, views[0].weak_name) == (world.branch_a.name, world.branch_b.name)


async def test_exemplars_are_recorded_once_and_listed_by_scope(session, world) -> None:
    ea = await exemplar(session, world, world.staff, world.branch_a, note="经验做法")
    with pytest.raises(Refused) as e:
        await exemplar(session, world, world.staff, world.branch_a)
    assert e.value.key == "exemplar.duplicate"
    eb = await exemplar(session, world, world.staff, world.branch_b, year=2025)
    ec = await exemplar(session, world, world.admin, world.branch_c)

    async def seen(person, year=None) -> set[int]:
        actor = await world.actor(session, person)
        return {v.exemplar.id for v in await pr.list_exemplars(session, actor, year)}

    assert await seen(world.admin) == {ea.id, eb.id, ec.id}
    assert await seen(world.admin, 2026) == {ea.id, ec.id}
    assert await seen(world.staff) == {ea.id, eb.id}
    assert await seen(world.other_staff) == {ec.id}
    assert await seen(world.member_a) == {ea.id}


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("title", "", "exemplar.bad_title"),
        ("year", 1999, "exemplar.bad_year"),
        ("note", "n" * 1001, "exemplar.bad_note"),
    ],
)
def test_exemplar_fields_are_checked(field, value, key) -> None:
    data = {"org_id": 1, "title": "标杆", "year": 2026}
    data[field] = value
    with pytest.raises(Invalid) as e:
        pr.new_exemplar(**data)
    assert e.value.key == key


@pytest.mark.parametrize(
    ("who", "org", "allowed"),
    [
        ("member_a", "branch_a", False),
        ("secretary_a", "branch_a", False),
        ("staff", "branch_a", True),
        ("staff", "branch_c", False),
        ("other_staff", "branch_c", True),
        ("admin", "branch_b", True),
    ],
)
async def test_exemplar_authorization_matrix(session, world, who, org, allowed) -> None:
    args = (session, world, getattr(world, who), getattr(world, org))
    if allowed:
        await exemplar(*args)
    else:
        with pytest.raises(Forbidden):
            await exemplar(*args)
