"""The who-is-talking filters."""

from __future__ import annotations

import pytest

from handlers.kit.filters import HasRole, Joined
from storage.access import Actor, Grant
from storage.models import OrgKind, Person, Role


def actor(*roles: Role) -> Actor:
    return Actor(1, tuple(Grant(10 + i, f"/1/{10 + i}/", OrgKind.BRANCH, r) for i, r in enumerate(roles)))


async def test_joined_is_true_only_for_a_person() -> None:
    assert await Joined()(object(), person=Person(id=1, name="x")) is True
    assert await Joined()(object(), person=None) is False


async def test_has_role_matches_any_of_its_roles() -> None:
    f = HasRole(Role.SECRETARY, Role.STAFF)
    p = Person(id=1, name="x")
    assert await f(object(), person=p, actor=actor(Role.MEMBER, Role.SECRETARY)) is True
    assert await f(object(), person=p, actor=actor(Role.STAFF)) is True
    assert await f(object(), person=p, actor=actor(Role.MEMBER)) is False
    assert await f(object(), person=None, actor=None) is False


def test_has_role_needs_a_role() -> None:
    with pytest.raises(ValueError):
        HasRole()
