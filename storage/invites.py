"""Invites: deep-link codes that let a person join an org in a role.

Who may invite whom: a secretary invites members to their branch; staff invite members and
secretaries to branches in their subtree, and staff to committees below their own; an admin
anything. Codes go into `https://t.me/<bot>?start=<code>`, whose payload Telegram limits to
64 characters of [A-Za-z0-9_-], which `secrets.token_urlsafe` produces.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.access import Actor, get_org
from storage.errors import Forbidden, Refused
from storage.models import Invite, Org, OrgKind, Role
from storage.validation import parse

CODE_BYTES = 16  # 22 characters, 128 bits: not guessable
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
BRANCH_ROLES = (Role.MEMBER, Role.SECRETARY)


class NewInvite(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Role
    uses: int = Field(default=1, ge=1, le=1000, json_schema_extra={"error_key": "invite.bad_uses"})
    days: int = Field(default=7, ge=1, le=365, json_schema_extra={"error_key": "invite.bad_days"})


def new_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


def deep_link(bot_username: str, code: str) -> str:
    return f"https://t.me/{bot_username.lstrip('@')}?start={code}"


def check_role_for_org(role: Role, org: Org) -> None:
    """A role only makes sense at some kinds of org: members and secretaries belong to branches."""
    if role in BRANCH_ROLES and org.kind is not OrgKind.BRANCH:
        raise Refused("invite.role_needs_branch")
    if role is Role.STAFF and org.kind is OrgKind.BRANCH:
        raise Refused("invite.role_needs_committee")


def may_invite(actor: Actor, org: Org, role: Role) -> bool:
    if actor.is_admin:
        return True
    if role is Role.MEMBER:
        return actor.manages(org, (Role.SECRETARY, Role.STAFF))
    if role is Role.SECRETARY:
        return actor.manages(org, (Role.STAFF,))
    if role is Role.STAFF:
        # Only committees strictly below their own: staff do not multiply themselves.
        return any(org.path.startswith(p) and org.path != p for p in actor.managed_paths((Role.STAFF,)))
    return False


async def create_invite(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    role: Role | str,
    uses: int = 1,
    days: int = 7,
    *,
    now: datetime,
    person_id: int | None = None,
) -> Invite:
    """A new invite to `org_id` in `role`, good for `uses` joins within `days` days."""
    new = parse(NewInvite, role=role, uses=uses, days=days)
    org = await get_org(s, org_id)
    if not may_invite(actor, org, new.role):
        raise Forbidden()
    check_role_for_org(new.role, org)
    inv = build_invite(actor, org, new.role, new.uses, new.days, now=now, person_id=person_id)
    s.add(inv)
    await s.flush()
    await audit.record(
        s,
        actor,
        "invite.create",
        org_id=org.id,
        subject_person_id=person_id,
        detail={"invite_id": inv.id, "role": new.role.value, "uses": new.uses, "days": new.days},
    )
    return inv


def build_invite(
    actor: Actor,
    org: Org,
    role: Role,
    uses: int,
    days: int,
    *,
    now: datetime,
    person_id: int | None = None,
) -> Invite:
    """An unsaved invite whose checks the caller has made (the roster import adds them in bulk)."""
    return Invite(
        code=new_code(),
        org_id=org.id,
        role=role,
        expires_at=now + timedelta(days=days),
        uses_left=uses,
        person_id=person_id,
        created_by_id=actor.person_id if actor.person_id != audit.SYSTEM_PERSON_ID else None,
        created_at=now,
    )
