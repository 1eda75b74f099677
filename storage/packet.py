"""The year's packet of a branch: what its 述职报告 draft, evidence annex and 年检 summary show.

Every figure comes from `storage.reports.branch_report` for the calendar year, the same function
the branch report uses, so the draft, the annex and the report of the same period can never
disagree; this module only adds the concrete records behind those figures (the commitments with
their ratings, the service list, pairings, exemplars, notices, reports submitted upward, the
self-assessments with their items). The records are read in the same scope check as the report
(`branch_report` refuses an actor who does not manage the branch).

`PacketData.figures()` is the flat dictionary the outlines' {placeholders} draw from (content pack
`packet.yaml`); `PacketData.summary()` is what is frozen when the packet is submitted upward.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from content.i18n import period_label, texts
from content.pack import Pack
from storage import reports
from storage.access import Actor
from storage.commitments import overdue_clause
from storage.models import (
    Assessment,
    AssessmentItem,
    Commitment,
    CommitmentStatus,
    Delivery,
    Exemplar,
    Membership,
    Notice,
    Org,
    Pairing,
    Person,
    Report,
    Role,
    ServiceEntry,
    ServiceListItem,
)
from storage.reports import BranchReport

SUBMISSION_KIND = "duty_packet"  # the packet's frozen submissions (storage.sent_packets)
BRANCH_SUFFIXES = ("党支部", "联合党支部", "党总支", "党委")


def fmt_hours(minutes: int) -> str:
    """150 -> "2.5", 100 -> "1.67": hours as people write them (the chat's format too)."""
    return f"{round(minutes / 60, 2):g}"


def year_period(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year, 12, 31)


@dataclass(frozen=True, slots=True)
class CommitmentRecord:
    owner: str | None  # None: the branch's own commitment
    text: str
    deadline: date
    status: str  # a CommitmentStatus value, or "overdue"
    rating: str | None
    evaluation: str | None


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    title: str
    audience: str
    contact: str
    time_limit: str


@dataclass(frozen=True, slots=True)
class PairingRecord:
    partner: str
    strong: bool  # this branch is the strong side (以强带弱)
    started_on: date
    minutes: int  # approved joint service in the year, both directions


@dataclass(frozen=True, slots=True)
class NoticeRecord:
    sent_at: datetime
    text: str
    recipients: int
    read: int


@dataclass(frozen=True, slots=True)
class SubmissionRecord:
    date_from: date
    date_to: date
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class ItemRecord:
    item_id: str
    status: str | None  # an ItemStatus value; None: not answered
    note: str | None


@dataclass(frozen=True, slots=True)
class AssessmentRecord:
    checklist_id: str
    period: str
    score: float
    first_score: float | None  # the year's first finished assessment of this checklist
    items: list[ItemRecord]


@dataclass(frozen=True, slots=True)
class PacketData:
    year: int
    org_id: int
    org_name: str
    organization: str  # the social organization (the branch's name without 党支部)
    parent_name: str | None
    category: str | None
    secretaries: list[str]
    report: BranchReport
    commitments: list[CommitmentRecord]
    services: list[ServiceRecord]
    pairings: list[PairingRecord]
    exemplars: list[str]
    notices: list[NoticeRecord]
    submissions: list[SubmissionRecord]
    assessments: list[AssessmentRecord]

    def rated(self, rating: str) -> int:
        return sum(1 for c in self.commitments if c.rating == rating)

    def figures(self, pack: Pack, locale: str, leader_rating: str | None = None) -> dict[str, Any]:
        """Every value an outline may name, already formatted as the text shows it.
        `leader_rating`: the committee's released 述职评议 rating, in words, if any."""
        r = self.report
        c = r.commitments
        category = pack.category(self.category)
        out: dict[str, Any] = {
            "year": self.year,
            "org": self.org_name,
            "organization": self.organization,
            "parent": self.parent_name or "—",
            "category": category.title.get(locale) if category else "—",
            "focus": category.focus.get(locale) if category else "—",
            "secretary": "、".join(self.secretaries) if locale == "zh" else ", ".join(self.secretaries),
            "date_from": r.date_from.isoformat(),
            "date_to": r.date_to.isoformat(),
            "today": r.today.isoformat(),
            "members": r.members_total,
            "participants": r.participants,
            "hours": fmt_hours(r.minutes),
            "joint_hours": fmt_hours(r.joint_minutes),
            "commitments_made": c.made,
            "commitments_fulfilled": c.fulfilled,
            "commitments_evaluated": c.evaluated,
            "commitments_overdue": c.overdue,
            "services": len(self.services),
            "pairings": len(self.pairings),
            "exemplars": len(self.exemplars),
            "notices": len(self.notices),
            "notice_recipients": sum(n.recipients for n in self.notices),
            "notice_read": sum(n.read for n in self.notices),
            "submissions": len(self.submissions),
            "leader_rating": leader_rating or "—",
        }
        for rating in ("excellent", "good", "fair", "poor"):
            out[f"rated_{rating}"] = self.rated(rating)
        for a in pack.actions:
            out[f"hours_{a.id}"] = fmt_hours(r.minutes_by_action.get(a.id, 0))
        t = texts(locale).plain
        scores = {s.checklist_id: s for s in self.assessments}
        for cl in pack.checklists:
            got = scores.get(cl.id)
            out[f"score_{cl.id}"] = f"{got.score:g}" if got else "—"
            out[f"period_{cl.id}"] = period_label(t, got.period) if got else "—"
            out[f"assessed_{cl.id}"] = (
                t("packet.assessed", score=f"{got.score:g}", period=period_label(t, got.period))
                if got
                else t("packet.not_assessed")
            )
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures (aggregates only), what a submission freezes."""
        # Without the day it was computed: the figures of a submission, not of the day it was run.
        report = {k: v for k, v in self.report.summary().items() if k != "today"}
        return {
            "year": self.year,
            "report": report,
            "commitments_rated": {k: self.rated(k) for k in ("excellent", "good", "fair", "poor")},
            "services": len(self.services),
            "pairings": len(self.pairings),
            "exemplars": len(self.exemplars),
            "notices": len(self.notices),
            "notice_recipients": sum(n.recipients for n in self.notices),
            "notice_read": sum(n.read for n in self.notices),
            "submissions": len(self.submissions),
            "scores": {a.checklist_id: a.score for a in self.assessments},
        }


def organization_name(branch_name: str) -> str:
    for suffix in BRANCH_SUFFIXES:
        if branch_name.endswith(suffix) and len(branch_name) > len(suffix):
            return branch_name.removesuffix(suffix)
    return branch_name


async def branch_packet(
    s: AsyncSession, actor: Actor, org_id: int, year: int, today: date, pack: Pack
) -> PacketData:
    """The packet's data for one branch and calendar year (scope checked by `branch_report`)."""
    date_from, date_to = year_period(year)
    report = await reports.branch_report(s, actor, org_id, date_from, date_to, today, pack)
    org = await s.get(Org, org_id)
    assert org is not None  # branch_report found it
    parent = await s.get(Org, org.parent_id) if org.parent_id else None
    start, end = reports._utc_bounds(reports.Period(date_from=date_from, date_to=date_to), org.timezone)

    secretaries = list(
        await s.scalars(
            select(Person.name)
            .join(Membership, Membership.person_id == Person.id)
            .where(Membership.org_id == org_id, Membership.role == Role.SECRETARY)
            .order_by(Membership.id)
        )
    )

    # The commitments behind the report's commitment figures (storage.reports counts a period's
    # events), with their state today.
    C = Commitment
    overdue = overdue_clause(today)
    commitments = [
        CommitmentRecord(
            None if is_branch else (name or "—"),
            text,
            deadline,
            "overdue" if late else status.value,
            rating,
            evaluation,
        )
        for is_branch, name, text, deadline, status, late, rating, evaluation in await s.execute(
            select(C.is_branch, Person.name, C.text, C.deadline, C.status, overdue, C.rating, C.evaluation)
            .outerjoin(Person, Person.id == C.person_id)
            .where(
                C.org_id == org_id,
                C.status != CommitmentStatus.WITHDRAWN,
                C.created_at < end,
                # The year's commitments, as the report counts their events: made, fulfilled,
                # evaluated or falling due in the year.
                or_(
                    C.created_at >= start,
                    and_(C.reported_at >= start, C.reported_at < end),
                    and_(C.evaluated_at >= start, C.evaluated_at < end),
                    C.deadline.between(date_from, date_to),
                ),
            )
            .order_by(C.deadline, C.id)
        )
    ]

    services = [
        ServiceRecord(*row)
        for row in await s.execute(
            select(
                ServiceListItem.title,
                ServiceListItem.audience,
                ServiceListItem.contact,
                ServiceListItem.time_limit,
            )
            .where(ServiceListItem.org_id == org_id, ServiceListItem.active.is_(True))
            .order_by(ServiceListItem.id)
        )
    ]

    partner = aliased(Org)
    joint = (
        select(func.coalesce(func.sum(ServiceEntry.minutes), 0))
        .where(
            ServiceEntry.pairing_id == Pairing.id,
            ServiceEntry.status == "approved",
            ServiceEntry.day.between(date_from, date_to),
        )
        .scalar_subquery()
    )
    pairings = [
        PairingRecord(name, strong_id == org_id, started, int(minutes))
        for name, strong_id, started, minutes in await s.execute(
            select(partner.name, Pairing.strong_org_id, Pairing.started_on, joint)
            .join(
                partner,
                partner.id
                == func.coalesce(
                    func.nullif(Pairing.strong_org_id, org_id), func.nullif(Pairing.weak_org_id, org_id)
                ),
            )
            .where(
                or_(Pairing.strong_org_id == org_id, Pairing.weak_org_id == org_id),
                Pairing.started_on <= date_to,
            )
            .order_by(Pairing.started_on, Pairing.id)
        )
    ]

    exemplars = list(
        await s.scalars(
            select(Exemplar.title)
            .where(Exemplar.org_id == org_id, Exemplar.year == year)
            .order_by(Exemplar.id)
        )
    )

    D = Delivery
    notices = [
        NoticeRecord(sent_at, text, int(n or 0), int(read or 0))
        for sent_at, text, n, read in await s.execute(
            select(
                Notice.sent_at,
                Notice.text,
                func.count(D.id),
                func.count(D.acknowledged_at),
            )
            .outerjoin(D, and_(D.notice_id == Notice.id, D.kind == "notice"))
            .where(Notice.org_id == org_id, Notice.sent_at >= start, Notice.sent_at < end)
            .group_by(Notice.id, Notice.sent_at, Notice.text)
            .order_by(Notice.sent_at, Notice.id)
        )
    ]

    submissions = [
        SubmissionRecord(*row)
        for row in await s.execute(
            select(Report.period_start, Report.period_end, Report.submitted_at)
            .where(Report.org_id == org_id, Report.period_start >= date_from, Report.period_end <= date_to)
            .order_by(Report.period_start, Report.period_end)
        )
    ]

    assessments: list[AssessmentRecord] = []
    for score in report.checklists:
        row = await s.scalar(
            select(Assessment)
            .where(
                Assessment.org_id == org_id,
                Assessment.checklist_id == score.checklist_id,
                Assessment.finished_at == score.finished_at,
            )
            .order_by(Assessment.id.desc())
            .limit(1)
        )
        first = await s.scalar(
            select(Assessment.score)
            .where(
                Assessment.org_id == org_id,
                Assessment.checklist_id == score.checklist_id,
                Assessment.finished_at >= start,
                Assessment.finished_at < end,
            )
            .order_by(Assessment.finished_at, Assessment.id)
            .limit(1)
        )
        answers = (
            {
                i.item_id: i
                for i in await s.scalars(select(AssessmentItem).where(AssessmentItem.assessment_id == row.id))
            }
            if row is not None
            else {}
        )
        checklist = pack.checklist(score.checklist_id)
        items = [
            ItemRecord(
                item.id,
                answers[item.id].status.value if item.id in answers else None,
                answers[item.id].note if item.id in answers else None,
            )
            for item in (checklist.items if checklist else [])
        ]
        assessments.append(
            AssessmentRecord(
                score.checklist_id,
                score.period,
                score.score,
                float(first) if first is not None else None,
                items,
            )
        )

    return PacketData(
        year=year,
        org_id=org_id,
        org_name=org.name,
        organization=organization_name(org.name),
        parent_name=parent.name if parent else None,
        category=org.category,
        secretaries=secretaries,
        report=report,
        commitments=commitments,
        services=services,
        pairings=pairings,
        exemplars=exemplars,
        notices=notices,
        submissions=submissions,
        assessments=assessments,
    )
