"""Organizations: the province, committees (党工委) and branches (党支部), kept as a tree with a
materialized path (Org.path = parent.path + f"{id}/") so a subtree is one prefix match in SQL."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from content.pack import Pack
from storage import audit
from storage.access import Actor
from storage.errors import Forbidden, NotFound, Refused
from storage.models import Membership, Org, OrgKind, Role
from storage.validation import parse

DEFAULT_TIMEZONE = "Asia/Shanghai"


class NewOrg(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=200, json_schema_extra={"error_key": "org.bad_name"})
    kind: OrgKind
    parent_id: int | None = Field(default=None, gt=0)
    category: str | None = Field(default=None, max_length=40)
    timezone: str | None = Field(default=None, max_length=64)

    @field_validator("name", mode="before")
    @classmethod
    def _one_clean_line(cls, v: object) -> object:
        if not isinstance(v, str):
            return v
        if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in v.strip()):
            raise ValueError("control characters")
        return v.strip()

    @field_validator("category", "timezone", mode="before")
    @classmethod
    def _strip(cls, v: object) -> object:
        return v.strip() or None if isinstance(v, str) else v


def _check_timezone(tz: str) -> None:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Refused("org.unknown_timezone", timezone=tz) from None


async def add_org(
    s: AsyncSession,
    actor: Actor,
    name: str,
    kind: OrgKind | str,
    parent_id: int | None = None,
    category: str | None = None,
    timezone: str | None = None,
    *,
    pack: Pack,
) -> Org:
    """Add an organization. Admins anywhere; staff only under an org of their subtree.

    A province has no parent; a branch needs a committee-level parent (committee or province);
    nothing goes under a branch. `timezone` defaults to the parent's; `category` must be one of
    `pack`'s (the caller passes the configured pack: the store picks none).
    """
    new = parse(
        NewOrg, name=name, kind=kind, parent_id=parent_id, category=category or None, timezone=timezone
    )
    parent: Org | None = None
    if new.parent_id is not None:
        parent = await s.get(Org, new.parent_id)
        if parent is None:
            raise NotFound("org.unknown_parent", parent_id=new.parent_id)
    # Who: an admin anywhere; staff only below something in their subtree.
    if not actor.is_admin and (parent is None or not actor.manages(parent, (Role.STAFF,))):
        raise Forbidden()
    if new.kind is OrgKind.PROVINCE and parent is not None:
        raise Refused("org.province_has_parent")
    if new.kind is OrgKind.BRANCH and parent is None:
        raise Refused("org.branch_needs_parent")
    if parent is not None and parent.kind is OrgKind.BRANCH:
        raise Refused("org.parent_is_branch")
    if new.category is not None:
        if pack.category(new.category) is None:
            known = ", ".join(c.id for c in pack.categories)
            raise Refused("org.unknown_category", category=new.category, known=known)
    tz = new.timezone or (parent.timezone if parent else DEFAULT_TIMEZONE)
    _check_timezone(tz)
    same_name = await s.scalar(
        select(func.count())
        .select_from(Org)
        .where(
            Org.name == new.name, Org.parent_id.is_(None) if parent is None else Org.parent_id == parent.id
        )
    )
    if same_name:
        raise Refused("org.duplicate_name", name=new.name)
    org = Org(
        name=new.name,
        kind=new.kind,
        parent_id=parent.id if parent else None,
        category=new.category,
        timezone=tz,
        path="/",
    )
    s.add(org)
    await s.flush()  # the id is part of the path
    org.path = f"{parent.path if parent else '/'}{org.id}/"
    await s.flush()
    await audit.record(s, actor, "org.add", org_id=org.id, detail={"kind": new.kind.value})
    return org


async def add_org_system(
    s: AsyncSession,
    name: str,
    kind: OrgKind | str,
    parent_id: int | None = None,
    category: str | None = None,
    timezone: str | None = None,
    *,
    pack: Pack,
    via: str = "cli",
) -> Org:
    """`add_org` as the system operator (the command line): an admin everywhere, audited."""
    return await add_org(s, audit.system_actor(via), name, kind, parent_id, category, timezone, pack=pack)


def _visible(actor: Actor) -> ColumnElement[bool]:
    """Orgs the actor manages, and the orgs they belong to (a member sees their own branch)."""
    own = select(Membership.org_id).where(Membership.person_id == actor.person_id)
    return or_(actor.scope_filter(Org.path), Org.id.in_(own))


async def get_org(s: AsyncSession, actor: Actor, org_id: int) -> Org:
    """The org if the actor may see it; NotFound otherwise (an unseen org looks like no org)."""
    org = await s.scalar(select(Org).where(Org.id == org_id, _visible(actor)))
    if org is None:
        raise NotFound()
    return org


async def subtree_ids(s: AsyncSession, actor: Actor, org_id: int) -> list[int]:
    """Ids of the org and everything below it, if the actor may see the org."""
    org = await get_org(s, actor, org_id)
    rows = await s.scalars(select(Org.id).where(Org.path.like(org.path + "%")).order_by(Org.path))
    return list(rows)


@dataclass
class OrgNode:
    org: Org
    children: list[OrgNode] = field(default_factory=list)

    def walk(self, depth: int = 0) -> Iterator[tuple[int, Org]]:
        """(depth, org) for this node and its descendants, parents before children."""
        yield depth, self.org
        for c in self.children:
            yield from c.walk(depth + 1)


async def org_tree(s: AsyncSession, actor: Actor) -> list[OrgNode]:
    """The orgs the actor may see, as a forest: a visible org whose parent is hidden is a root."""
    orgs = list(await s.scalars(select(Org).where(_visible(actor)).order_by(Org.id)))
    nodes = {o.id: OrgNode(o) for o in orgs}
    roots: list[OrgNode] = []
    for o in orgs:
        parent = nodes.get(o.parent_id) if o.parent_id is not None else None
        (parent.children if parent else roots).append(nodes[o.id])
    return roots
