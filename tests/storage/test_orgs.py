"""Organizations: who may add what where, the materialized path, the scoped tree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from content.pack import get_pack
from storage.audit import system_actor
from storage.errors import Forbidden, Invalid, NotFound, Refused
from storage.models import AuditEntry, Org, OrgKind
from storage.orgs import NewOrg, add_org, add_org_system, get_org, org_tree, subtree_ids
from storage.validation import parse

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK


async def test_admin_adds_a_branch_with_the_path_below_its_parent(session, world) -> None:
    actor = await world.actor(session, world.admin, via="web")
    org = await add_org(session, actor, "  新支部  ", "branch", world.committee.id, "trade", None, pack=PACK)
    assert org.name == "新支部"
    assert org.path == f"{world.committee.path}{org.id}/"
    assert org.timezone == world.committee.timezone  # inherited
    row = await session.scalar(select(AuditEntry).where(AuditEntry.action == "org.add"))
    assert row is not None and (row.actor_id, row.via, row.org_id) == (world.admin.id, "web", org.id)


async def test_system_actor_adds_a_province_a_committee_and_a_branch(session) -> None:
    prov = await add_org_system(session, "甲省党工委", OrgKind.PROVINCE, pack=PACK)
    com = await add_org_system(session, "乙市党工委", "committee", prov.id, timezone="Asia/Urumqi", pack=PACK)
    br = await add_org_system(session, "丙协会党支部", "branch", com.id, "academic", pack=PACK)
    assert (prov.path, com.path, br.path) == (
        f"/{prov.id}/",
        f"/{prov.id}/{com.id}/",
        f"/{prov.id}/{com.id}/{br.id}/",
    )
    assert br.timezone == "Asia/Urumqi"
    rows = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [(r.action, r.actor_id, r.via) for r in rows] == [("org.add", None, "cli")] * 3


async def test_staff_adds_only_under_their_subtree(session, world) -> None:
    staff = await world.actor(session, world.staff)
    org = await add_org(session, staff, "新协会党支部", "branch", world.committee.id, None, None, pack=PACK)
    assert org.path.startswith(world.committee.path)
    sub = await add_org(session, staff, "下级党工委", "committee", world.committee.id, pack=PACK)
    assert sub.path.startswith(world.committee.path)
    with pytest.raises(Forbidden):
        await add_org(session, staff, "越界支部", "branch", world.other_committee.id, pack=PACK)
    with pytest.raises(Forbidden):
        await add_org(session, staff, "越界", "committee", world.province.id, pack=PACK)
    with pytest.raises(Forbidden):
        await add_org(session, staff, "无上级", "committee", None, pack=PACK)


@pytest.mark.parametrize("who", ["secretary_a", "member_a"])
async def test_secretaries_and_members_add_nothing(session, world, who: str) -> None:
    actor = await world.actor(session, getattr(world, who))
    with pytest.raises(Forbidden):
        await add_org(session, actor, "新支部", "branch", world.committee.id, pack=PACK)


@pytest.mark.parametrize(
    ("kind", "parent", "category", "tz", "key"),
    [
        ("branch", None, None, None, "org.branch_needs_parent"),
        ("branch", "branch_a", None, None, "org.parent_is_branch"),
        ("committee", "branch_a", None, None, "org.parent_is_branch"),
        ("province", "province", None, None, "org.province_has_parent"),
        ("branch", "committee", "chess_club", None, "org.unknown_category"),
        ("branch", "committee", None, "Mars/Olympus", "org.unknown_timezone"),
        ("branch", "committee", None, None, "org.duplicate_name"),
    ],
)
async def test_bad_orgs_are_refused_and_nothing_is_written(
    session, world, kind, parent, category, tz, key
) -> None:
    actor = await world.actor(session, world.admin)
    before = await session.scalar(select(func.count()).select_from(Org))
    name = world.branch_a.name if key == "org.duplicate_name" else "某支部"
    with pytest.raises(Refused) as e:
        await add_org(
            session, actor, name, kind, getattr(world, parent).id if parent else None, category, tz, pack=PACK
        )
    assert e.value.key == key
    assert await session.scalar(select(func.count()).select_from(Org)) == before


async def test_unknown_parent_is_not_found(session, world) -> None:
    with pytest.raises(NotFound):
        await add_org_system(session, "某支部", "branch", 9999, pack=PACK)


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
async def test_bad_names_are_invalid(session, world, name: str) -> None:
    with pytest.raises(Invalid) as e:
        await add_org_system(session, name, "branch", world.committee.id, pack=PACK)
    assert e.value.key == "org.bad_name"


async def test_unknown_kind_is_invalid(session, world) -> None:
    with pytest.raises(Invalid) as e:
        await add_org_system(session, "x", "club", world.committee.id, pack=PACK)
    assert e.value.params["field"] == "kind"


@given(name=st.text(max_size=250), kind=st.sampled_from(["province", "committee", "branch", "x"]))
def test_new_org_schema_accepts_or_refuses_with_a_key(name: str, kind: str) -> None:
    try:
        org = parse(NewOrg, name=name, kind=kind)
    except Invalid as e:
        assert e.key in ("org.bad_name", "error.invalid")
        assert e.params["field"] in ("name", "kind")
    else:
        assert org.name == name.strip() and 1 <= len(org.name) <= 200


def _flat(roots) -> list[tuple[int, int]]:
    return [(depth, org.id) for r in roots for depth, org in r.walk()]


async def test_org_tree_is_scoped(session, world) -> None:
    w = world
    admin = _flat(await org_tree(session, await w.actor(session, w.admin)))
    assert admin == [
        (0, w.province.id),
        (1, w.committee.id),
        (2, w.branch_a.id),
        (2, w.branch_b.id),
        (1, w.other_committee.id),
        (2, w.branch_c.id),
    ]
    staff = _flat(await org_tree(session, await w.actor(session, w.staff)))
    assert staff == [(0, w.committee.id), (1, w.branch_a.id), (1, w.branch_b.id)]
    assert _flat(await org_tree(session, await w.actor(session, w.secretary_a))) == [(0, w.branch_a.id)]
    # A member sees their own branch (name, kind), nothing else.
    assert _flat(await org_tree(session, await w.actor(session, w.member_b))) == [(0, w.branch_b.id)]
    assert len(_flat(await org_tree(session, system_actor()))) == 6


async def test_get_org_and_subtree_ids_are_scoped(session, world) -> None:
    w = world
    staff = await w.actor(session, w.staff)
    assert (await get_org(session, staff, w.branch_a.id)).id == w.branch_a.id
    assert set(await subtree_ids(session, staff, w.committee.id)) == {
        w.committee.id,
        w.branch_a.id,
        w.branch_b.id,
    }
    for hidden in (w.branch_c.id, w.province.id, 9999):
        with pytest.raises(NotFound):
            await get_org(session, staff, hidden)
    with pytest.raises(NotFound):
        await subtree_ids(session, staff, w.other_committee.id)
    member = await w.actor(session, w.member_a)
    assert (await get_org(session, member, w.branch_a.id)).id == w.branch_a.id
    with pytest.raises(NotFound):
        await get_org(session, member, w.branch_b.id)


async def test_the_category_is_checked_against_the_pack_passed_in(session, world) -> None:
    # The store uses the pack its caller passes (the configured CONTENT_PACK), never a default.
    actor = await world.actor(session, world.admin)
    without_trade = PACK.model_copy(update={"categories": [c for c in PACK.categories if c.id != "trade"]})
    with pytest.raises(Refused) as info:
        await add_org(session, actor, "新支部", "branch", world.committee.id, "trade", pack=without_trade)
    assert info.value.key == "org.unknown_category"
    assert await add_org(session, actor, "新支部", "branch", world.committee.id, "trade", pack=PACK)
