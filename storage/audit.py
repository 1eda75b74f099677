"""The audit log: who looked at or changed what, through which surface.

Rows hold ids and field names only, never names or free text (`record` refuses anything else),
so the log itself is not a second copy of the personal data it watches over.

The command line acts as the built-in system actor (`system_actor`): no person, the admin role
everywhere, `via="cli"`; its rows have no actor_id and are told apart by `via`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, exists, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.access import Actor, Grant, require_person_access
from storage.errors import Forbidden, NotFound
from storage.models import AuditEntry, Membership, Org, OrgKind, Person, Role

SYSTEM_PERSON_ID = 0  # never a real row: ids start at 1
# What a detail value may look like: ids, field names, enum values, ISO dates, small numbers.
_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{0,64}$")
MAX_PER_PAGE = 200


def system_actor(via: str = "cli") -> Actor:
    """The operator at the command line: an admin everywhere, audited as `via`, with no person."""
    return Actor(SYSTEM_PERSON_ID, (Grant(0, "/", OrgKind.PROVINCE, Role.ADMIN),), via)


def _check_detail(value: Any, where: str = "detail") -> None:
    if value is None or isinstance(value, bool | int | float):
        return
    if isinstance(value, str):
        if not _TOKEN.match(value):
            raise ValueError(f"audit {where} holds text, not an id or field name")
        return
    if isinstance(value, list | tuple):
        for v in value:
            _check_detail(v, where)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str) or not _TOKEN.match(k):
                raise ValueError(f"audit {where} key is not a field name")
            _check_detail(v, f"{where}.{k}")
        return
    raise ValueError(f"audit {where} holds a {type(value).__name__}")


def _fields(
    actor: Actor,
    action: str,
    subject_person_id: int | None,
    org_id: int | None,
    detail: dict[str, Any] | None,
) -> dict[str, Any]:
    """An audit row's columns (but its time), checked: `record` and `record_now` both write them."""
    if not _TOKEN.match(action) or not action:
        raise ValueError("audit action must be a short token")
    _check_detail(detail or {})
    return {
        "actor_id": actor.person_id if actor.person_id != SYSTEM_PERSON_ID else None,
        "via": actor.via,
        "action": action,
        "subject_person_id": subject_person_id,
        "org_id": org_id,
        "detail": dict(detail or {}),
    }


async def record(
    s: AsyncSession,
    actor: Actor,
    action: str,
    *,
    subject_person_id: int | None = None,
    org_id: int | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
    flush: bool = True,
) -> AuditEntry:
    """Add one audit row. `detail` may hold ids, field names and enum values only.

    The channel is the actor's `via` (bot, web, cli), set by whoever built the actor: store
    operations never guess it. `flush=False` leaves the row to the caller's next flush."""
    row = AuditEntry(**_fields(actor, action, subject_person_id, org_id, detail))
    if now is not None:
        row.at = now
    s.add(row)
    if flush:
        await s.flush()
    return row


# Built once with bound parameters: `record_now` is on the quick form's path.
_INSERT = insert(AuditEntry.__table__).values(
    at=bindparam("at"),
    actor_id=bindparam("actor_id"),
    via=bindparam("via"),
    action=bindparam("action"),
    subject_person_id=bindparam("subject_person_id"),
    org_id=bindparam("org_id"),
    detail=bindparam("detail"),
)


async def record_now(
    s: AsyncSession,
    actor: Actor,
    action: str,
    *,
    subject_person_id: int | None = None,
    org_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """`record` as one INSERT, sent at once, with no ORM object to add and flush (for a store
    operation on the per-update path that needs no audit row back)."""
    fields = _fields(actor, action, subject_person_id, org_id, detail)
    await s.execute(_INSERT, {"at": datetime.now(UTC), **fields})


def person_actor(person_id: int, via: str) -> Actor:
    """The actor for an operation a person does on their own record (no grants needed)."""
    return Actor(person_id, (), via)


def on_admin_surface(actor: Actor) -> bool:
    """Reads of personal data are audited when they come from the admin web or the CLI."""
    return actor.via in ("web", "cli")


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditEntry]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _scope(actor: Actor) -> ColumnElement[bool]:
    """Entries about an org in the staff's subtree, or about a person who belongs there."""
    in_org = exists().where(Org.id == AuditEntry.org_id, actor.scope_filter(Org.path, (Role.STAFF,)))
    about_member = exists().where(
        Membership.person_id == AuditEntry.subject_person_id,
        Membership.org_id == Org.id,
        actor.scope_filter(Org.path, (Role.STAFF,)),
    )
    return or_(in_org, about_member)


def _day_start(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


async def list_audit(
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
) -> AuditPage:
    """The audit log, newest first: everything for an admin, their subtree for staff.

    `person_id` matches rows where the person acted or was the subject; `via` is the channel
    (bot, web, cli); `org_id` the organization the row is about, or its subtree's; dates are
    UTC days, both ends included.
    """
    if not actor.is_admin and Role.STAFF not in actor.roles():
        raise Forbidden()
    if person_id is not None:
        # Outside the subtree, or nobody at all: not there (and no name is ever looked up).
        if not actor.is_admin:
            await require_person_access(s, actor, person_id)
        elif await s.get(Person, person_id) is None:
            raise NotFound()
    page = max(1, page)
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    conds: list[ColumnElement[bool]] = []
    if not actor.is_admin:
        conds.append(_scope(actor))
    if person_id is not None:
        conds.append(or_(AuditEntry.subject_person_id == person_id, AuditEntry.actor_id == person_id))
    if action:
        conds.append(AuditEntry.action == action)
    if via:
        conds.append(AuditEntry.via == via)
    if org_id is not None:
        root = await s.get(Org, org_id)
        conds.append(
            exists().where(Org.id == AuditEntry.org_id, Org.path.like((root.path if root else "/-/") + "%"))
        )
    if date_from is not None:
        conds.append(AuditEntry.at >= _day_start(date_from))
    if date_to is not None:
        conds.append(AuditEntry.at < _day_start(date_to + timedelta(days=1)))
    total = await s.scalar(select(func.count()).select_from(AuditEntry).where(*conds)) or 0
    rows = await s.scalars(
        select(AuditEntry)
        .where(*conds)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return AuditPage(list(rows), total, page, per_page)
