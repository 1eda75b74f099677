"""述职评议: the committee's review of its branches' leaders for a year.

The sheet puts each branch of a committee's subtree side by side with the figures of its year's
packet (from `reports.subtree_report` for the calendar year: the same store functions as the
branch report, so a branch's row equals its own packet), its latest self-assessment score per
checklist, whether its packet was submitted upward, and the committee's rating of its leader.

Ratings (好 / 较好 / 一般 / 差) with an optional comment are recorded by committee staff (or an
admin) above the branch, one per branch and year; recording again replaces it. The secretary
sees the rating only after the committee releases the year's ratings: until then the committee
can still weigh one branch against the others. Every rating and release writes an audit row
(ids and the rating value only; the comment is free text and stays out of the log).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from content.pack import Pack
from storage import audit, reports
from storage.access import Actor, require_manager
from storage.dashboard import latest_checklist_scores
from storage.errors import Refused
from storage.models import (
    LeaderReview,
    Membership,
    Org,
    OrgKind,
    Person,
    Role,
    ServiceListItem,
    Submission,
)
from storage.packet import SUBMISSION_KIND
from storage.service_log import clean_text
from storage.validation import parse

RATINGS = ("good", "fairly_good", "average", "poor")  # 好 / 较好 / 一般 / 差
REVIEWERS = (Role.STAFF, Role.ADMIN)
MIN_YEAR, MAX_YEAR = 2015, 2100


class NewRating(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True, extra="forbid")

    rating: str = Field(
        pattern="^(" + "|".join(RATINGS) + ")$", json_schema_extra={"error_key": "review.bad_rating"}
    )
    comment: str | None = Field(
        default=None, max_length=500, json_schema_extra={"error_key": "review.bad_comment"}
    )

    _clean = field_validator("comment", mode="before")(clean_text)


def check_year(year: int) -> int:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise Refused("review.bad_year", year=year)
    return year


@dataclass(frozen=True, slots=True)
class SheetRow:
    org_id: int
    name: str
    secretaries: list[str]
    figures: reports.BranchRow
    services: int
    scores: dict[str, tuple[str, float]]  # checklist id -> (period, latest score)
    packet_submitted: datetime | None
    rating: str | None
    comment: str | None
    released: bool


@dataclass(frozen=True, slots=True)
class ReviewSheet:
    org_id: int
    org_name: str
    year: int
    rows: list[SheetRow]

    @property
    def rated(self) -> int:
        return sum(1 for r in self.rows if r.rating)


async def review_sheet(
    s: AsyncSession,
    actor: Actor,
    committee_id: int,
    year: int,
    today: date,
    pack: Pack,
) -> ReviewSheet:
    """The 评议 sheet of a committee's subtree for a year."""
    root = await require_manager(s, actor, committee_id, REVIEWERS)
    if root.kind is OrgKind.BRANCH:
        raise Refused("review.not_committee")
    check_year(year)
    sub = await reports.subtree_report(
        s, actor, committee_id, date(year, 1, 1), date(year, 12, 31), today, pack
    )
    ids = [b.org_id for b in sub.branches]
    scores: dict[int, dict[str, tuple[str, float]]] = {}
    for sc in await latest_checklist_scores(s, actor, committee_id):
        scores.setdefault(sc.org_id, {})[sc.checklist_id] = (sc.period, sc.score)
    secretaries: dict[int, list[str]] = {}
    for org_id, name in await s.execute(
        select(Membership.org_id, Person.name)
        .join(Person, Person.id == Membership.person_id)
        .where(Membership.org_id.in_(ids), Membership.role == Role.SECRETARY)
        .order_by(Membership.id)
    ):
        secretaries.setdefault(org_id, []).append(name)
    services = dict(
        (
            await s.execute(
                select(ServiceListItem.org_id, func.count())
                .where(ServiceListItem.org_id.in_(ids), ServiceListItem.active.is_(True))
                .group_by(ServiceListItem.org_id)
            )
        ).all()
    )
    reviews = {
        r.org_id: r
        for r in await s.scalars(
            select(LeaderReview).where(LeaderReview.org_id.in_(ids), LeaderReview.year == year)
        )
    }
    # When each branch's packet for the year was last submitted (frozen, storage.sent_packets).
    submitted = dict(
        (
            await s.execute(
                select(Submission.org_id, func.max(Submission.submitted_at))
                .where(
                    Submission.kind == SUBMISSION_KIND,
                    Submission.org_id.in_(ids),
                    Submission.period_start == date(year, 1, 1),
                    Submission.period_end == date(year, 12, 31),
                )
                .group_by(Submission.org_id)
            )
        ).all()
    )
    rows = []
    for b in sub.branches:
        review = reviews.get(b.org_id)
        rows.append(
            SheetRow(
                org_id=b.org_id,
                name=b.name,
                secretaries=secretaries.get(b.org_id, []),
                figures=b,
                services=int(services.get(b.org_id, 0)),
                scores=scores.get(b.org_id, {}),
                packet_submitted=submitted.get(b.org_id),
                rating=review.rating if review else None,
                comment=review.comment if review else None,
                released=bool(review and review.released_at),
            )
        )
    return ReviewSheet(root.id, root.name, year, rows)


async def rate_leader(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    year: int,
    rating: str,
    comment: str | None,
    *,
    now: datetime,
) -> LeaderReview:
    """Record (or replace) the committee's rating of a branch leader for a year."""
    data = parse(NewRating, rating=rating, comment=comment)
    org = await require_manager(s, actor, org_id, REVIEWERS)
    if org.kind is not OrgKind.BRANCH:
        raise Refused("review.not_branch")
    check_year(year)
    if any(g.org_id == org_id for g in actor.grants):
        raise Refused("review.own_branch")  # nobody reviews their own branch's leader
    row = await s.scalar(select(LeaderReview).where(LeaderReview.org_id == org_id, LeaderReview.year == year))
    previous = row.rating if row else None
    if row is None:
        row = LeaderReview(org_id=org_id, year=year)
        s.add(row)
    row.rating = data.rating
    row.comment = data.comment or None
    row.rated_by_id = actor.person_id if actor.person_id != audit.SYSTEM_PERSON_ID else None
    row.rated_at = now
    await s.flush()
    await audit.record(
        s,
        actor,
        "leader_review.rate",
        org_id=org_id,
        detail={"review_id": row.id, "year": year, "rating": data.rating, "previous": previous},
        now=now,
    )
    return row


async def release_reviews(
    s: AsyncSession, actor: Actor, committee_id: int, year: int, *, now: datetime
) -> int:
    """Let the secretaries of the subtree see the year's ratings recorded so far; returns how many."""
    root = await require_manager(s, actor, committee_id, REVIEWERS)
    check_year(year)
    rows = list(
        await s.scalars(
            select(LeaderReview)
            .join(Org, Org.id == LeaderReview.org_id)
            .where(
                Org.path.like(root.path + "%"),
                LeaderReview.year == year,
                LeaderReview.released_at.is_(None),
            )
        )
    )
    for row in rows:
        row.released_at = now
    await s.flush()
    await audit.record(
        s,
        actor,
        "leader_review.release",
        org_id=committee_id,
        detail={"year": year, "count": len(rows), "review_ids": [r.id for r in rows]},
        now=now,
    )
    return len(rows)


async def released_review(s: AsyncSession, actor: Actor, org_id: int, year: int) -> LeaderReview | None:
    """The branch's rating for the year, once released (the branch's managers see it then)."""
    await require_manager(s, actor, org_id)
    return await s.scalar(
        select(LeaderReview).where(
            LeaderReview.org_id == org_id, LeaderReview.year == year, LeaderReview.released_at.is_not(None)
        )
    )
