"""Who may do what, where: the one place roles and scopes are decided.

A member acts on their own records; a secretary on their branch; staff on the subtree of the
committee they belong to; an admin everywhere. Subtrees are materialized paths (Org.path), so a
scope becomes one SQL prefix filter rather than a tree walk in Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from storage.errors import Forbidden, NotFound
from storage.models import Membership, Org, OrgKind, Person, Role

MANAGER_ROLES = (Role.SECRETARY, Role.STAFF, Role.ADMIN)


@dataclass(frozen=True, slots=True)
class Grant:
    org_id: int
    org_path: str
    org_kind: OrgKind
    role: Role


@dataclass(frozen=True, slots=True)
class Actor:
    """The person acting and their grants, loaded once per update or request."""

    person_id: int
    grants: tuple[Grant, ...]
    via: str = "bot"  # bot | web | cli: recorded in the audit log

    @property
    def is_admin(self) -> bool:
        return any(g.role is Role.ADMIN for g in self.grants)

    def roles(self) -> set[Role]:
        return {g.role for g in self.grants}

    @property
    def top_role(self) -> Role | None:
        for r in (Role.ADMIN, Role.STAFF, Role.SECRETARY, Role.MEMBER):
            if r in self.roles():
                return r
        return None

    def home_branch_id(self) -> int | None:
        """The branch the person belongs to as member or secretary (the first, if several)."""
        for g in self.grants:
            if g.org_kind is OrgKind.BRANCH and g.role in (Role.MEMBER, Role.SECRETARY):
                return g.org_id
        return None

    def managed_paths(self, roles: Iterable[Role] = MANAGER_ROLES) -> list[str]:
        """Path prefixes of the orgs this actor manages: a secretary's branch, staff's subtree."""
        wanted = set(roles)
        out: list[str] = []
        for g in self.grants:
            if g.role not in wanted:
                continue
            if g.role is Role.ADMIN:
                return ["/"]
            out.append(g.org_path)
        return out

    def manages_path(self, path: str, roles: Iterable[Role] = MANAGER_ROLES) -> bool:
        return any(path.startswith(p) for p in self.managed_paths(roles))

    def manages(self, org: Org, roles: Iterable[Role] = MANAGER_ROLES) -> bool:
        return self.manages_path(org.path, roles)

    def scope_filter(
        self, path_col: ColumnElement[str] | object, roles: Iterable[Role] = MANAGER_ROLES
    ) -> ColumnElement[bool]:
        """A WHERE clause keeping rows whose org path lies inside what the actor manages."""
        paths = self.managed_paths(roles)
        if "/" in paths:
            return true()
        if not paths:
            return false()
        return or_(*[path_col.like(p + "%") for p in paths])  # type: ignore[attr-defined]


async def load_actor(s: AsyncSession, person_id: int, via: str = "bot") -> Actor:
    rows = await s.execute(
        select(Membership.org_id, Org.path, Org.kind, Membership.role)
        .join(Org, Org.id == Membership.org_id)
        .where(Membership.person_id == person_id)
        .order_by(Membership.id)
    )
    return Actor(person_id, tuple(Grant(*r) for r in rows), via)


def actor_of(person: Person, via: str = "bot") -> Actor:
    """The actor from a person whose memberships (and their orgs) are already loaded:
    the same grants as `load_actor`, without another query."""
    grants = tuple(
        Grant(m.org_id, m.org.path, m.org.kind, m.role)
        for m in sorted(person.memberships, key=lambda m: m.id)
    )
    return Actor(person.id, grants, via)


async def get_org(s: AsyncSession, org_id: int) -> Org:
    org = await s.get(Org, org_id)
    if org is None:
        raise NotFound("error.not_found")
    return org


async def require_manager(
    s: AsyncSession, actor: Actor, org_id: int, roles: Iterable[Role] = MANAGER_ROLES
) -> Org:
    """The org, if the actor manages it; Forbidden otherwise (NotFound if it does not exist)."""
    org = await get_org(s, org_id)
    if not actor.manages(org, roles):
        raise Forbidden()
    return org


async def person_paths(s: AsyncSession, person_id: int) -> list[str]:
    rows = await s.scalars(
        select(Org.path)
        .join(Membership, Membership.org_id == Org.id)
        .where(Membership.person_id == person_id)
    )
    return list(rows)


async def require_person_access(s: AsyncSession, actor: Actor, person_id: int) -> Person:
    """A person's records: themselves, or someone who manages an org the person belongs to.

    The scope is decided from the memberships alone, before the person's row is read: someone
    outside it and someone who does not exist are refused alike."""
    if (
        person_id != actor.person_id
        and not actor.is_admin
        and not any(actor.manages_path(p) for p in await person_paths(s, person_id))
    ):
        raise Forbidden()
    person = await s.get(Person, person_id)
    if person is None:
        raise NotFound()
    return person
