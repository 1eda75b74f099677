"""Public commitments (公开承诺): made (亮诺), reported fulfilled (践诺), evaluated (评诺), published (公示).

Lifecycle, and nothing else (any other move is `commitment.bad_transition`):

    made ──report (owner)──► reported ──evaluate (reviewer)──► evaluated
     │                          │
     └─withdraw (owner)──► withdrawn   reported ──return (reviewer)──► made   (more work asked)

The owner of a personal commitment is its member; of the branch's own commitment, the branch's
secretary. The reviewer is the branch's secretary or staff above, never the owner; a secretary's
own commitments (and the branch's) are reviewed by the staff above, as with service entries.
"Overdue" is derived (made and past its deadline), never stored, so it cannot go stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import and_, case, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from content.pack import Pack
from storage import audit
from storage.access import Actor, require_manager
from storage.errors import Forbidden, Invalid, NotFound, Refused
from storage.models import Commitment, CommitmentStatus, Membership, Org, OrgKind, Person, Role
from storage.service_log import clean_text
from storage.validation import parse

RATINGS = ("excellent", "good", "fair", "poor")  # 优秀 / 良好 / 一般 / 较差
Rating = Literal["excellent", "good", "fair", "poor"]
MAX_YEARS_AHEAD = 2


class NewCommitment(BaseModel):
    """A commitment as submitted: from a template (text and deadline may be left out) or free text."""

    model_config = ConfigDict(str_strip_whitespace=True, frozen=True, extra="forbid")

    template_id: str | None = Field(default=None, max_length=40)
    text: str | None = Field(
        default=None, max_length=500, json_schema_extra={"error_key": "commitment.bad_text"}
    )
    deadline: date | None = None
    is_public: bool = True
    for_branch: bool = False  # the branch's own commitment (made by its secretary)

    _clean = field_validator("text", mode="before")(clean_text)

    @field_validator("text", "template_id")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v or None


class Fulfilment(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True, extra="forbid")

    text: str = Field(
        min_length=1, max_length=1000, json_schema_extra={"error_key": "commitment.bad_fulfilment"}
    )
    file_id: str | None = Field(default=None, max_length=200)

    _clean = field_validator("text", mode="before")(clean_text)


class Evaluation(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True, extra="forbid")

    rating: Rating = Field(json_schema_extra={"error_key": "commitment.bad_rating"})
    comment: str | None = Field(
        default=None, max_length=500, json_schema_extra={"error_key": "commitment.bad_comment"}
    )

    _clean = field_validator("comment", mode="before")(clean_text)


class Return(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True, extra="forbid")

    comment: str = Field(
        min_length=1, max_length=500, json_schema_extra={"error_key": "commitment.bad_comment"}
    )

    _clean = field_validator("comment", mode="before")(clean_text)


def new_commitment(**data: Any) -> NewCommitment:
    return parse(NewCommitment, **data)


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def overdue_clause(today: date) -> ColumnElement[bool]:
    """SQL for "overdue": still only made, and its deadline has passed."""
    return and_(Commitment.status == CommitmentStatus.MADE, Commitment.deadline < today)


# ---------------------------------------------------------------------------------------------
# Making


async def make_commitment(
    s: AsyncSession,
    actor: Actor,
    data: NewCommitment,
    *,
    today: date,
    now: datetime | None = None,
    locale: str = "zh",
    source: str | None = None,
    pack: Pack,
) -> Commitment:
    """Make a commitment. With a template, its text (in `locale`) and default deadline fill in
    what was left out. A redelivered `source` returns the commitment it made the first time.
    `now` is when it was made (reports count it in the period of that instant)."""
    if source is not None:
        # A redelivery waits here for the first delivery to commit, then finds its row.
        await s.execute(select(Person.id).where(Person.id == actor.person_id).with_for_update())
        existing = await _by_source(s, source)
        if existing is not None:
            if existing.person_id != actor.person_id:
                raise Refused("commitment.duplicate_source")
            return existing
    if data.for_branch:
        org_id = next((g.org_id for g in actor.grants if g.role is Role.SECRETARY), None)
        if org_id is None:
            raise Forbidden("commitment.branch_needs_secretary")
    else:
        org_id = actor.home_branch_id()
        if org_id is None:
            raise Refused("commitment.not_member")

    text, deadline = data.text, data.deadline
    if data.template_id is not None:
        template = pack.template(data.template_id)
        if template is None:
            raise Refused("commitment.unknown_template")
        text = text or template.text.get(locale)
        deadline = deadline or today + timedelta(days=template.default_days)
    if not text:
        raise Invalid("commitment.text_required", field="text")
    if deadline is None:
        raise Invalid("commitment.deadline_required", field="deadline")
    if deadline < today:
        raise Refused("commitment.deadline_past")
    latest = add_years(today, MAX_YEARS_AHEAD)
    if deadline > latest:
        raise Refused("commitment.deadline_too_far", latest=latest.isoformat())

    row = Commitment(
        person_id=actor.person_id,
        org_id=org_id,
        is_branch=data.for_branch,
        template_id=data.template_id,
        text=text[:500],
        deadline=deadline,
        is_public=data.is_public,
        status=CommitmentStatus.MADE,
        source=source,
    )
    if now is not None:
        row.created_at = now
    try:
        async with s.begin_nested():
            s.add(row)
            await s.flush()
    except IntegrityError:
        if source is None:
            raise
        existing = await _by_source(s, source)
        if existing is None or existing.person_id != actor.person_id:
            raise Refused("commitment.duplicate_source") from None
        return existing
    await _audit(s, actor, "commitment.make", row, now)
    return row


async def _audit(
    s: AsyncSession, actor: Actor, action: str, c: Commitment, now: datetime | None, **detail: object
) -> None:
    """Flushes the change, then its audit row: the owner is the subject, whoever acted."""
    await s.flush()
    await audit.record(
        s,
        actor,
        action,
        subject_person_id=c.person_id,
        org_id=c.org_id,
        detail={"commitment_id": c.id, **detail},
        now=now,
    )


async def _by_source(s: AsyncSession, source: str) -> Commitment | None:
    return await s.scalar(select(Commitment).where(Commitment.source == source))


# ---------------------------------------------------------------------------------------------
# Moving along the lifecycle


@dataclass(frozen=True, slots=True)
class Outcome:
    """The commitment after the step, and whom to tell (its owner)."""

    commitment: Commitment
    telegram_id: int | None
    locale: str | None
    reachable: bool


async def _load(s: AsyncSession, commitment_id: int) -> tuple[Commitment, Org]:
    row = (
        await s.execute(
            select(Commitment, Org)
            .join(Org, Org.id == Commitment.org_id)
            .where(Commitment.id == commitment_id)
            .with_for_update(of=Commitment)
        )
    ).first()
    if row is None:
        raise NotFound()
    return row[0], row[1]


def _is_owner(actor: Actor, c: Commitment) -> bool:
    if c.is_branch:
        return any(g.org_id == c.org_id and g.role is Role.SECRETARY for g in actor.grants)
    return c.person_id is not None and c.person_id == actor.person_id


async def _require_owner(actor: Actor, c: Commitment) -> None:
    if not _is_owner(actor, c):
        raise Forbidden()


async def _require_reviewer(s: AsyncSession, actor: Actor, c: Commitment, org: Org) -> None:
    if _is_owner(actor, c):
        raise Forbidden("commitment.own")
    owner_is_secretary = c.is_branch or (
        c.person_id is not None
        and await s.scalar(
            select(Membership.id).where(
                Membership.person_id == c.person_id,
                Membership.org_id == c.org_id,
                Membership.role == Role.SECRETARY,
            )
        )
        is not None
    )
    roles = (Role.STAFF, Role.ADMIN) if owner_is_secretary else (Role.SECRETARY, Role.STAFF, Role.ADMIN)
    if not actor.manages(org, roles):
        raise Forbidden()


def _require_status(c: Commitment, *allowed: CommitmentStatus) -> None:
    if c.status not in allowed:
        raise Refused("commitment.bad_transition", status=c.status.value)


async def _outcome(s: AsyncSession, c: Commitment) -> Outcome:
    person = await s.get(Person, c.person_id) if c.person_id is not None else None
    return Outcome(
        commitment=c,
        telegram_id=person.telegram_id if person else None,
        locale=person.locale if person else None,
        reachable=bool(person and person.reachable),
    )


async def report_fulfilment(
    s: AsyncSession,
    actor: Actor,
    commitment_id: int,
    text: str,
    file_id: str | None,
    now: datetime,
) -> Commitment:
    """践诺: the owner reports what was done (late is allowed: overdue ones can still be fulfilled)."""
    data = parse(Fulfilment, text=text, file_id=file_id)
    c, _org = await _load(s, commitment_id)
    await _require_owner(actor, c)
    _require_status(c, CommitmentStatus.MADE)
    c.status = CommitmentStatus.REPORTED
    c.fulfilment_text = data.text
    c.fulfilment_file_id = data.file_id
    c.reported_at = now
    await _audit(s, actor, "commitment.fulfil", c, now)
    return c


async def withdraw(s: AsyncSession, actor: Actor, commitment_id: int, now: datetime) -> Commitment:
    c, _org = await _load(s, commitment_id)
    await _require_owner(actor, c)
    _require_status(c, CommitmentStatus.MADE)
    c.status = CommitmentStatus.WITHDRAWN
    c.withdrawn_at = now
    await _audit(s, actor, "commitment.withdraw", c, now)
    return c


async def evaluate(
    s: AsyncSession,
    actor: Actor,
    commitment_id: int,
    rating: str,
    comment: str | None,
    now: datetime,
) -> Outcome:
    """评诺: the reviewer rates a reported commitment."""
    data = parse(Evaluation, rating=rating, comment=comment)
    c, org = await _load(s, commitment_id)
    await _require_reviewer(s, actor, c, org)
    _require_status(c, CommitmentStatus.REPORTED)
    c.status = CommitmentStatus.EVALUATED
    c.rating = data.rating
    c.evaluation = data.comment or None
    c.evaluated_by_id = actor.person_id
    c.evaluated_at = now
    await _audit(s, actor, "commitment.evaluate", c, now, rating=c.rating)
    return await _outcome(s, c)


async def return_for_more_work(
    s: AsyncSession, actor: Actor, commitment_id: int, comment: str, now: datetime
) -> Outcome:
    """The reviewer sends a reported commitment back (made again), saying why in `comment`.

    The owner's fulfilment text is kept so they can amend it; the comment is kept in
    `evaluation` until the commitment is evaluated for real.
    """
    data = parse(Return, comment=comment)
    c, org = await _load(s, commitment_id)
    await _require_reviewer(s, actor, c, org)
    _require_status(c, CommitmentStatus.REPORTED)
    c.status = CommitmentStatus.MADE
    c.reported_at = None
    c.evaluation = data.comment
    c.evaluated_by_id = actor.person_id
    c.evaluated_at = now
    await _audit(s, actor, "commitment.return", c, now)
    return await _outcome(s, c)


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True, slots=True)
class CommitmentView:
    commitment: Commitment
    owner_name: str | None  # the member, or the branch for the branch's own
    overdue: bool


async def list_commitments(
    s: AsyncSession,
    actor: Actor,
    scope: Literal["mine", "branch"],
    today: date,
    *,
    org_id: int | None = None,
    include_withdrawn: bool = False,
) -> list[CommitmentView]:
    """ "mine": the actor's personal commitments; "branch": all of a branch's (for its managers)."""
    C = Commitment
    overdue = case((overdue_clause(today), True), else_=False).label("overdue")
    owner = case((C.is_branch, Org.name), else_=Person.name).label("owner")
    q = (
        select(C, owner, overdue)
        .join(Org, Org.id == C.org_id)
        .outerjoin(Person, Person.id == C.person_id)
        .order_by(C.deadline, C.id)
    )
    if scope == "mine":
        q = q.where(C.person_id == actor.person_id, C.is_branch.is_(False))
    elif scope == "branch":
        target = org_id if org_id is not None else _first_managed_branch(actor)
        if target is None:
            raise Forbidden()
        await require_manager(s, actor, target)
        q = q.where(C.org_id == target)
    else:
        raise Invalid("error.invalid", field="scope")
    if not include_withdrawn:
        q = q.where(C.status != CommitmentStatus.WITHDRAWN)
    return [CommitmentView(c, name, bool(od)) for c, name, od in await s.execute(q)]


def _first_managed_branch(actor: Actor) -> int | None:
    return next(
        (g.org_id for g in actor.grants if g.role is Role.SECRETARY and g.org_kind is OrgKind.BRANCH),
        None,
    )


@dataclass(frozen=True, slots=True)
class PublicItem:
    """One line of the branch's public list (公示)."""

    id: int
    owner: str | None
    is_branch: bool
    text: str
    deadline: date
    status: CommitmentStatus
    overdue: bool
    rating: str | None


async def publication(s: AsyncSession, actor: Actor, org_id: int, today: date) -> list[PublicItem]:
    """The branch's public commitments, for everyone in the branch and those who manage it."""
    org = await s.get(Org, org_id)
    if org is None:
        raise NotFound()
    in_branch = any(g.org_id == org_id for g in actor.grants)
    if not (in_branch or actor.manages(org)):
        raise Forbidden()
    C = Commitment
    owner = case((C.is_branch, Org.name), else_=Person.name)
    overdue = case((overdue_clause(today), True), else_=False)
    rows = await s.execute(
        select(C.id, owner, C.is_branch, C.text, C.deadline, C.status, overdue, C.rating)
        .join(Org, Org.id == C.org_id)
        .outerjoin(Person, Person.id == C.person_id)
        .where(
            C.org_id == org_id,
            C.is_public.is_(True),
            C.status != CommitmentStatus.WITHDRAWN,
        )
        .order_by(C.is_branch.desc(), C.deadline, C.id)
    )
    return [
        PublicItem(
            id=i,
            owner=name,
            is_branch=bool(b),
            text=t,
            deadline=d,
            status=CommitmentStatus(st),
            overdue=bool(od),
            rating=r,
        )
        for i, name, b, t, d, st, od, r in rows
    ]
