"""Pairings (共创共建, 以强带弱) and exemplars (标杆、样板), recorded by committee staff and admins.

A pairing joins a strong branch with a weaker one, both inside the recorder's subtree. A service
entry may name the pairing it was done under (a joint activity); reports then count it for both
branches (see storage/reports.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import ColumnElement

from storage import audit
from storage.access import Actor, require_manager
from storage.errors import Refused
from storage.models import Exemplar, Org, OrgKind, Pairing, Role
from storage.service_log import clean_text
from storage.validation import parse

RECORDERS = (Role.STAFF, Role.ADMIN)


class NewPairing(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True, extra="forbid")

    strong_org_id: int
    weak_org_id: int
    started_on: date
    note: str | None = Field(
        default=None, max_length=500, json_schema_extra={"error_key": "pairing.bad_note"}
    )

    _clean = field_validator("note", mode="before")(clean_text)


class NewExemplar(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True, extra="forbid")

    org_id: int
    title: str = Field(min_length=1, max_length=200, json_schema_extra={"error_key": "exemplar.bad_title"})
    year: int = Field(ge=2000, le=2100, json_schema_extra={"error_key": "exemplar.bad_year"})
    note: str | None = Field(
        default=None, max_length=1000, json_schema_extra={"error_key": "exemplar.bad_note"}
    )

    _clean = field_validator("title", "note", mode="before")(clean_text)


def new_pairing(**data: Any) -> NewPairing:
    return parse(NewPairing, **data)


def new_exemplar(**data: Any) -> NewExemplar:
    return parse(NewExemplar, **data)


async def _require_branch(s: AsyncSession, actor: Actor, org_id: int) -> Org:
    org = await require_manager(s, actor, org_id, RECORDERS)
    if org.kind is not OrgKind.BRANCH:
        raise Refused("pairing.not_branch")
    return org


async def record_pairing(s: AsyncSession, actor: Actor, data: NewPairing) -> Pairing:
    if data.strong_org_id == data.weak_org_id:
        raise Refused("pairing.same_branch")
    await _require_branch(s, actor, data.strong_org_id)
    await _require_branch(s, actor, data.weak_org_id)
    a, b = data.strong_org_id, data.weak_org_id
    dup = await s.scalar(
        select(Pairing.id).where(
            or_(
                and_(Pairing.strong_org_id == a, Pairing.weak_org_id == b),
                and_(Pairing.strong_org_id == b, Pairing.weak_org_id == a),
            )
        )
    )
    if dup is not None:
        raise Refused("pairing.duplicate")
    row = Pairing(recorded_by_id=actor.person_id, **data.model_dump())
    s.add(row)
    await s.flush()
    for org_id in (row.strong_org_id, row.weak_org_id):  # one row per branch: each sees it in scope
        await audit.record(s, actor, "pairing.add", org_id=org_id, detail={"pairing_id": row.id})
    return row


@dataclass(frozen=True, slots=True)
class PairingView:
    pairing: Pairing
    strong_name: str
    weak_name: str


def _visible(
    actor: Actor, *paths: ColumnElement[str], ids: tuple[ColumnElement[int], ...]
) -> ColumnElement[bool]:
    """Inside what the actor manages, or an org the actor belongs to (a member sees their branch's)."""
    own = [g.org_id for g in actor.grants]
    return or_(*[actor.scope_filter(p) for p in paths], *[i.in_(own) for i in ids])


async def list_pairings(s: AsyncSession, actor: Actor, org_id: int | None = None) -> list[PairingView]:
    """Pairings touching the actor's scope (or the actor's own branch); only `org_id`'s if given."""
    strong, weak = aliased(Org), aliased(Org)
    q = (
        select(Pairing, strong.name, weak.name)
        .join(strong, strong.id == Pairing.strong_org_id)
        .join(weak, weak.id == Pairing.weak_org_id)
        .where(_visible(actor, strong.path, weak.path, ids=(strong.id, weak.id)))
        .order_by(Pairing.started_on, Pairing.id)
    )
    if org_id is not None:
        q = q.where(or_(Pairing.strong_org_id == org_id, Pairing.weak_org_id == org_id))
    return [PairingView(p, sn, wn) for p, sn, wn in await s.execute(q)]


async def record_exemplar(s: AsyncSession, actor: Actor, data: NewExemplar) -> Exemplar:
    await _require_branch(s, actor, data.org_id)
    dup = await s.scalar(
        select(Exemplar.id).where(
            Exemplar.org_id == data.org_id, Exemplar.year == data.year, Exemplar.title == data.title
        )
    )
    if dup is not None:
        raise Refused("exemplar.duplicate")
    row = Exemplar(recorded_by_id=actor.person_id, **data.model_dump())
    s.add(row)
    await s.flush()
    await audit.record(
        s, actor, "exemplar.add", org_id=row.org_id, detail={"exemplar_id": row.id, "year": row.year}
    )
    return row


@dataclass(frozen=True, slots=True)
class ExemplarView:
    exemplar: Exemplar
    org_name: str


async def list_exemplars(s: AsyncSession, actor: Actor, year: int | None = None) -> list[ExemplarView]:
    q = (
        select(Exemplar, Org.name)
        .join(Org, Org.id == Exemplar.org_id)
        .where(_visible(actor, Org.path, ids=(Org.id,)))
        .order_by(Exemplar.year.desc(), Org.name, Exemplar.id)
    )
    if year is not None:
        q = q.where(Exemplar.year == year)
    return [ExemplarView(e, n) for e, n in await s.execute(q)]
