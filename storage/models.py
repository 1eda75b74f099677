"""The tables. Rules live in the store operations (one module per area), not here."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.db import Base, UTCDateTime, utcnow


def _partial_index(name: str, *columns: str, where: str) -> Index:
    """An index of the rows where `where` holds, on SQLite and PostgreSQL alike.

    The condition is given to the backend that creates the index, when it does: written as
    `sqlite_where=` and `postgresql_where=` here, SQLAlchemy would import both dialects to check
    the options, and every SQLite bot process would carry PostgreSQL's (2 MB; issue 11). The
    migration that creates the index states the same condition."""
    index = Index(name, *columns)

    @event.listens_for(index, "before_create")
    def _where(target: Index, connection: Connection, **_: Any) -> None:
        backend = connection.dialect.name
        if backend in ("sqlite", "postgresql"):
            target.dialect_options[backend]["where"] = text(where)

    return index


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings (no native PG enum types): portable and easy to migrate.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=20,
        values_callable=lambda e: [m.value for m in e],
    )


class OrgKind(enum.StrEnum):
    PROVINCE = "province"
    COMMITTEE = "committee"
    BRANCH = "branch"


class Role(enum.StrEnum):
    MEMBER = "member"
    SECRETARY = "secretary"
    STAFF = "staff"
    ADMIN = "admin"


class EntryStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class CommitmentStatus(enum.StrEnum):
    MADE = "made"  # 亮诺
    REPORTED = "reported"  # 践诺: fulfilment reported, awaiting evaluation
    EVALUATED = "evaluated"  # 评诺
    WITHDRAWN = "withdrawn"
    # "overdue" is derived (MADE and past its deadline), never stored, so it cannot go stale.


class ItemStatus(enum.StrEnum):
    MET = "met"
    PARTLY = "partly"
    NOT_YET = "not_yet"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    BLOCKED = "blocked"


class NoticeStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"


class Audience(enum.StrEnum):
    BRANCH_MEMBERS = "branch_members"
    SUBTREE_SECRETARIES = "subtree_secretaries"
    SUBTREE_ALL = "subtree_all"


class ReminderKind(enum.StrEnum):
    MONTHLY_NUDGE = "monthly_nudge"
    WEEKLY_DIGEST = "weekly_digest"
    COMMITMENT_DUE = "commitment_due"
    MILESTONE = "milestone"


class RunStatus(enum.StrEnum):
    CLAIMED = "claimed"
    SENT = "sent"
    EMPTY = "empty"  # nothing to say: not sent, but recorded
    MISSED = "missed"  # due during downtime and no longer relevant


class Org(Base):
    __tablename__ = "orgs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[OrgKind] = mapped_column(_enum(OrgKind, "org_kind"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id", ondelete="RESTRICT"), index=True)
    # Materialized path "/1/4/9/": a subtree is one indexed prefix match, in SQL, on both backends.
    path: Mapped[str] = mapped_column(String(400), default="/", index=True)
    category: Mapped[str | None] = mapped_column(String(40))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    parent: Mapped[Org | None] = relationship(remote_side=[id])


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    name: Mapped[str] = mapped_column(String(100))
    locale: Mapped[str | None] = mapped_column(String(8))
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # bot blocked: unreachable
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    nudges_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # Admin web sign-in (admins and staff); never set for members.
    username: Mapped[str | None] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    # A roster row imported before the person joined has no telegram_id and no consent yet.
    roster_note: Mapped[str | None] = mapped_column(String(200))
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(back_populates="person", lazy="selectin")

    @property
    def reachable(self) -> bool:
        return self.blocked_at is None and self.telegram_id is not None and self.erased_at is None


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("person_id", "org_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    person: Mapped[Person] = relationship(back_populates="memberships")
    org: Mapped[Org] = relationship(lazy="joined")


class Invite(Base):
    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    uses_left: Mapped[int] = mapped_column(Integer, default=1)
    # A personal invite from an imported roster: opening it ties the account to this row.
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ServiceEntry(Base):
    """One volunteer service record, with the fields China's volunteer record rules ask for."""

    __tablename__ = "service_entries"
    __table_args__ = (
        CheckConstraint("minutes > 0 AND minutes <= 1440", name="minutes_range"),
        # (org_id, day) first; the other columns make report scans index-only (bench/store.py).
        Index("ix_service_entries_org_day", "org_id", "day", "status", "action", "minutes", "person_id"),
        Index("ix_service_entries_person_day", "person_id", "day"),
        # Joint activities are few: a partial index finds them without weighing the NULLs.
        _partial_index("ix_service_entries_pairing", "pairing_id", where="pairing_id IS NOT NULL"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    minutes: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(40))  # service action id from the content pack
    place: Mapped[str] = mapped_column(String(100), default="")
    description: Mapped[str] = mapped_column(String(500))
    organizer: Mapped[str | None] = mapped_column(String(200))  # organizing unit
    person_in_charge: Mapped[str | None] = mapped_column(String(100))
    evidence_file_id: Mapped[str | None] = mapped_column(String(200))
    # The photo's copy in the local evidence store (storage/evidence.py), fetched once from Telegram.
    evidence_path: Mapped[str | None] = mapped_column(String(200))
    pairing_id: Mapped[int | None] = mapped_column(ForeignKey("pairings.id", ondelete="SET NULL"))
    status: Mapped[EntryStatus] = mapped_column(
        _enum(EntryStatus, "entry_status"), default=EntryStatus.PENDING, index=True
    )
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(300))
    # "chat_id:message_id" of the message that created it: a redelivered update cannot double it.
    source: Mapped[str | None] = mapped_column(String(80), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Commitment(Base):
    __tablename__ = "commitments"
    __table_args__ = (Index("ix_commitments_org_status", "org_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    is_branch: Mapped[bool] = mapped_column(Boolean, default=False)  # the branch's own commitment
    template_id: Mapped[str | None] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(String(500))
    deadline: Mapped[date] = mapped_column(Date)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[CommitmentStatus] = mapped_column(
        _enum(CommitmentStatus, "commitment_status"), default=CommitmentStatus.MADE
    )
    fulfilment_text: Mapped[str | None] = mapped_column(String(1000))
    fulfilment_file_id: Mapped[str | None] = mapped_column(String(200))
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rating: Mapped[str | None] = mapped_column(String(20))
    evaluation: Mapped[str | None] = mapped_column(String(500))
    evaluated_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source: Mapped[str | None] = mapped_column(String(80), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Assessment(Base):
    __tablename__ = "assessments"
    __table_args__ = (Index("ix_assessments_org_checklist", "org_id", "checklist_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    checklist_id: Mapped[str] = mapped_column(String(40))
    period: Mapped[str] = mapped_column(String(20))  # "2026", "2026-Q4", "2026-11"
    assessor_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # None while in progress
    score: Mapped[float | None] = mapped_column(Float)  # 0..100, set when finished
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    items: Mapped[list[AssessmentItem]] = relationship(
        back_populates="assessment", lazy="selectin", cascade="all, delete-orphan"
    )


class AssessmentItem(Base):
    __tablename__ = "assessment_items"
    __table_args__ = (UniqueConstraint("assessment_id", "item_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[ItemStatus] = mapped_column(_enum(ItemStatus, "item_status"))
    note: Mapped[str | None] = mapped_column(String(500))

    assessment: Mapped[Assessment] = relationship(back_populates="items")


class ServiceListItem(Base):
    """One line of a branch's published service list (服务清单)."""

    __tablename__ = "service_list_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    audience: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str] = mapped_column(String(200))
    time_limit: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(1000))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Notice(Base):
    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    audience: Mapped[Audience] = mapped_column(_enum(Audience, "audience"))
    text: Mapped[str] = mapped_column(String(4000))
    file_id: Mapped[str | None] = mapped_column(String(200))
    file_kind: Mapped[str | None] = mapped_column(String(20))  # "photo" | "document"
    status: Mapped[NoticeStatus] = mapped_column(
        _enum(NoticeStatus, "notice_status"), default=NoticeStatus.DRAFT
    )
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The sender's status message, edited in place with the counts while the notice goes out.
    status_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    status_message_id: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str | None] = mapped_column(String(80), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Delivery(Base):
    """The outbox: one row per recipient of a notice, reminder or nudge, committed before sending."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "not_before"),
        Index("ix_deliveries_notice", "notice_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # notice | nudge | reminder | digest | text
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    # Unique per intended message ("notice:7:person:42"), so enqueueing twice sends once.
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # text, markup, file
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(300))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReminderRule(Base):
    __tablename__ = "reminder_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[ReminderKind] = mapped_column(_enum(ReminderKind, "reminder_kind"))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    cron: Mapped[str] = mapped_column(String(100))  # crontab line, read in `timezone`
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # e.g. {"days_before": 3}
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Beyond this, a run missed during downtime is no longer worth sending.
    grace_hours: Mapped[int] = mapped_column(Integer, default=24)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReminderRun(Base):
    __tablename__ = "reminder_runs"
    __table_args__ = (UniqueConstraint("rule_id", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("reminder_rules.id", ondelete="CASCADE"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"))
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Pairing(Base):
    """共创共建: a strong branch paired with a weaker one."""

    __tablename__ = "pairings"
    __table_args__ = (UniqueConstraint("strong_org_id", "weak_org_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    strong_org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    weak_org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    started_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(String(500))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Exemplar(Base):
    """标杆、样板: a branch a committee picked as a model."""

    __tablename__ = "exemplars"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    year: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(String(1000))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Report(Base):
    """A branch report submitted upward (报送)."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("org_id", "period_start", "period_end"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    to_org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id", ondelete="SET NULL"), index=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(String(2000))
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Submission(Base):
    """A document sent upward and frozen as sent (storage/submissions.py): its figures and its
    file bytes with their sha256. Rows are never updated; a resubmission adds a row."""

    __tablename__ = "submissions"
    __table_args__ = (
        Index("ix_submissions_kind_org_period", "kind", "org_id", "period_start", "period_end"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # "branch_report", "duty_packet", ...
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    file_name: Mapped[str] = mapped_column(String(200))
    file_bytes: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Certificate(Base):
    """A certificate of service hours (志愿服务证明) handed to a member as a PDF. The code is
    printed on it; the public /verify/<code> page shows the name, period and total from here,
    and the hash of the PDF's bytes tells a genuine file from an edited one."""

    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    date_from: Mapped[date] = mapped_column(Date)
    date_to: Mapped[date] = mapped_column(Date)
    minutes: Mapped[int] = mapped_column(Integer)
    entries: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(8))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LeaderReview(Base):
    """述职评议: the committee's rating of a branch leader (the secretary) for a year, with a
    comment; the secretary sees it once the committee releases it."""

    __tablename__ = "leader_reviews"
    __table_args__ = (UniqueConstraint("org_id", "year"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    year: Mapped[int] = mapped_column(Integer)
    rating: Mapped[str] = mapped_column(String(20))  # storage.leader_reviews.RATINGS
    comment: Mapped[str | None] = mapped_column(String(500))
    rated_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    rated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ProcessedUpdate(Base):
    """Update ids already handled: a redelivered update is skipped whole."""

    __tablename__ = "processed_updates"

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InboundUpdate(Base):
    """Updates taken from Telegram by long polling, kept until handled.

    Storing them is what lets the poller confirm a batch at once (no re-downloading what is
    still being handled) without losing it if the process dies: at start-up, rows still here
    are handled first. Handled rows are deleted in batches.
    """

    __tablename__ = "inbound_updates"

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConversationState(Base):
    """aiogram FSM state and data, so a wizard survives a restart (when Redis is not used)."""

    __tablename__ = "conversation_states"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class WebSignIn(Base):
    """One-time admin-web sign-in links sent by the bot on /web: single use, short-lived."""

    __tablename__ = "web_sign_ins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AdminSession(Base):
    """A signed-in admin web session. The browser's cookie holds only a random id; its SHA-256 is
    kept here, so the session can be ended (logout, a new password, a role taken away, "sign out
    everywhere") and a copy of the table cannot be replayed as cookies."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the absolute lifetime's end


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    via: Mapped[str] = mapped_column(String(10))  # web | cli | bot
    action: Mapped[str] = mapped_column(String(40))  # view | change | export | delete | ...
    subject_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id", ondelete="SET NULL"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # ids and field names only


class GateMark(Base):
    """Telegram's limits shared by the bot's processes through PostgreSQL when there is no Redis
    (bot/gate/dbstate.py): a message's place in a moving window (`name` "all", "chat:<id>", ...),
    a 429's pause (`name` "pause", `t` its end), a reply waiting somewhere ("reply", `t` when the
    mark lapses). Times are the database server's epoch seconds, one clock for every machine.
    UNLOGGED on PostgreSQL: the rows matter for a minute, a crash may lose them. Unused on SQLite
    (one process: the gate's state stays in the process)."""

    __tablename__ = "gate_marks"
    __table_args__ = (Index("ix_gate_marks_scope_name_t", "scope", "name", "t"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(100))  # one bot's limits: "<prefix>:<bot id>"
    name: Mapped[str] = mapped_column(String(40))
    t: Mapped[float] = mapped_column(Float)


class DingTalkPerson(Base):
    """A DingTalk user as the bridge (bridge/dingtalk) shows them to the bot: their DingTalk
    userId, the Bot API user id they have on every start, and name and language as DingTalk
    last reported them. Kept so the bot can reach everyone after a bridge restart."""

    __tablename__ = "dingtalk_people"

    dingtalk_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    name: Mapped[str] = mapped_column(String(200))
    language_code: Mapped[str] = mapped_column(String(16))
    menu: Mapped[str | None] = mapped_column(String(64))  # digest of the command card last sent
    # Message ids in the person's chat are taken below this (reserved in blocks): a restart
    # numbers on from here, so an id the bot kept never names another message.
    next_message_id: Mapped[int] = mapped_column(BigInteger, default=1)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DingTalkFrame(Base):
    """A DingTalk Stream frame (a robot message or a card press) the bridge has acknowledged:
    kept until the bot has confirmed the Bot API update it became, so a bridge restart in
    between replays it instead of losing it. The newest confirmed row stays (`done`): its
    update_id is where the next start continues counting."""

    __tablename__ = "dingtalk_frames"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # arrival order
    message_id: Mapped[str] = mapped_column(String(100), unique=True)  # DingTalk's, the dedup key
    topic: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    update_id: Mapped[int | None] = mapped_column(BigInteger)  # the Bot API update it became
    done: Mapped[bool] = mapped_column(Boolean, default=False)


class DingTalkCard(Base):
    """A bot message shown in DingTalk as an interactive card: the card's outTrackId and the
    message as the bot last made it, so after a bridge restart a press on the card still
    reaches the bot and the bot can still edit it."""

    __tablename__ = "dingtalk_cards"

    out_track_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dingtalk_id: Mapped[str] = mapped_column(
        ForeignKey("dingtalk_people.dingtalk_id", ondelete="CASCADE"), index=True
    )
    # "message": a bot message as a card (message: text, entities, caption, reply_markup);
    # "menu": a command-menu card (message_id 0, message: {"commands": [...]}, its buttons' order).
    kind: Mapped[str] = mapped_column(String(8), default="message", server_default="message")
    message_id: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[dict[str, Any]] = mapped_column(JSON)  # text, entities, caption, reply_markup
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DingTalkPlain(Base):
    """A bot message shown in DingTalk as a plain robot message: its processQueryKey (what a
    recall names) and the message as the bot last made it, so after a bridge restart the bot can
    still edit it (a correction follows) and delete it (recalled). Kept as long as cards."""

    __tablename__ = "dingtalk_plain"

    process_query_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    dingtalk_id: Mapped[str] = mapped_column(
        ForeignKey("dingtalk_people.dingtalk_id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[dict[str, Any]] = mapped_column(JSON)  # text, entities, date
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DingTalkOutgoing(Base):
    """A change the bot made in a DingTalk person's chat (sent, edited, deleted), kept before
    the bot gets its "ok" and until DingTalk accepted it: a bridge killed in between passes it
    on at its next start, in order (`id`). `media` holds a photo's or document's bytes."""

    __tablename__ = "dingtalk_outgoing"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    dingtalk_id: Mapped[str] = mapped_column(
        ForeignKey("dingtalk_people.dingtalk_id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))  # "sent" | "edited" | "deleted"
    message: Mapped[dict[str, Any]] = mapped_column(JSON)  # the message as it was then
    media: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
