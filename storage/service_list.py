"""The branch's service list (服务清单): what it offers, to whom, whom to contact, how soon.

The branch's secretary and the staff above write it; everyone in the branch reads it. Removing
an item hides it (kept for the record), so an old link or button never points at nothing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.access import Actor, get_org, require_manager
from storage.errors import Forbidden, NotFound, Refused
from storage.models import Org, OrgKind, ServiceListItem
from storage.service_log import clean_text
from storage.validation import parse


def _field(max_length: int, key: str) -> Any:
    return Field(min_length=1, max_length=max_length, json_schema_extra={"error_key": key})


class ServiceItemIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True, extra="forbid")

    title: str = _field(200, "services.bad_title")
    audience: str = _field(200, "services.bad_audience")
    contact: str = _field(200, "services.bad_contact")
    time_limit: str = _field(100, "services.bad_time_limit")
    description: str | None = Field(
        default=None, max_length=1000, json_schema_extra={"error_key": "services.bad_description"}
    )

    _clean = field_validator("*", mode="before")(clean_text)


def service_item(**data: Any) -> ServiceItemIn:
    return parse(ServiceItemIn, **data)


async def _require_branch_manager(s: AsyncSession, actor: Actor, org_id: int) -> Org:
    org = await require_manager(s, actor, org_id)
    if org.kind is not OrgKind.BRANCH:
        raise Refused("services.not_branch")
    return org


async def add_service(s: AsyncSession, actor: Actor, org_id: int, data: ServiceItemIn) -> ServiceListItem:
    await _require_branch_manager(s, actor, org_id)
    row = ServiceListItem(org_id=org_id, active=True, **data.model_dump())
    s.add(row)
    await s.flush()
    await _audit(s, actor, "service_list.add", row)
    return row


async def _audit(s: AsyncSession, actor: Actor, action: str, row: ServiceListItem) -> None:
    await audit.record(s, actor, action, org_id=row.org_id, detail={"item_id": row.id})


async def _load(s: AsyncSession, actor: Actor, item_id: int) -> ServiceListItem:
    row = await s.get(ServiceListItem, item_id)
    if row is None or not row.active:
        raise NotFound()
    await _require_branch_manager(s, actor, row.org_id)
    return row


async def update_service(s: AsyncSession, actor: Actor, item_id: int, data: ServiceItemIn) -> ServiceListItem:
    row = await _load(s, actor, item_id)
    for k, v in data.model_dump().items():
        setattr(row, k, v)
    await s.flush()
    await _audit(s, actor, "service_list.change", row)
    return row


async def remove_service(s: AsyncSession, actor: Actor, item_id: int) -> None:
    row = await _load(s, actor, item_id)
    row.active = False
    await s.flush()
    await _audit(s, actor, "service_list.remove", row)


async def list_services(s: AsyncSession, actor: Actor, org_id: int) -> list[ServiceListItem]:
    """The branch's active items, for everyone in the branch and whoever manages it."""
    org = await get_org(s, org_id)
    if not (any(g.org_id == org_id for g in actor.grants) or actor.manages(org)):
        raise Forbidden()
    rows = await s.scalars(
        select(ServiceListItem)
        .where(ServiceListItem.org_id == org_id, ServiceListItem.active.is_(True))
        .order_by(ServiceListItem.id)
    )
    return list(rows)
