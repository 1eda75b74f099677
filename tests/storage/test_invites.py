"""Invites: who may invite whom where, the code's shape, the deep link."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from content.pack import get_pack
from storage.audit import system_actor
from storage.errors import Forbidden, Invalid, Refused
from storage.invites import NewInvite, create_invite, deep_link, new_code
from storage.models import AuditEntry, Invite, Role
from storage.validation import parse

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def test_codes_are_long_random_and_fit_a_telegram_deep_link() -> None:
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200
    for c in codes:
        assert 16 <= len(c) <= 64
        assert re.fullmatch(r"[A-Za-z0-9_-]+", c)


def test_deep_link() -> None:
    assert (
        deep_link("branchbot_demo_bot", "abc_DEF-123") == "https://t.me/branchbot_demo_bot?start=abc_DEF-123"
    )
    assert deep_link("@some_bot", "x") == "https://t.me/some_bot?start=x"


async def test_secretary_invites_members_to_their_branch(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    inv = await create_invite(session, actor, world.branch_a.id, "member", uses=10, days=14, now=NOW)
    assert (inv.org_id, inv.role, inv.uses_left, inv.person_id) == (world.branch_a.id, Role.MEMBER, 10, None)
    assert inv.expires_at == NOW + timedelta(days=14)
    assert inv.created_by_id == world.secretary_a.id
    row = await session.scalar(select(AuditEntry).where(AuditEntry.action == "invite.create"))
    assert row is not None and row.detail == {"invite_id": inv.id, "role": "member", "uses": 10, "days": 14}
    assert inv.code not in str(row.detail)  # the code is a secret: not in the log


# (who, org, role, allowed): the rules of who may invite whom where.
CASES = [
    ("secretary_a", "branch_a", "member", True),
    ("secretary_a", "branch_b", "member", False),
    ("secretary_a", "branch_a", "secretary", False),
    ("secretary_a", "committee", "staff", False),
    ("member_a", "branch_a", "member", False),
    ("staff", "branch_a", "member", True),
    ("staff", "branch_b", "secretary", True),
    ("staff", "branch_c", "member", False),
    ("staff", "branch_c", "secretary", False),
    ("staff", "committee", "staff", False),  # not their own committee: not strictly below
    ("staff", "other_committee", "staff", False),
    ("staff", "province", "admin", False),
    ("other_staff", "branch_a", "member", False),
    ("admin", "branch_c", "secretary", True),
    ("admin", "committee", "staff", True),
    ("admin", "province", "admin", True),
]


@pytest.mark.parametrize(("who", "org", "role", "allowed"), CASES)
async def test_who_may_invite_whom(session, world, who, org, role, allowed) -> None:
    actor = await world.actor(session, getattr(world, who))
    target = getattr(world, org)
    if allowed:
        inv = await create_invite(session, actor, target.id, role, now=NOW)
        assert inv.role == Role(role)
    else:
        with pytest.raises(Forbidden):
            await create_invite(session, actor, target.id, role, now=NOW)
        assert await session.scalar(select(Invite)) is None


async def test_staff_invite_staff_to_a_committee_below_their_own(session, world) -> None:
    from storage.orgs import add_org

    staff = await world.actor(session, world.staff)
    below = await add_org(session, staff, "城东党工委", "committee", world.committee.id, pack=PACK)
    inv = await create_invite(session, staff, below.id, "staff", now=NOW)
    assert inv.role is Role.STAFF


@pytest.mark.parametrize(
    ("org", "role", "key"),
    [
        ("committee", "member", "invite.role_needs_branch"),
        ("province", "secretary", "invite.role_needs_branch"),
        ("branch_a", "staff", "invite.role_needs_committee"),
    ],
)
async def test_roles_fit_the_kind_of_org(session, world, org, role, key) -> None:
    with pytest.raises(Refused) as e:
        await create_invite(session, system_actor(), getattr(world, org).id, role, now=NOW)
    assert e.value.key == key


@pytest.mark.parametrize(
    ("uses", "days", "key"),
    [
        (0, 7, "invite.bad_uses"),
        (1001, 7, "invite.bad_uses"),
        (1, 0, "invite.bad_days"),
        (1, 366, "invite.bad_days"),
    ],
)
async def test_uses_and_days_are_bounded(session, world, uses, days, key) -> None:
    actor = await world.actor(session, world.secretary_a)
    with pytest.raises(Invalid) as e:
        await create_invite(session, actor, world.branch_a.id, "member", uses, days, now=NOW)
    assert e.value.key == key
    assert await session.scalar(select(Invite)) is None


async def test_unknown_role_is_invalid(session, world) -> None:
    with pytest.raises(Invalid):
        await create_invite(session, system_actor(), world.branch_a.id, "chairman", now=NOW)


@given(uses=st.integers(-5, 1100), days=st.integers(-5, 400), role=st.sampled_from([*Role, "x"]))
def test_invite_schema(uses: int, days: int, role: object) -> None:
    try:
        new = parse(NewInvite, role=role, uses=uses, days=days)
    except Invalid as e:
        assert e.key in ("invite.bad_uses", "invite.bad_days", "error.invalid")
        assert not (1 <= uses <= 1000 and 1 <= days <= 365 and role != "x")
    else:
        assert 1 <= new.uses <= 1000 and 1 <= new.days <= 365
