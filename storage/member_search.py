"""Members for the admin web: search the people of the orgs an actor manages, and one person's
profile. Both are reads of personal data, so both write an audit row (ids and counts only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.access import Actor, require_manager, require_person_access
from storage.errors import NotFound
from storage.models import Membership, Org, OrgKind, Person, Role
from storage.people import last_activity
from storage.validation import parse

MAX_PER_PAGE = 500


class PeopleFilter(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True)

    org_id: int | None = None
    q: str | None = Field(default=None, max_length=50)
    role: Role | None = None
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=100, ge=1, le=MAX_PER_PAGE)


def people_filter(**data: object) -> PeopleFilter:
    return parse(PeopleFilter, **{k: v for k, v in data.items() if v not in (None, "")})


@dataclass(frozen=True, slots=True)
class PersonRow:
    person_id: int
    name: str
    note: str | None
    role: Role
    org_id: int
    org_name: str
    joined_at: datetime
    on_telegram: bool  # False for a roster row whose invite was not opened yet
    consented: bool
    blocked: bool
    last_activity: datetime | None  # people.last_activity: the same figure as the bot's /members


@dataclass(frozen=True, slots=True)
class PeoplePage:
    rows: list[PersonRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


async def search_people(s: AsyncSession, actor: Actor, f: PeopleFilter) -> PeoplePage:
    """Memberships in the orgs the actor manages (or one org's subtree), by name. Audited."""
    conds = [actor.scope_filter(Org.path), Person.erased_at.is_(None)]
    if f.org_id is not None:
        root = await require_manager(s, actor, f.org_id)
        conds.append(Org.path.like(root.path + "%"))
    if f.q:
        conds.append(Person.name.contains(f.q, autoescape=True))
    if f.role is not None:
        conds.append(Membership.role == f.role)
    joined = (
        select(Membership.id)
        .join(Person, Person.id == Membership.person_id)
        .join(Org, Org.id == Membership.org_id)
        .where(*conds)
    )
    total = await s.scalar(select(func.count()).select_from(joined.subquery())) or 0
    rows = (
        await s.execute(
            select(Person, Membership.role, Membership.created_at, Org.id, Org.name)
            .join(Membership, Membership.person_id == Person.id)
            .join(Org, Org.id == Membership.org_id)
            .where(*conds)
            .order_by(Org.path, Person.name, Person.id)
            .limit(f.per_page)
            .offset((f.page - 1) * f.per_page)
        )
    ).all()
    last = await last_activity(s, (p.id for p, *_rest in rows))
    out = [
        PersonRow(
            person_id=p.id,
            name=p.name,
            note=p.roster_note,
            role=Role(role),
            org_id=oid,
            org_name=oname,
            joined_at=joined_at,
            on_telegram=p.telegram_id is not None,
            consented=p.consent_at is not None,
            blocked=p.blocked_at is not None,
            last_activity=last.get(p.id),
        )
        for p, role, joined_at, oid, oname in rows
    ]
    if audit.on_admin_surface(actor):
        await audit.record(
            s, actor, "members.view", org_id=f.org_id, detail={"rows": len(out), "search": bool(f.q)}
        )
    return PeoplePage(out, int(total), f.page, f.per_page)


@dataclass(frozen=True, slots=True)
class Affiliation:
    org_id: int
    org_name: str
    org_kind: OrgKind
    role: Role
    since: datetime


@dataclass(frozen=True, slots=True)
class Profile:
    person: Person
    affiliations: list[Affiliation]
    last_activity: datetime | None = None  # people.last_activity


async def member_profile(s: AsyncSession, actor: Actor, person_id: int) -> Profile:
    """One person, for someone who manages an org they belong to (or themselves). Audited.

    The affiliations listed are those the actor can see: their own managed orgs."""
    person = await require_person_access(s, actor, person_id)
    if person.erased_at is not None:
        raise NotFound()
    rows = await s.execute(
        select(Org.id, Org.name, Org.kind, Org.path, Membership.role, Membership.created_at)
        .join(Membership, Membership.org_id == Org.id)
        .where(Membership.person_id == person.id)
        .order_by(Org.path)
    )
    own = person.id == actor.person_id
    affiliations = [
        Affiliation(oid, name, OrgKind(kind), Role(role), since)
        for oid, name, kind, path, role, since in rows
        if own or actor.manages_path(path)
    ]
    if audit.on_admin_surface(actor):
        await audit.record(s, actor, "person.view", subject_person_id=person.id)
    return Profile(person, affiliations, (await last_activity(s, [person.id])).get(person.id))
