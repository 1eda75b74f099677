"""A person's rights over their data (PIPL): see and export everything held about them, and
erase it.

Erasure keeps the rows that branch figures are built from (days, minutes, action, status) but
anonymous: the name becomes a placeholder, identifiers and everything the person wrote are
cleared, memberships and conversation state go, and nothing more is sent to them.
"""

from __future__ import annotations

import enum
import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import admin_sessions, audit
from storage.access import Actor
from storage.errors import Forbidden, NotFound, Refused
from storage.evidence import EvidenceStore
from storage.models import (
    AuditEntry,
    Certificate,
    Commitment,
    ConversationState,
    Delivery,
    DeliveryStatus,
    DingTalkCard,
    DingTalkFrame,
    DingTalkOutgoing,
    DingTalkPerson,
    DingTalkPlain,
    InboundUpdate,
    Invite,
    Membership,
    Notice,
    Org,
    Person,
    ServiceEntry,
    WebSignIn,
)

ERASED_NAME = "已删除用户#{id}"  # stored data, not an interface text: the same in every locale
EXPORT_VERSION = 1

PROFILE_FIELDS = (
    "id",
    "name",
    "telegram_id",
    "username",
    "locale",
    "consent_at",
    "blocked_at",
    "last_active_at",
    "nudges_paused",
    "roster_note",
    "erased_at",
    "created_at",
)
ENTRY_FIELDS = (
    "id",
    "org_id",
    "day",
    "minutes",
    "action",
    "place",
    "description",
    "organizer",
    "person_in_charge",
    "evidence_file_id",
    "pairing_id",
    "status",
    "reviewed_at",
    "reason",
    "created_at",
)
COMMITMENT_FIELDS = (
    "id",
    "org_id",
    "is_branch",
    "template_id",
    "text",
    "deadline",
    "is_public",
    "status",
    "fulfilment_text",
    "fulfilment_file_id",
    "reported_at",
    "rating",
    "evaluation",
    "evaluated_at",
    "withdrawn_at",
    "created_at",
)
DELIVERY_FIELDS = ("id", "kind", "notice_id", "status", "sent_at", "acknowledged_at", "created_at")
AUDIT_FIELDS = ("id", "at", "via", "action", "actor_id", "subject_person_id", "org_id", "detail")


DINGTALK_FIELDS = ("dingtalk_id", "name", "language_code", "first_seen_at", "last_seen_at")


def _value(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, enum.Enum):
        return v.value
    return v


def _fields(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: _value(getattr(obj, n)) for n in names}


def _may_act_on(actor: Actor, person_id: int) -> None:
    """A person acts on their own data; an admin on anyone's. Nobody else, not even a secretary."""
    if actor.person_id != person_id and not actor.is_admin:
        raise Forbidden()


async def _person(s: AsyncSession, person_id: int) -> Person:
    person = await s.get(Person, person_id)
    if person is None:
        raise NotFound()
    return person


async def export_person(s: AsyncSession, actor: Actor, person_id: int) -> dict[str, Any]:
    """Everything held about a person, as JSON-ready data. Audited."""
    _may_act_on(actor, person_id)
    p = await _person(s, person_id)
    profile = _fields(p, PROFILE_FIELDS)
    profile["has_password"] = p.password_hash is not None
    memberships = [
        {"org_id": org_id, "org_name": name, "role": _value(role), "since": _value(since)}
        for org_id, name, role, since in await s.execute(
            select(Membership.org_id, Org.name, Membership.role, Membership.created_at)
            .join(Org, Org.id == Membership.org_id)
            .where(Membership.person_id == person_id)
            .order_by(Membership.id)
        )
    ]

    async def rows(model: Any, cond: Any, names: tuple[str, ...]) -> list[dict[str, Any]]:
        found = await s.scalars(select(model).where(cond).order_by(model.id))
        return [_fields(r, names) for r in found]

    data = {
        "format": "branchbot-person-export",
        "version": EXPORT_VERSION,
        "profile": profile,
        "memberships": memberships,
        "service_entries": await rows(ServiceEntry, ServiceEntry.person_id == person_id, ENTRY_FIELDS),
        "commitments": await rows(Commitment, Commitment.person_id == person_id, COMMITMENT_FIELDS),
        "deliveries": await rows(Delivery, Delivery.person_id == person_id, DELIVERY_FIELDS),
        "audit": await rows(
            AuditEntry,
            or_(AuditEntry.subject_person_id == person_id, AuditEntry.actor_id == person_id),
            AUDIT_FIELDS,
        ),
        # On DingTalk (bridge/dingtalk): who they are there, as DingTalk reported it.
        "dingtalk": [
            _fields(d, DINGTALK_FIELDS)
            for d in (
                []
                if p.telegram_id is None
                else await s.scalars(select(DingTalkPerson).where(DingTalkPerson.user_id == p.telegram_id))
            )
        ],
    }
    await audit.record(s, actor, "person.export", subject_person_id=person_id)
    return data


async def export_person_file(s: AsyncSession, actor: Actor, person_id: int) -> bytes:
    """The export as a UTF-8 JSON file (Chinese kept readable, not \\u-escaped)."""
    data = await export_person(s, actor, person_id)
    return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")


def _state_keys_of(telegram_id: int) -> Any:
    # aiogram's key builder joins ids with ":" ("fsm:<bot>:<chat>:<user>:<destiny>"); a private
    # chat's id is the user's id, so any whole segment equal to it is theirs.
    tg = str(telegram_id)
    return or_(
        ConversationState.key.like(f"%:{tg}:%"),
        ConversationState.key.like(f"%:{tg}"),
        ConversationState.key.like(f"{tg}:%"),
    )


def _mentions_user(payload: Any, telegram_id: int) -> bool:
    """Does a Telegram update hold this user (as a `from`, a `chat`, a `user`: any object whose
    "id" is theirs)?"""
    if isinstance(payload, dict):
        if payload.get("id") == telegram_id:
            return True
        return any(_mentions_user(v, telegram_id) for v in payload.values())
    if isinstance(payload, list):
        return any(_mentions_user(v, telegram_id) for v in payload)
    return False


async def erase_person(
    s: AsyncSession, actor: Actor, person_id: int, now: datetime, evidence: EvidenceStore | None = None
) -> Person:
    """Erase a person's data: the person themselves (after the chat's confirmation) or an admin.

    `evidence` is the store of their photos (the caller's setting): the files go too. They are
    removed before the caller commits, so a failed commit errs on the side of the person."""
    _may_act_on(actor, person_id)
    p = await _person(s, person_id)
    if p.erased_at is not None:
        raise Refused("privacy.already_erased")

    def run(stmt: Any) -> Any:
        return s.execute(stmt.execution_options(synchronize_session=False))

    if p.telegram_id is not None:
        await run(delete(ConversationState).where(_state_keys_of(p.telegram_id)))
        # Their updates still in the inbox (this one among them): each is a copy of a message,
        # with their id and name. The inbox is small (only what is in flight), so it is read whole.
        inbox = await s.execute(select(InboundUpdate.bot_id, InboundUpdate.update_id, InboundUpdate.payload))
        for bot_id, update_id, payload in inbox:
            if _mentions_user(payload, p.telegram_id):
                await run(
                    delete(InboundUpdate).where(
                        InboundUpdate.bot_id == bot_id, InboundUpdate.update_id == update_id
                    )
                )
        # On DingTalk (bridge/dingtalk): their DingTalk id and name, the cards and messages shown
        # to them, what the bot sent them that DingTalk has not yet taken, and what they wrote
        # that the bot has not yet confirmed.
        dingtalk_id = await s.scalar(
            select(DingTalkPerson.dingtalk_id).where(DingTalkPerson.user_id == p.telegram_id)
        )
        if dingtalk_id is not None:
            await run(delete(DingTalkCard).where(DingTalkCard.dingtalk_id == dingtalk_id))
            await run(delete(DingTalkPlain).where(DingTalkPlain.dingtalk_id == dingtalk_id))
            await run(delete(DingTalkOutgoing).where(DingTalkOutgoing.dingtalk_id == dingtalk_id))
            frames = await s.execute(select(DingTalkFrame.id, DingTalkFrame.data))
            for frame_id, data in frames:
                if dingtalk_id in (data.get("senderStaffId"), data.get("userId")):
                    await run(delete(DingTalkFrame).where(DingTalkFrame.id == frame_id))
            await run(delete(DingTalkPerson).where(DingTalkPerson.dingtalk_id == dingtalk_id))
    await run(
        update(Delivery)
        .where(Delivery.person_id == person_id, Delivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.FAILED, error="erased")
    )
    # The chat id is their Telegram id and the payload may greet them by name.
    await run(update(Delivery).where(Delivery.person_id == person_id).values(chat_id=0, payload={}))
    await run(
        update(ServiceEntry)
        .where(ServiceEntry.person_id == person_id)
        .values(
            description="",
            place="",
            organizer=None,
            person_in_charge=None,
            evidence_file_id=None,
            evidence_path=None,
            reason=None,
            source=None,  # "<telegram id>:<wizard id>": it names them
        )
    )
    await run(
        update(Commitment)
        .where(Commitment.person_id == person_id, Commitment.is_branch.is_(False))
        .values(text="", fulfilment_text=None, fulfilment_file_id=None, evaluation=None)
    )
    await run(update(Commitment).where(Commitment.person_id == person_id).values(source=None))
    # A notice they sent keeps its text (it was addressed to the branch) but not their chat: its
    # source and status message are "<their chat id>:<message id>".
    await run(
        update(Notice)
        .where(Notice.sender_id == person_id)
        .values(source=None, status_chat_id=None, status_message_id=None)
    )
    await run(delete(Membership).where(Membership.person_id == person_id))
    await run(delete(Invite).where(Invite.person_id == person_id))
    await run(delete(WebSignIn).where(WebSignIn.person_id == person_id))
    # A certificate names the person; once erased, /verify/<code> finds nothing.
    await run(delete(Certificate).where(Certificate.person_id == person_id))
    await admin_sessions.end_all(s, person_id)
    p.name = ERASED_NAME.format(id=p.id)
    p.telegram_id = None
    p.username = None
    p.password_hash = None
    p.locale = None
    p.roster_note = None
    p.consent_at = None
    p.blocked_at = None
    p.last_active_at = None
    p.erased_at = now
    await s.flush()
    await s.refresh(p, ["memberships"])
    if evidence is not None:
        evidence.delete_person(person_id)
    await audit.record(s, actor, "person.erase", subject_person_id=person_id)
    return p
