"""The audit log as the admin web shows it: `audit.list_audit` (which checks the scope) plus the
names of the people and orgs its rows refer to by id, fetched in one query each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.access import Actor
from storage.audit import AuditPage, list_audit
from storage.models import Org, Person


@dataclass(frozen=True, slots=True)
class AuditView:
    page: AuditPage
    people: dict[int, str]
    orgs: dict[int, str]


async def audit_view(
    s: AsyncSession,
    actor: Actor,
    *,
    person_id: int | None = None,
    action: str | None = None,
    via: str | None = None,
    org_id: int | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    page: int = 1,
    per_page: int = 50,
) -> AuditView:
    result = await list_audit(
        s,
        actor,
        person_id=person_id,
        action=action,
        via=via,
        org_id=org_id,
        date_from=date_from,
        date_to=date_to,
        page=page,
        per_page=per_page,
    )
    person_ids = {i for e in result.entries for i in (e.actor_id, e.subject_person_id) if i is not None}
    org_ids = {e.org_id for e in result.entries if e.org_id is not None}
    people = (
        dict((await s.execute(select(Person.id, Person.name).where(Person.id.in_(person_ids)))).all())
        if person_ids
        else {}
    )
    orgs = (
        dict((await s.execute(select(Org.id, Org.name).where(Org.id.in_(org_ids)))).all()) if org_ids else {}
    )
    return AuditView(result, people, orgs)
