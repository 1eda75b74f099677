"""Reports for any period [date_from, date_to] (both days included), computed in SQL.

What counts:
- Hours: approved entries only (pending ones are shown apart, never added in). An entry done
  under a pairing (a joint activity) counts for its own branch and for the partner branch.
  A subtree's totals count each entry once, even when both partners lie inside the subtree, so
  the branch rows of a subtree may add up to more than its total.
- Participants: people with approved service in the branch in the period; members: current
  members and secretaries of the branch. A subtree sums its branches (a person in two branches
  is counted in each, like their service).
- Commitments: those in force during the period (made before its end, deadline not before its
  start), not withdrawn, with their status today; overdue = still only made and past deadline.
- Checklists: each checklist's latest finished assessment.

Submitting (报送) stores a branch's summary (aggregates only, no per-member rows: the committee
needs numbers, not names) for its parent committee; resubmitting the same period replaces it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import CompoundSelect, and_, case, func, literal, or_, select, true, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import ColumnElement

from content.pack import Pack, get_pack
from storage.access import Actor, require_manager, require_person_access
from storage.commitments import overdue_clause
from storage.errors import Refused
from storage.models import (
    Assessment,
    Commitment,
    CommitmentStatus,
    EntryStatus,
    Membership,
    Org,
    OrgKind,
    Pairing,
    Person,
    Report,
    Role,
    ServiceEntry,
)
from storage.service_log import clean_text
from storage.validation import parse

OTHER = "other"  # minutes under actions the pack no longer lists
MEMBER_ROLES = (Role.MEMBER, Role.SECRETARY)
MAX_DAYS = 366 * 5 + 1


class Period(BaseModel):
    model_config = ConfigDict(frozen=True)

    date_from: date
    date_to: date

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.date_to < self.date_from or (self.date_to - self.date_from).days > MAX_DAYS:
            raise ValueError("bad period")
        return self


class Submission(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True, extra="forbid")

    note: str | None = Field(
        default=None, max_length=2000, json_schema_extra={"error_key": "report.bad_note"}
    )

    _clean = field_validator("note", mode="before")(clean_text)


def _period(date_from: date, date_to: date) -> Period:
    try:
        return parse(Period, date_from=date_from, date_to=date_to)
    except Refused:
        raise Refused("report.bad_period") from None


def _utc_bounds(p: Period, tz: str) -> tuple[datetime, datetime]:
    """The period as [start, end) in UTC, read in the org's time zone."""
    zone = ZoneInfo(tz)
    start = datetime.combine(p.date_from, time(), zone).astimezone(UTC)
    end = datetime.combine(p.date_to + timedelta(days=1), time(), zone).astimezone(UTC)
    return start, end


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class CommitmentCounts:
    made: int = 0  # all in force in the period (not withdrawn)
    reported: int = 0  # fulfilment reported, awaiting evaluation
    evaluated: int = 0
    overdue: int = 0

    @property
    def fulfilled(self) -> int:
        return self.reported + self.evaluated


@dataclass(frozen=True, slots=True)
class ChecklistScore:
    checklist_id: str
    period: str
    score: float
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class MemberRow:
    person_id: int
    name: str
    role: Role
    minutes_by_action: dict[str, int]
    minutes: int
    commitments: CommitmentCounts


@dataclass(frozen=True, slots=True)
class BranchReport:
    org_id: int
    org_name: str
    date_from: date
    date_to: date
    today: date
    minutes_by_action: dict[str, int]  # approved, joint activities with partners included
    minutes: int
    joint_minutes: int  # of `minutes`, credited from partner branches' members (pairings)
    pending_entries: int
    pending_minutes: int
    participants: int
    members_total: int
    members: list[MemberRow]
    commitments: CommitmentCounts
    checklists: list[ChecklistScore]
    timezone: str = "Asia/Shanghai"  # the branch's, for showing times as its dates

    def summary(self) -> dict[str, Any]:
        """JSON-ready aggregates, without the per-member rows (what is sent upward)."""
        return {
            "org_id": self.org_id,
            "org_name": self.org_name,
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
            "today": self.today.isoformat(),
            "minutes_by_action": dict(self.minutes_by_action),
            "minutes": self.minutes,
            "joint_minutes": self.joint_minutes,
            "pending_entries": self.pending_entries,
            "pending_minutes": self.pending_minutes,
            "participants": self.participants,
            "members_total": self.members_total,
            "commitments": asdict(self.commitments),
            "checklists": [
                {
                    "checklist_id": c.checklist_id,
                    "period": c.period,
                    "score": c.score,
                    "finished_at": c.finished_at.isoformat(),
                }
                for c in self.checklists
            ],
        }


@dataclass(frozen=True, slots=True)
class BranchRow:
    org_id: int
    name: str
    members_total: int
    participants: int
    minutes: int
    minutes_by_action: dict[str, int]
    joint_minutes: int
    commitments: CommitmentCounts
    last_assessment: ChecklistScore | None
    submitted: bool


@dataclass(frozen=True, slots=True)
class SubtreeReport:
    org_id: int
    org_name: str
    date_from: date
    date_to: date
    today: date
    minutes_by_action: dict[str, int]  # each entry once
    minutes: int
    members_total: int
    participants: int
    commitments: CommitmentCounts
    branches: list[BranchRow]

    @property
    def submitted(self) -> int:
        return sum(1 for b in self.branches if b.submitted)


@dataclass(frozen=True, slots=True)
class PersonReport:
    person_id: int
    name: str
    date_from: date
    date_to: date
    minutes_by_action: dict[str, int]
    minutes: int
    pending_minutes: int
    commitments: CommitmentCounts = field(default_factory=CommitmentCounts)


# ---------------------------------------------------------------------------------------------
# SQL building blocks


def _sum_if(cond: ColumnElement[bool], value: Any = ServiceEntry.minutes) -> Any:
    return func.coalesce(func.sum(case((cond, value), else_=0)), 0)


def _action_columns(actions: list[str], action_col: Any, minutes_col: Any, extra: Any = true()) -> list[Any]:
    """One summed column per pack action (a pivot: one row per group, whatever the actions)."""
    return [
        func.coalesce(func.sum(case((and_(extra, action_col == a), minutes_col), else_=0)), 0).label(f"a{i}")
        for i, a in enumerate(actions)
    ]


def _by_action(actions: list[str], values: Any, total: int) -> dict[str, int]:
    out = {a: int(v) for a, v in zip(actions, values, strict=True) if v}
    rest = total - sum(out.values())
    if rest:
        out[OTHER] = rest
    return out


def _partner() -> ColumnElement[int]:
    return case(
        (Pairing.strong_org_id == ServiceEntry.org_id, Pairing.weak_org_id), else_=Pairing.strong_org_id
    )


def _entry_in(p: Period, statuses: tuple[EntryStatus, ...]) -> list[ColumnElement[bool]]:
    cond = [ServiceEntry.day.between(p.date_from, p.date_to)]
    cond.append(
        ServiceEntry.status == statuses[0] if len(statuses) == 1 else ServiceEntry.status.in_(statuses)
    )
    return cond


def _joint_of_pairing() -> ColumnElement[bool]:
    # Guard against an entry naming a pairing its branch is not part of.
    return or_(Pairing.strong_org_id == ServiceEntry.org_id, Pairing.weak_org_id == ServiceEntry.org_id)


def _commitment_columns(today: date) -> list[Any]:
    C = Commitment
    one = literal(1)
    return [
        func.count(C.id),
        _sum_if(C.status == CommitmentStatus.REPORTED, one),
        _sum_if(C.status == CommitmentStatus.EVALUATED, one),
        _sum_if(overdue_clause(today), one),
    ]


def _commitments_in(p: Period, tz: str) -> list[ColumnElement[bool]]:
    _start, end = _utc_bounds(p, tz)
    C = Commitment
    return [C.status != CommitmentStatus.WITHDRAWN, C.created_at < end, C.deadline >= p.date_from]


def _counts(row: Any) -> CommitmentCounts:
    if row is None:
        return CommitmentCounts()
    return CommitmentCounts(*(int(x or 0) for x in row))


# ---------------------------------------------------------------------------------------------
# Person


async def person_report(
    s: AsyncSession,
    actor: Actor,
    person_id: int,
    date_from: date,
    date_to: date,
    today: date,
    pack: Pack | None = None,
) -> PersonReport:
    person = await require_person_access(s, actor, person_id)
    p = _period(date_from, date_to)
    actions = [a.id for a in (pack or get_pack()).actions]
    E = ServiceEntry
    approved = E.status == EntryStatus.APPROVED
    row = (
        await s.execute(
            select(
                _sum_if(approved),
                _sum_if(E.status == EntryStatus.PENDING),
                *_action_columns(actions, E.action, E.minutes, approved),
            ).where(E.person_id == person_id, *_entry_in(p, (EntryStatus.APPROVED, EntryStatus.PENDING)))
        )
    ).one()
    total = int(row[0])
    tz = await s.scalar(
        select(Org.timezone)
        .join(Membership, Membership.org_id == Org.id)
        .where(Membership.person_id == person_id)
    )
    commitments = (
        await s.execute(
            select(*_commitment_columns(today)).where(
                Commitment.person_id == person_id,
                Commitment.is_branch.is_(False),
                *_commitments_in(p, tz or "Asia/Shanghai"),
            )
        )
    ).one()
    return PersonReport(
        person_id=person.id,
        name=person.name,
        date_from=p.date_from,
        date_to=p.date_to,
        minutes_by_action=_by_action(actions, row[2:], total),
        minutes=total,
        pending_minutes=int(row[1]),
        commitments=_counts(commitments),
    )


# ---------------------------------------------------------------------------------------------
# Branch


async def _require_branch(s: AsyncSession, actor: Actor, org_id: int) -> Org:
    org = await require_manager(s, actor, org_id)
    if org.kind is not OrgKind.BRANCH:
        raise Refused("report.not_branch")
    return org


def _branch_entries(org_id: int, p: Period) -> CompoundSelect[Any]:
    """Entries counting for one branch: its own (approved or pending) and approved joint ones
    from its partners, as (own, status, person_id, action, minutes)."""
    E = ServiceEntry
    own = select(literal(1).label("own"), E.status, E.person_id, E.action, E.minutes).where(
        E.org_id == org_id, *_entry_in(p, (EntryStatus.APPROVED, EntryStatus.PENDING))
    )
    joint = (
        select(literal(0).label("own"), E.status, E.person_id, E.action, E.minutes)
        .select_from(Pairing)
        .join(E, E.pairing_id == Pairing.id)
        .where(
            or_(Pairing.strong_org_id == org_id, Pairing.weak_org_id == org_id),
            E.org_id != org_id,
            _joint_of_pairing(),
            *_entry_in(p, (EntryStatus.APPROVED,)),
        )
    )
    return union_all(own, joint)


async def branch_report(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    date_from: date,
    date_to: date,
    today: date,
    pack: Pack | None = None,
) -> BranchReport:
    org = await _require_branch(s, actor, org_id)
    p = _period(date_from, date_to)
    actions = [a.id for a in (pack or get_pack()).actions]

    # Branch totals: one pass over the branch's entries (and its joint ones).
    u = _branch_entries(org_id, p).subquery()
    approved = u.c.status == EntryStatus.APPROVED
    pending = and_(u.c.own == 1, u.c.status == EntryStatus.PENDING)
    tot = (
        await s.execute(
            select(
                _sum_if(approved, u.c.minutes),
                _sum_if(and_(approved, u.c.own == 0), u.c.minutes),
                _sum_if(pending, literal(1)),
                _sum_if(pending, u.c.minutes),
                func.count(func.distinct(case((and_(approved, u.c.own == 1), u.c.person_id)))),
                *_action_columns(actions, u.c.action, u.c.minutes, approved),
            )
        )
    ).one()
    minutes = int(tot[0])

    # Per member: current members and secretaries, with their own approved service.
    E, M = ServiceEntry, Membership
    member_rows = await s.execute(
        select(
            M.person_id,
            Person.name,
            M.role,
            func.coalesce(func.sum(E.minutes), 0),
            *_action_columns(actions, E.action, E.minutes),
        )
        .join(Person, Person.id == M.person_id)
        .outerjoin(
            E,
            and_(
                E.person_id == M.person_id,
                E.org_id == M.org_id,
                *_entry_in(p, (EntryStatus.APPROVED,)),
            ),
        )
        .where(M.org_id == org_id, M.role.in_(MEMBER_ROLES))
        .group_by(M.person_id, Person.name, M.role)
        .order_by(Person.name, M.person_id)
    )
    C = Commitment
    in_force = _commitments_in(p, org.timezone)
    per_person = {
        pid: _counts(rest)
        for pid, *rest in await s.execute(
            select(C.person_id, *_commitment_columns(today))
            .where(C.org_id == org_id, C.is_branch.is_(False), C.person_id.is_not(None), *in_force)
            .group_by(C.person_id)
        )
    }
    members = [
        MemberRow(
            person_id=pid,
            name=name,
            role=Role(role),
            minutes=int(total),
            minutes_by_action=_by_action(actions, rest, int(total)),
            commitments=per_person.get(pid, CommitmentCounts()),
        )
        for pid, name, role, total, *rest in member_rows
    ]
    commitments = (
        await s.execute(select(*_commitment_columns(today)).where(C.org_id == org_id, *in_force))
    ).one()
    return BranchReport(
        org_id=org.id,
        org_name=org.name,
        date_from=p.date_from,
        date_to=p.date_to,
        today=today,
        minutes_by_action=_by_action(actions, tot[5:], minutes),
        minutes=minutes,
        joint_minutes=int(tot[1]),
        pending_entries=int(tot[2]),
        pending_minutes=int(tot[3]),
        participants=int(tot[4]),
        members_total=len(members),
        members=members,
        commitments=_counts(commitments),
        checklists=await _latest_assessments(s, [org_id], per_checklist=True),
        timezone=org.timezone,
    )


async def _latest_assessments(s: AsyncSession, org_ids: list[int] | Any, *, per_checklist: bool) -> list[Any]:
    """Latest finished assessment per branch (and per checklist if asked), newest wins."""
    A = Assessment
    parts = [A.org_id, A.checklist_id] if per_checklist else [A.org_id]
    rank = (
        func.row_number().over(partition_by=parts, order_by=(A.finished_at.desc(), A.id.desc())).label("rank")
    )
    ranked = (
        select(A.org_id, A.checklist_id, A.period, A.score, A.finished_at, rank)
        .where(A.org_id.in_(org_ids), A.finished_at.is_not(None))
        .subquery()
    )
    rows = await s.execute(
        select(ranked.c.org_id, ranked.c.checklist_id, ranked.c.period, ranked.c.score, ranked.c.finished_at)
        .where(ranked.c.rank == 1)
        .order_by(ranked.c.org_id, ranked.c.checklist_id)
    )
    if per_checklist:
        return [ChecklistScore(c, pe, float(sc or 0), f) for _o, c, pe, sc, f in rows]
    return [(o, ChecklistScore(c, pe, float(sc or 0), f)) for o, c, pe, sc, f in rows]


# ---------------------------------------------------------------------------------------------
# Subtree


async def subtree_report(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    date_from: date,
    date_to: date,
    today: date,
    pack: Pack | None = None,
) -> SubtreeReport:
    root = await require_manager(s, actor, org_id)
    p = _period(date_from, date_to)
    actions = [a.id for a in (pack or get_pack()).actions]
    inside = Org.path.like(root.path + "%")

    branches = (
        await s.execute(
            select(Org.id, Org.name, func.count(Membership.id))
            .outerjoin(Membership, and_(Membership.org_id == Org.id, Membership.role.in_(MEMBER_ROLES)))
            .where(inside, Org.kind == OrgKind.BRANCH)
            .group_by(Org.id, Org.name)
            .order_by(Org.path)
        )
    ).all()

    # Service: each entry credited to its own branch and, when joint, to the partner branch.
    # `origin_inside` tells the subtree's totals whether the entry is already counted as own.
    E = ServiceEntry
    approved = _entry_in(p, (EntryStatus.APPROVED,))
    own = (
        select(
            E.org_id.label("branch_id"),
            literal(1).label("own"),
            literal(1).label("origin_inside"),
            E.person_id,
            E.action,
            E.minutes,
        )
        .join(Org, Org.id == E.org_id)
        .where(inside, *approved)
    )
    origin = aliased(Org)
    joint = (
        select(
            _partner().label("branch_id"),
            literal(0).label("own"),
            case((origin.path.like(root.path + "%"), 1), else_=0).label("origin_inside"),
            E.person_id,
            E.action,
            E.minutes,
        )
        .select_from(Pairing)
        .join(E, E.pairing_id == Pairing.id)
        .join(Org, Org.id == _partner())
        .join(origin, origin.id == E.org_id)
        .where(inside, _joint_of_pairing(), *approved)
    )
    u = union_all(own, joint).subquery()
    counted_once = or_(u.c.own == 1, u.c.origin_inside == 0)
    service = {
        r[0]: r[1:]
        for r in await s.execute(
            select(
                u.c.branch_id,
                func.sum(u.c.minutes),
                _sum_if(u.c.own == 0, u.c.minutes),
                _sum_if(counted_once, u.c.minutes),
                func.count(func.distinct(case((u.c.own == 1, u.c.person_id)))),
                *_action_columns(actions, u.c.action, u.c.minutes),
                *_action_columns(actions, u.c.action, u.c.minutes, counted_once),
            ).group_by(u.c.branch_id)
        )
    }

    C = Commitment
    commitments = {
        r[0]: _counts(r[1:])
        for r in await s.execute(
            select(C.org_id, *_commitment_columns(today))
            .join(Org, Org.id == C.org_id)
            .where(inside, *_commitments_in(p, root.timezone))
            .group_by(C.org_id)
        )
    }
    branch_ids = select(Org.id).where(inside, Org.kind == OrgKind.BRANCH)
    last = dict(await _latest_assessments(s, branch_ids, per_checklist=False))
    submitted = set(
        await s.scalars(
            select(Report.org_id)
            .join(Org, Org.id == Report.org_id)
            .where(inside, Report.period_start == p.date_from, Report.period_end == p.date_to)
        )
    )

    n = len(actions)
    rows: list[BranchRow] = []
    for bid, name, members_total in branches:
        sv = service.get(bid)
        total = int(sv[0]) if sv else 0
        rows.append(
            BranchRow(
                org_id=bid,
                name=name,
                members_total=int(members_total),
                participants=int(sv[3]) if sv else 0,
                minutes=total,
                minutes_by_action=_by_action(actions, sv[4 : 4 + n], total) if sv else {},
                joint_minutes=int(sv[1]) if sv else 0,
                commitments=commitments.get(bid, CommitmentCounts()),
                last_assessment=last.get(bid),
                submitted=bid in submitted,
            )
        )
    # The subtree's totals add up the grouped rows above (a handful per branch); each entry is
    # counted once through the `counted_once` columns.
    once_total = sum(int(sv[2]) for sv in service.values())
    once_by_action = [sum(int(sv[4 + n + i]) for sv in service.values()) for i in range(n)]
    return SubtreeReport(
        org_id=root.id,
        org_name=root.name,
        date_from=p.date_from,
        date_to=p.date_to,
        today=today,
        minutes_by_action=_by_action(actions, once_by_action, once_total),
        minutes=once_total,
        members_total=sum(r.members_total for r in rows),
        participants=sum(r.participants for r in rows),
        commitments=CommitmentCounts(
            made=sum(c.made for c in commitments.values()),
            reported=sum(c.reported for c in commitments.values()),
            evaluated=sum(c.evaluated for c in commitments.values()),
            overdue=sum(c.overdue for c in commitments.values()),
        ),
        branches=rows,
    )


# ---------------------------------------------------------------------------------------------
# Submitting upward


async def submit_report(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    date_from: date,
    date_to: date,
    note: str | None,
    now: datetime,
    pack: Pack | None = None,
) -> Report:
    """报送: the branch's secretary sends the period's summary to the parent committee."""
    data = parse(Submission, note=note)
    org = await require_manager(s, actor, org_id, (Role.SECRETARY,))
    if org.kind is not OrgKind.BRANCH:
        raise Refused("report.not_branch")
    today = now.astimezone(ZoneInfo(org.timezone)).date()
    p = _period(date_from, date_to)
    if p.date_from > today:
        raise Refused("report.future_period")
    report = await branch_report(s, actor, org_id, p.date_from, p.date_to, today, pack)
    # Lock the branch row so two submissions of the same period queue instead of colliding.
    await s.execute(select(Org.id).where(Org.id == org_id).with_for_update())
    row = await s.scalar(
        select(Report).where(
            Report.org_id == org_id, Report.period_start == p.date_from, Report.period_end == p.date_to
        )
    )
    if row is None:
        row = Report(org_id=org_id, period_start=p.date_from, period_end=p.date_to)
        s.add(row)
    row.to_org_id = org.parent_id
    row.summary = report.summary()
    row.note = data.note or None
    row.submitted_by_id = actor.person_id
    row.submitted_at = now
    await s.flush()
    return row


@dataclass(frozen=True, slots=True)
class SubmissionRow:
    org_id: int
    name: str
    submitted_at: datetime | None
    submitted_by: str | None
    note: str | None
    summary: dict[str, Any] | None

    @property
    def submitted(self) -> bool:
        return self.submitted_at is not None


async def submissions(
    s: AsyncSession, actor: Actor, committee_id: int, date_from: date, date_to: date
) -> list[SubmissionRow]:
    """Every branch under the committee, with its submission for exactly this period (or none)."""
    root = await require_manager(s, actor, committee_id, (Role.STAFF, Role.ADMIN))
    p = _period(date_from, date_to)
    rows = await s.execute(
        select(Org.id, Org.name, Report.submitted_at, Person.name, Report.note, Report.summary)
        .outerjoin(
            Report,
            and_(Report.org_id == Org.id, Report.period_start == p.date_from, Report.period_end == p.date_to),
        )
        .outerjoin(Person, Person.id == Report.submitted_by_id)
        .where(Org.path.like(root.path + "%"), Org.kind == OrgKind.BRANCH)
        .order_by(Org.path)
    )
    return [SubmissionRow(*r) for r in rows]
