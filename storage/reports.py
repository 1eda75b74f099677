"""Reports for any period [date_from, date_to] (both days included), computed in SQL.

What counts:
- Hours: approved entries only (pending ones are shown apart, never added in). An entry done
  under a pairing (a joint activity) counts for its own branch and for the partner branch.
  A subtree's totals count each entry once, even when both partners lie inside the subtree, so
  the branch rows of a subtree may add up to more than its total.
- Participants: people with approved service in the branch in the period; members: current
  members and secretaries of the branch. A subtree sums its branches (a person in two branches
  is counted in each, like their service).
- Commitments, by the dates of their events, so a period's figures do not move when later
  events happen: made = made in the period (and not withdrawn within it); fulfilled = fulfilment
  reported in the period (still standing: not sent back); evaluated = evaluated in the period;
  overdue = fell due in the period and not fulfilled or withdrawn by its close (or by today,
  while the period runs).
- Checklists: the self-assessment belonging to the period: for each checklist, the finished
  assessment whose period ("2026", "2026-Q4", "2026-11") lies inside the report's, the widest
  one first (a year before a quarter before a month), then the latest. A November report shows
  no quarter's score; a Q4 or year report does.

Submitting (报送) stores a branch's summary (aggregates only, no per-member rows: the committee
needs numbers, not names) for its parent committee (resubmitting the same period replaces it),
and freezes what was sent (storage/submissions.py): the full figures and the workbook's bytes.
Opening a submitted period later shows the frozen report and what changed since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import (
    Date,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from content.pack import Pack
from storage import audit
from storage.access import Actor, require_manager, require_person_access
from storage.db import UTCDateTime
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
DEFAULT_TZ = "Asia/Shanghai"


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


class CommitmentCounts(NamedTuple):
    # Named tuples here and for MemberRow: a branch report builds a thousand of each.
    # Events of the period (see the module's docstring), not states as of today.
    made: int = 0  # made in the period
    reported: int = 0  # fulfilment reported in the period
    evaluated: int = 0  # evaluated in the period
    overdue: int = 0  # fell due in the period, not fulfilled by its close

    @property
    def fulfilled(self) -> int:
        return self.reported


@dataclass(frozen=True, slots=True)
class ChecklistScore:
    checklist_id: str
    period: str
    score: float
    finished_at: datetime


class MemberRow(NamedTuple):
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
            "commitments": self.commitments._asdict(),
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


def report_json(r: BranchReport) -> dict[str, Any]:
    """Everything a branch report holds, JSON-ready: what a submission freezes."""
    return {
        **r.summary(),
        "timezone": r.timezone,
        "members": [
            {
                "person_id": m.person_id,
                "name": m.name,
                "role": m.role.value,
                "minutes_by_action": dict(m.minutes_by_action),
                "minutes": m.minutes,
                "commitments": list(m.commitments),
            }
            for m in r.members
        ],
    }


def report_from_json(d: dict[str, Any]) -> BranchReport:
    """The branch report `report_json` froze, as it was."""
    return BranchReport(
        org_id=d["org_id"],
        org_name=d["org_name"],
        date_from=date.fromisoformat(d["date_from"]),
        date_to=date.fromisoformat(d["date_to"]),
        today=date.fromisoformat(d["today"]),
        minutes_by_action=dict(d["minutes_by_action"]),
        minutes=d["minutes"],
        joint_minutes=d["joint_minutes"],
        pending_entries=d["pending_entries"],
        pending_minutes=d["pending_minutes"],
        participants=d["participants"],
        members_total=d["members_total"],
        members=[
            MemberRow(
                m["person_id"],
                m["name"],
                Role(m["role"]),
                dict(m["minutes_by_action"]),
                m["minutes"],
                CommitmentCounts(*m["commitments"]),
            )
            for m in d["members"]
        ],
        commitments=CommitmentCounts(**d["commitments"]),
        checklists=[
            ChecklistScore(
                c["checklist_id"], c["period"], c["score"], datetime.fromisoformat(c["finished_at"])
            )
            for c in d["checklists"]
        ],
        timezone=d.get("timezone", DEFAULT_TZ),
    )


# The figures a "changed since submission" list compares (not names, dates or the run's day).
COMPARED = (
    "minutes",
    "minutes_by_action",
    "joint_minutes",
    "pending_entries",
    "pending_minutes",
    "participants",
    "members_total",
    "commitments",
)


def compared_figures(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: d[k] for k in COMPARED}
    out["checklists"] = {c["checklist_id"]: c["score"] for c in d["checklists"]}
    return out


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
#
# The statements are built once per list of pack actions, with bound parameters for the org,
# the period and the clock, and reused: building SQLAlchemy expressions costs more than running
# these queries on a branch's month. They run on the session's connection (Core rows, no ORM).

ORG = bindparam("org_id", type_=Integer())
PATH = bindparam("path_prefix", type_=String())
FROM = bindparam("date_from", type_=Date())
TO = bindparam("date_to", type_=Date())
START = bindparam("start", type_=UTCDateTime())  # the period's first instant, in UTC
END = bindparam("end", type_=UTCDateTime())  # the period's end (exclusive), as a UTC instant
# The period's close as far as it has happened: its end, or the end of today while it runs.
CLOSE = bindparam("close", type_=UTCDateTime())
CLOSE_DAY = bindparam("close_day", type_=Date())  # a deadline before this day had passed by CLOSE
PERIODS = bindparam("periods", expanding=True)  # assessment periods lying inside the report's
E, C, M = ServiceEntry, Commitment, Membership


def _sum_if(cond: ColumnElement[bool], value: Any = ServiceEntry.minutes) -> Any:
    return func.coalesce(func.sum(case((cond, value), else_=0)), 0)


def _action_columns(
    actions: Sequence[str], action_col: Any, minutes_col: Any, extra: Any = None
) -> list[Any]:
    """One summed column per pack action (a pivot: one row per group, whatever the actions)."""
    return [
        _sum_if(action_col == a if extra is None else and_(extra, action_col == a), minutes_col)
        for a in actions
    ]


def _by_action(actions: Sequence[str], values: Sequence[int], total: int) -> dict[str, int]:
    """Minutes per action (zeros left out); what the listed actions do not cover is OTHER."""
    out = {a: int(v) for a, v in zip(actions, values, strict=True) if v}
    rest = int(total) - sum(out.values())
    if rest:
        out[OTHER] = rest
    return out


def _partner() -> ColumnElement[int]:
    """The other branch of the entry's pairing; NULL when the entry's own branch is not in it
    (so joining on it also drops such entries, with no OR that would steer the planner away
    from the pairing index)."""
    return case(
        (Pairing.strong_org_id == E.org_id, Pairing.weak_org_id),
        (Pairing.weak_org_id == E.org_id, Pairing.strong_org_id),
    )


def _in_period(*statuses: EntryStatus) -> list[ColumnElement[bool]]:
    status = E.status == statuses[0] if len(statuses) == 1 else E.status.in_(statuses)
    return [E.day.between(FROM, TO), status]


def _joint() -> ColumnElement[bool]:
    # Lets both planners use the partial index on pairing_id for the join.
    return E.pairing_id.is_not(None)


def _not_before(col: Any, instant: Any) -> ColumnElement[bool]:
    """The event had not happened by `instant` (never, or at or after it)."""
    return or_(col.is_(None), col >= instant)


def _commitment_columns() -> list[Any]:
    one = literal(1)
    standing = C.status.in_((CommitmentStatus.REPORTED, CommitmentStatus.EVALUATED))
    return [
        _sum_if(and_(C.created_at >= START, C.created_at < END, _not_before(C.withdrawn_at, END)), one),
        # A fulfilment sent back has its reported_at cleared: it no longer counts anywhere.
        _sum_if(and_(standing, C.reported_at >= START, C.reported_at < END), one),
        # return_for_more_work also stamps evaluated_at: only a real evaluation counts.
        _sum_if(
            and_(C.status == CommitmentStatus.EVALUATED, C.evaluated_at >= START, C.evaluated_at < END), one
        ),
        _sum_if(
            and_(
                C.deadline >= FROM,
                C.deadline < CLOSE_DAY,
                C.created_at < CLOSE,
                _not_before(C.reported_at, CLOSE),
                _not_before(C.withdrawn_at, CLOSE),
            ),
            one,
        ),
    ]


def _commitments_in() -> list[ColumnElement[bool]]:
    # Every event counted needs the commitment made before the period's end.
    return [C.created_at < END]


def _counts(row: Any) -> CommitmentCounts:
    if row is None:
        return CommitmentCounts()
    return CommitmentCounts(*(int(x or 0) for x in row))


def _params(p: Period, tz: str, today: date, **more: Any) -> dict[str, Any]:
    start, end = _utc_bounds(p, tz)
    close_day = min(p.date_to + timedelta(days=1), today)
    close = min(end, _utc_bounds(Period(date_from=today, date_to=today), tz)[1])
    return {
        "date_from": p.date_from,
        "date_to": p.date_to,
        "start": start,
        "end": end,
        "close": close,
        "close_day": close_day,
        "periods": list(periods_within(p.date_from, p.date_to, today)),
        **more,
    }


def periods_within(date_from: date, date_to: date, today: date | None = None) -> dict[str, tuple[int, date]]:
    """Assessment periods ("2026", "2026-Q4", "2026-11") belonging to [date_from, date_to],
    each with its rank (year 3, quarter 2, month 1) and first day: those lying wholly inside it,
    and, while the report runs up to `today`, those begun inside it and still running (this
    quarter's self-assessment belongs to "this quarter so far")."""
    running = today is not None and date_to >= today

    def fits(first: date, last: date) -> bool:
        return date_from <= first and (last <= date_to or (running and first <= date_to))

    out: dict[str, tuple[int, date]] = {}
    for year in range(date_from.year, date_to.year + 1):
        if fits(date(year, 1, 1), date(year, 12, 31)):
            out[str(year)] = (3, date(year, 1, 1))
        for q in range(1, 5):
            first = date(year, 3 * q - 2, 1)
            last = date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1) - timedelta(days=1)
            if fits(first, last):
                out[f"{year}-Q{q}"] = (2, first)
        for m in range(1, 13):
            first = date(year, m, 1)
            last = date(year + (m == 12), 1 if m == 12 else m + 1, 1) - timedelta(days=1)
            if fits(first, last):
                out[f"{year}-{m:02d}"] = (1, first)
    return out


def _assessments(orgs: Any) -> Select[Any]:
    """Finished assessments of the orgs whose period lies inside the report's."""
    A = Assessment
    return (
        select(A.org_id, A.checklist_id, A.period, A.score, A.finished_at, A.id)
        .where(orgs, A.finished_at.is_not(None), A.period.in_(PERIODS))
        .order_by(A.org_id, A.checklist_id)
    )


def _belonging(
    rows: Sequence[Any], p: Period, today: date, per_checklist: bool
) -> dict[tuple[int, str], ChecklistScore]:
    """Per org (and checklist): the widest assessment belonging to the period, then the latest."""
    ranks = periods_within(p.date_from, p.date_to, today)
    best: dict[tuple[int, str], tuple[Any, ...]] = {}
    for org_id, checklist_id, period, score, finished_at, row_id in rows:
        key = (org_id, checklist_id if per_checklist else "")
        order = (*ranks[period], finished_at, row_id)
        if key not in best or order > best[key][0]:
            best[key] = (order, ChecklistScore(checklist_id, period, float(score or 0), finished_at))
    return {k: v[1] for k, v in sorted(best.items())}


# ---------------------------------------------------------------------------------------------
# Person


@lru_cache(maxsize=8)
def _person_statements(actions: tuple[str, ...]) -> tuple[Select[Any], Select[Any]]:
    person = bindparam("person_id", type_=Integer())
    approved = E.status == EntryStatus.APPROVED
    service = select(
        _sum_if(approved),
        _sum_if(E.status == EntryStatus.PENDING),
        *_action_columns(actions, E.action, E.minutes, approved),
    ).where(E.person_id == person, *_in_period(EntryStatus.APPROVED, EntryStatus.PENDING))
    commitments = select(*_commitment_columns()).where(
        C.person_id == person, C.is_branch.is_(False), *_commitments_in()
    )
    return service, commitments


async def person_report(
    s: AsyncSession,
    actor: Actor,
    person_id: int,
    date_from: date,
    date_to: date,
    today: date,
    pack: Pack,
) -> PersonReport:
    person = await require_person_access(s, actor, person_id)
    p = _period(date_from, date_to)
    actions = tuple(a.id for a in pack.actions)
    service, commitments = _person_statements(actions)
    tz = await s.scalar(
        select(Org.timezone)
        .join(Membership, Membership.org_id == Org.id)
        .where(Membership.person_id == person_id)
        .limit(1)
    )
    params = _params(p, tz or DEFAULT_TZ, today, person_id=person_id)
    if person_id != actor.person_id and not actor.is_admin:
        # Only what the viewer manages: a secretary sees this person's hours in their branch,
        # not those the person logged in another.
        scoped = select(Org.id).where(actor.scope_filter(Org.path))
        service = service.where(E.org_id.in_(scoped))
        commitments = commitments.where(C.org_id.in_(scoped))
    conn = await s.connection()
    row = (await conn.execute(service, params)).one()
    total = int(row[0])
    return PersonReport(
        person_id=person.id,
        name=person.name,
        date_from=p.date_from,
        date_to=p.date_to,
        minutes_by_action=_by_action(actions, row[2:], total),
        minutes=total,
        pending_minutes=int(row[1]),
        commitments=_counts((await conn.execute(commitments, params)).one()),
    )


# ---------------------------------------------------------------------------------------------
# Branch


async def _require_branch(s: AsyncSession, actor: Actor, org_id: int) -> Org:
    org = await require_manager(s, actor, org_id)
    if org.kind is not OrgKind.BRANCH:
        raise Refused("report.not_branch")
    return org


@lru_cache(maxsize=8)
def _branch_statements(actions: tuple[str, ...]) -> tuple[Select[Any], Select[Any], Select[Any]]:
    # Entries counting for the branch: its own (approved or pending), and approved joint ones
    # of its partners, as (own, status, person_id, action, minutes).
    own = select(literal(1).label("own"), E.status, E.person_id, E.action, E.minutes).where(
        E.org_id == ORG, *_in_period(EntryStatus.APPROVED, EntryStatus.PENDING)
    )
    joint = (
        select(literal(0).label("own"), E.status, E.person_id, E.action, E.minutes)
        .select_from(Pairing)
        .join(E, E.pairing_id == Pairing.id)
        .where(
            or_(Pairing.strong_org_id == ORG, Pairing.weak_org_id == ORG),
            _partner() == ORG,
            _joint(),
            *_in_period(EntryStatus.APPROVED),
        )
    )
    u = union_all(own, joint).subquery()
    approved = u.c.status == EntryStatus.APPROVED
    pending = and_(u.c.own == 1, u.c.status == EntryStatus.PENDING)
    in_force = select(*_commitment_columns()).where(C.org_id == ORG, *_commitments_in()).subquery()
    totals = select(
        _sum_if(approved, u.c.minutes),
        _sum_if(and_(approved, u.c.own == 0), u.c.minutes),
        _sum_if(pending, literal(1)),
        _sum_if(pending, u.c.minutes),
        func.count(func.distinct(case((and_(approved, u.c.own == 1), u.c.person_id)))),
        *(func.max(c) for c in in_force.c),  # the branch's commitments: one row, joined
        *_action_columns(actions, u.c.action, u.c.minutes, approved),
    ).select_from(in_force.outerjoin(u, true()))  # in_force is one row, entries or not

    # Per member: current members and secretaries, their own approved service and commitments.
    personal = (
        select(C.person_id.label("person_id"), *_commitment_columns())
        .where(C.org_id == ORG, C.is_branch.is_(False), C.person_id.is_not(None), *_commitments_in())
        .group_by(C.person_id)
        .subquery()
    )
    pc = list(personal.c)[1:]
    # The branch's approved service of the period per person: one range of the (org_id, day, ...)
    # covering index, grouped once, then joined to the roster (not an index probe per member).
    served = (
        select(
            E.person_id.label("person_id"),
            func.sum(E.minutes).label("minutes"),
            *(c.label(f"a{i}") for i, c in enumerate(_action_columns(actions, E.action, E.minutes))),
        )
        .where(E.org_id == ORG, *_in_period(EntryStatus.APPROVED))
        .group_by(E.person_id)
        .subquery()
    )
    members = (
        select(
            M.person_id,
            Person.name,
            M.role,
            func.coalesce(served.c.minutes, 0),
            *(func.coalesce(c, 0) for c in pc),
            *(func.coalesce(served.c[f"a{i}"], 0) for i in range(len(actions))),
        )
        .join(Person, Person.id == M.person_id)
        .outerjoin(personal, personal.c.person_id == M.person_id)
        .outerjoin(served, served.c.person_id == M.person_id)
        .where(M.org_id == ORG, M.role.in_(MEMBER_ROLES))
        .order_by(Person.name, M.person_id)
    )
    checklists = _assessments(Assessment.org_id == ORG)
    return totals, members, checklists


async def branch_report(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    date_from: date,
    date_to: date,
    today: date,
    pack: Pack,
) -> BranchReport:
    org = await _require_branch(s, actor, org_id)
    p = _period(date_from, date_to)
    actions = tuple(a.id for a in pack.actions)
    totals, members_q, checklists_q = _branch_statements(actions)
    params = _params(p, org.timezone, today, org_id=org_id)
    conn = await s.connection()

    tot = (await conn.execute(totals, params)).one()
    minutes = int(tot[0])
    # A thousand members a branch: rows are unpacked as they come (integers already, the role
    # already a Role), with no per-value conversions.
    members = [
        MemberRow(pid, name, role, _by_action(actions, rest, total), total, CommitmentCounts(cm, cr, ce, co))
        for pid, name, role, total, cm, cr, ce, co, *rest in (await conn.execute(members_q, params)).all()
    ]
    checklists = list(_belonging((await conn.execute(checklists_q, params)).all(), p, today, True).values())
    return BranchReport(
        org_id=org.id,
        org_name=org.name,
        date_from=p.date_from,
        date_to=p.date_to,
        today=today,
        minutes_by_action=_by_action(actions, tot[9:], minutes),
        minutes=minutes,
        joint_minutes=int(tot[1]),
        pending_entries=int(tot[2]),
        pending_minutes=int(tot[3]),
        participants=int(tot[4]),
        members_total=len(members),
        members=members,
        commitments=_counts(tot[5:9]),
        checklists=checklists,
        timezone=org.timezone,
    )


# ---------------------------------------------------------------------------------------------
# Subtree


@lru_cache(maxsize=8)
def _subtree_statements(actions: tuple[str, ...]) -> tuple[Select[Any], ...]:
    inside = Org.path.like(PATH)
    branches = (
        select(Org.id, Org.name, func.count(M.id))
        .outerjoin(M, and_(M.org_id == Org.id, M.role.in_(MEMBER_ROLES)))
        .where(inside, Org.kind == OrgKind.BRANCH)
        .group_by(Org.id, Org.name, Org.path)
        .order_by(Org.path)
    )
    # Service in two passes: each branch's own entries (grouped in index order, no union to
    # sort), and the joint ones credited to the partner branch (few, by the partial index).
    approved = _in_period(EntryStatus.APPROVED)
    own = (
        select(
            E.org_id,
            func.sum(E.minutes),
            func.count(func.distinct(E.person_id)),
            *_action_columns(actions, E.action, E.minutes),
        )
        .join(Org, Org.id == E.org_id)
        .where(inside, *approved)
        .group_by(E.org_id)
    )
    partner = _partner()
    # Whether the entry's own branch is inside too: then the subtree's totals have it already.
    # (A subquery, not a join on the entry's org: that join would lead SQLite to read every
    # entry of the paired branches instead of only the joint ones.)
    origin_inside = case((E.org_id.in_(select(Org.id).where(inside)), 1), else_=0)
    joint = (
        select(
            partner,
            origin_inside,
            func.sum(E.minutes),
            *_action_columns(actions, E.action, E.minutes),
        )
        .select_from(Pairing)
        .join(E, E.pairing_id == Pairing.id)
        .join(Org, Org.id == partner)
        .where(inside, _joint(), *approved)
        .group_by(partner, origin_inside)
    )
    commitments = (
        select(C.org_id, *_commitment_columns())
        .join(Org, Org.id == C.org_id)
        .where(inside, *_commitments_in())
        .group_by(C.org_id)
    )
    last = _assessments(Assessment.org_id.in_(select(Org.id).where(inside, Org.kind == OrgKind.BRANCH)))
    submitted = (
        select(Report.org_id)
        .join(Org, Org.id == Report.org_id)
        .where(inside, Report.period_start == FROM, Report.period_end == TO)
    )
    return branches, own, joint, commitments, last, submitted


def _add(a: Sequence[int], b: Sequence[int]) -> list[int]:
    return [int(x) + int(y) for x, y in zip(a, b, strict=True)]


async def subtree_report(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    date_from: date,
    date_to: date,
    today: date,
    pack: Pack,
) -> SubtreeReport:
    root = await require_manager(s, actor, org_id)
    p = _period(date_from, date_to)
    actions = tuple(a.id for a in pack.actions)
    branches_q, own_q, joint_q, commitments_q, last_q, submitted_q = _subtree_statements(actions)
    params = _params(p, root.timezone, today, path_prefix=root.path + "%")
    conn = await s.connection()

    branches = (await conn.execute(branches_q, params)).all()
    # org -> [minutes, participants, by action...]
    own = {r[0]: r[1:] for r in (await conn.execute(own_q, params)).all()}
    n = len(actions)
    zero = [0] * (1 + n)
    joint: dict[int, list[int]] = {}  # org -> [minutes, by action...], all joint credit
    from_outside = zero  # joint credit from branches outside the subtree: [minutes, by action...]
    for bid, origin_inside, *values in (await conn.execute(joint_q, params)).all():
        joint[bid] = _add(joint.get(bid, zero), values)
        if not origin_inside:
            from_outside = _add(from_outside, values)
    commitments = {r[0]: _counts(r[1:]) for r in await conn.execute(commitments_q, params)}
    last = {
        o: sc
        for (o, _c), sc in _belonging((await conn.execute(last_q, params)).all(), p, today, False).items()
    }
    submitted = set((await conn.execute(submitted_q, params)).scalars())

    rows: list[BranchRow] = []
    for bid, name, members_total in branches:
        mine = own.get(bid)
        own_values = [mine[0], *mine[2:]] if mine else zero
        values = _add(own_values, joint.get(bid, zero))
        rows.append(
            BranchRow(
                org_id=bid,
                name=name,
                members_total=int(members_total),
                participants=int(mine[1]) if mine else 0,
                minutes=values[0],
                minutes_by_action=_by_action(actions, values[1:], values[0]),
                joint_minutes=joint.get(bid, zero)[0],
                commitments=commitments.get(bid, CommitmentCounts()),
                last_assessment=last.get(bid),
                submitted=bid in submitted,
            )
        )
    # The subtree's totals: every own entry once, plus joint ones whose own branch is outside.
    once = from_outside
    for mine in own.values():
        once = _add(once, [mine[0], *mine[2:]])
    return SubtreeReport(
        org_id=root.id,
        org_name=root.name,
        date_from=p.date_from,
        date_to=p.date_to,
        today=today,
        minutes_by_action=_by_action(actions, once[1:], once[0]),
        minutes=once[0],
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
    pack: Pack,
) -> Report:
    """报送: the branch's secretary sends the period's summary to the parent committee."""
    return (await submit_branch(s, actor, org_id, date_from, date_to, note, now, pack))[0]


async def submit_branch(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    date_from: date,
    date_to: date,
    note: str | None,
    now: datetime,
    pack: Pack,
) -> tuple[Report, BranchReport]:
    """`submit_report`, also returning the report it sent (storage/sent_reports.py freezes it)."""
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
    await audit.record(
        s,
        actor,
        "report.submit",
        org_id=org_id,
        detail={"report_id": row.id, "from": p.date_from.isoformat(), "to": p.date_to.isoformat()},
        now=now,
    )
    return row, report


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
