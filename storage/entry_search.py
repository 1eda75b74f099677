"""Finding service entries for the admin web: filter by org, status, dates, person and text, a page
at a time, each row marked with whether this actor may review it (the same rule as
`service_log.review_many`, which does the reviewing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import and_, case, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.access import Actor, require_manager, require_person_access
from storage.models import EntryStatus, Org, Person, ServiceEntry
from storage.service_log import reviewable_by
from storage.validation import parse

MAX_PER_PAGE = 200
STATUS_ORDER = (EntryStatus.APPROVED, EntryStatus.PENDING, EntryStatus.REJECTED)


class EntryFilter(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True)

    org_id: int | None = None
    status: EntryStatus | None = None
    date_from: date | None = None
    date_to: date | None = None
    person_id: int | None = None
    q: str | None = Field(default=None, max_length=50)  # in the person's name, the place or the description
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=50, ge=1, le=MAX_PER_PAGE)

    @model_validator(mode="after")
    def _ordered(self) -> EntryFilter:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from after date_to")
        return self


def entry_filter(**data: object) -> EntryFilter:
    return parse(EntryFilter, **{k: v for k, v in data.items() if v not in (None, "")})


@dataclass(frozen=True, slots=True)
class EntryRow:
    entry: ServiceEntry
    person_name: str | None
    branch_name: str
    reviewable: bool  # pending and this actor may approve or reject it


@dataclass(frozen=True, slots=True)
class StatusTotal:
    entries: int
    minutes: int


@dataclass(frozen=True, slots=True)
class EntryPage:
    rows: list[EntryRow]
    total: int  # entries matching the filter, of every status (for paging)
    # Hours per status, never one sum: approved, pending and rejected hours mean different things.
    by_status: dict[EntryStatus, StatusTotal]
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


async def search_entries(s: AsyncSession, actor: Actor, f: EntryFilter) -> EntryPage:
    """Entries in the orgs the actor manages (or in one org's subtree), newest day first. Audited."""
    E = ServiceEntry
    if f.person_id is not None:
        # Before anything is read or audited: a person outside the scope is not there (404), so
        # neither an audit row nor the audit page can carry their name to this viewer.
        await require_person_access(s, actor, f.person_id)
    conds = [actor.scope_filter(Org.path)]
    if f.org_id is not None:
        root = await require_manager(s, actor, f.org_id)
        conds.append(Org.path.like(root.path + "%"))
    if f.status is not None:
        conds.append(E.status == f.status)
    if f.date_from is not None:
        conds.append(E.day >= f.date_from)
    if f.date_to is not None:
        conds.append(E.day <= f.date_to)
    if f.person_id is not None:
        conds.append(E.person_id == f.person_id)
    if f.q:
        conds.append(
            or_(
                Person.name.contains(f.q, autoescape=True),
                E.place.contains(f.q, autoescape=True),
                E.description.contains(f.q, autoescape=True),
            )
        )
    base = select(E).join(Org, Org.id == E.org_id).outerjoin(Person, Person.id == E.person_id).where(*conds)
    counted = await s.execute(
        select(E.status, func.count(E.id), func.coalesce(func.sum(E.minutes), 0))
        .join(Org, Org.id == E.org_id)
        .outerjoin(Person, Person.id == E.person_id)
        .where(*conds)
        .group_by(E.status)
    )
    found = {EntryStatus(st): StatusTotal(int(n), int(m)) for st, n, m in counted}
    by_status = {st: found.get(st, StatusTotal(0, 0)) for st in STATUS_ORDER}
    total = sum(t.entries for t in by_status.values())
    can_review = case(
        (and_(E.status == EntryStatus.PENDING, reviewable_by(actor)), True), else_=false()
    ).label("reviewable")
    rows = await s.execute(
        base.add_columns(Person.name, Org.name, can_review)
        .order_by(E.day.desc(), E.id.desc())
        .limit(f.per_page)
        .offset((f.page - 1) * f.per_page)
    )
    out = [EntryRow(e, pname, oname, bool(r)) for e, pname, oname, r in rows]
    if audit.on_admin_surface(actor):
        await audit.record(
            s,
            actor,
            "entries.view",
            org_id=f.org_id,
            subject_person_id=f.person_id,
            detail={"rows": len(out), "status": f.status.value if f.status else None},
        )
    return EntryPage(out, total, by_status, f.page, f.per_page)
