"""Aggregates for the admin web's dashboard: approved hours per month and each branch's latest
checklist scores, over an org's subtree as far as the actor manages it. All of it in SQL.

(Participation by branch comes from `storage.reports.subtree_report`.) Commitments by status are
a state as of today (`commitment_states`), unlike a report's figures, which count the events of
its period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Subquery, case, extract, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.access import Actor, require_manager
from storage.models import (
    Assessment,
    Commitment,
    CommitmentStatus,
    EntryStatus,
    Org,
    OrgKind,
    ServiceEntry,
)

MAX_MONTHS = 36


@dataclass(frozen=True, slots=True)
class MonthTotal:
    year: int
    month: int
    minutes: int
    entries: int

    @property
    def label(self) -> str:
        return f"{self.year}-{self.month:02d}"

    @property
    def hours(self) -> float:
        return round(self.minutes / 60, 1)


@dataclass(frozen=True, slots=True)
class BranchScore:
    org_id: int
    org_name: str
    checklist_id: str
    period: str
    score: float
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class CommitmentStates:
    """Commitments in force since `date_from` (deadline not before it, not withdrawn), by their
    state today."""

    in_progress: int = 0
    overdue: int = 0
    reported: int = 0
    evaluated: int = 0

    @property
    def total(self) -> int:
        return self.in_progress + self.overdue + self.reported + self.evaluated


async def commitment_states(
    s: AsyncSession, actor: Actor, org_id: int, *, date_from: date, today: date
) -> CommitmentStates:
    root = await require_manager(s, actor, org_id)
    C = Commitment
    made = C.status == CommitmentStatus.MADE
    row = (
        await s.execute(
            select(
                func.count(case((made & (C.deadline >= today), 1))),
                func.count(case((made & (C.deadline < today), 1))),
                func.count(case((C.status == CommitmentStatus.REPORTED, 1))),
                func.count(case((C.status == CommitmentStatus.EVALUATED, 1))),
            )
            .join(Org, Org.id == C.org_id)
            .where(
                Org.path.like(root.path + "%"),
                C.status != CommitmentStatus.WITHDRAWN,
                C.deadline >= date_from,
            )
        )
    ).one()
    return CommitmentStates(*(int(x or 0) for x in row))


def _month_back(d: date, months: int) -> date:
    index = d.year * 12 + (d.month - 1) - months
    return date(index // 12, index % 12 + 1, 1)


async def monthly_minutes(
    s: AsyncSession, actor: Actor, org_id: int, *, today: date, months: int = 12
) -> list[MonthTotal]:
    """Approved minutes per calendar month in the org's subtree, the `months` months up to
    today's, oldest first; months without service are there with zero."""
    root = await require_manager(s, actor, org_id)
    months = max(1, min(months, MAX_MONTHS))
    first = _month_back(today, months - 1)
    E = ServiceEntry
    year, month = extract("year", E.day), extract("month", E.day)
    rows = await s.execute(
        select(year, month, func.sum(E.minutes), func.count(E.id))
        .join(Org, Org.id == E.org_id)
        .where(
            Org.path.like(root.path + "%"),
            actor.scope_filter(Org.path),
            E.status == EntryStatus.APPROVED,
            E.day >= first,
            E.day <= today,
        )
        .group_by(year, month)
    )
    found = {(int(y), int(m)): (int(mins or 0), int(n)) for y, m, mins, n in rows}
    out = []
    for i in range(months):
        d = _month_back(today, months - 1 - i)
        mins, n = found.get((d.year, d.month), (0, 0))
        out.append(MonthTotal(d.year, d.month, mins, n))
    return out


@dataclass(frozen=True, slots=True)
class ChecklistAverage:
    checklist_id: str
    average: float
    branches: int  # branches with a finished assessment of it


def _latest_ranked(actor: Actor, root: Org) -> Subquery:
    """Finished assessments of the subtree's branches, rank 1 = each branch's latest per checklist."""
    A = Assessment
    rank = (
        func.row_number()
        .over(partition_by=(A.org_id, A.checklist_id), order_by=(A.finished_at.desc(), A.id.desc()))
        .label("rank")
    )
    return (
        select(A.org_id, A.checklist_id, A.period, A.score, A.finished_at, rank)
        .join(Org, Org.id == A.org_id)
        .where(
            Org.path.like(root.path + "%"),
            actor.scope_filter(Org.path),
            Org.kind == OrgKind.BRANCH,
            A.finished_at.is_not(None),
        )
        .subquery()
    )


async def latest_checklist_scores(s: AsyncSession, actor: Actor, org_id: int) -> list[BranchScore]:
    """Each branch's latest finished assessment of each checklist, in the org's subtree."""
    root = await require_manager(s, actor, org_id)
    ranked = _latest_ranked(actor, root)
    rows = await s.execute(
        select(
            ranked.c.org_id,
            Org.name,
            ranked.c.checklist_id,
            ranked.c.period,
            ranked.c.score,
            ranked.c.finished_at,
        )
        .join(Org, Org.id == ranked.c.org_id)
        .where(ranked.c.rank == 1)
        .order_by(Org.path, ranked.c.checklist_id)
    )
    return [BranchScore(o, n, c, p, float(sc or 0), f) for o, n, c, p, sc, f in rows]


async def checklist_averages(s: AsyncSession, actor: Actor, org_id: int) -> list[ChecklistAverage]:
    """Per checklist, the average of the branches' latest scores and how many branches have one."""
    root = await require_manager(s, actor, org_id)
    ranked = _latest_ranked(actor, root)
    rows = await s.execute(
        select(ranked.c.checklist_id, func.avg(ranked.c.score), func.count())
        .where(ranked.c.rank == 1)
        .group_by(ranked.c.checklist_id)
        .order_by(ranked.c.checklist_id)
    )
    return [ChecklistAverage(c, round(float(avg or 0), 1), int(n)) for c, avg, n in rows]
