"""Self-assessment against the pack's checklists (六有, 五化, 六抓六服务).

A branch's secretary (or staff above) starts an assessment for a period ("2026", "2026-Q4",
"2026-11"), answers each item met / partly / not yet with an optional note, and finishes it:
the score is 0..100 over all of the checklist's items (met 1, partly 0.5, not yet 0). It cannot
be finished with an item unanswered. Item ids come from the pack, never from code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from content.pack import Checklist, Pack
from storage import audit
from storage.access import Actor, require_manager
from storage.errors import Invalid, NotFound, Refused
from storage.models import Assessment, AssessmentItem, ItemStatus, Org, OrgKind
from storage.service_log import clean_text
from storage.validation import parse

WEIGHTS = {ItemStatus.MET: 1.0, ItemStatus.PARTLY: 0.5, ItemStatus.NOT_YET: 0.0}
_PERIOD = re.compile(r"^(?P<y>\d{4})(?:-(?:Q(?P<q>[1-4])|(?P<m>0[1-9]|1[0-2])))?$")


def period_start(period: str) -> date:
    """The first day of a period "2026", "2026-Q4" or "2026-11"; `Invalid` for anything else."""
    m = _PERIOD.match(period or "")
    if m is None or not 2000 <= int(m["y"]) <= 2100:
        raise Invalid("checklist.bad_period", field="period")
    month = 1
    if m["q"]:
        month = 3 * (int(m["q"]) - 1) + 1
    elif m["m"]:
        month = int(m["m"])
    return date(int(m["y"]), month, 1)


class ItemAnswer(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True, extra="forbid")

    status: ItemStatus = Field(json_schema_extra={"error_key": "checklist.bad_status"})
    note: str | None = Field(
        default=None, max_length=500, json_schema_extra={"error_key": "checklist.bad_note"}
    )

    _clean = field_validator("note", mode="before")(clean_text)


def score(statuses: list[ItemStatus], total: int) -> float:
    """0..100, one decimal: the share of `total` items met (partly counts half)."""
    return round(100.0 * sum(WEIGHTS[st] for st in statuses) / total, 1) if total else 0.0


def _checklist(pack: Pack, checklist_id: str) -> Checklist:
    cl = pack.checklist(checklist_id)
    if cl is None:
        raise Refused("checklist.unknown")
    return cl


async def _load(s: AsyncSession, actor: Actor, assessment_id: int) -> tuple[Assessment, Org]:
    row = (
        await s.execute(
            select(Assessment, Org)
            .join(Org, Org.id == Assessment.org_id)
            .where(Assessment.id == assessment_id)
            .with_for_update(of=Assessment)
        )
    ).first()
    if row is None:
        raise NotFound()
    await require_manager(s, actor, row[1].id)
    return row[0], row[1]


async def start_assessment(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    checklist_id: str,
    period: str,
    now: datetime,
    pack: Pack,
) -> Assessment:
    """Start (or resume: the same one comes back while unfinished) a branch's assessment."""
    org = await require_manager(s, actor, org_id)
    if org.kind is not OrgKind.BRANCH:
        raise Refused("checklist.not_branch")
    _checklist(pack, checklist_id)
    start = period_start(period)
    if start > now.astimezone(ZoneInfo(org.timezone)).date():
        raise Refused("checklist.future_period", period=period)
    existing = await s.scalar(
        select(Assessment)
        .where(
            Assessment.org_id == org_id,
            Assessment.checklist_id == checklist_id,
            Assessment.period == period,
        )
        .order_by(Assessment.id.desc())
        .limit(1)
    )
    if existing is not None:
        if existing.finished_at is None:
            return existing
        raise Refused("checklist.already_assessed", period=period)
    row = Assessment(
        org_id=org_id,
        checklist_id=checklist_id,
        period=period,
        assessor_id=actor.person_id,
        created_at=now,
    )
    s.add(row)
    await s.flush()
    await audit.record(
        s,
        actor,
        "assessment.start",
        org_id=org_id,
        detail={"assessment_id": row.id, "period": period},
        now=now,
    )
    return row


@dataclass(frozen=True, slots=True)
class Progress:
    assessment: Assessment
    answered: int
    total: int


async def _answers(s: AsyncSession, assessment_id: int) -> dict[str, AssessmentItem]:
    rows = await s.scalars(select(AssessmentItem).where(AssessmentItem.assessment_id == assessment_id))
    return {r.item_id: r for r in rows}


async def set_item(
    s: AsyncSession,
    actor: Actor,
    assessment_id: int,
    item_id: str,
    status: str,
    note: str | None = None,
    *,
    pack: Pack,
) -> Progress:
    """Answer (or change the answer to) one item of an unfinished assessment."""
    answer = parse(ItemAnswer, status=status, note=note)
    a, _org = await _load(s, actor, assessment_id)
    if a.finished_at is not None:
        raise Refused("checklist.already_finished")
    cl = _checklist(pack, a.checklist_id)
    if cl.item(item_id) is None:
        raise Refused("checklist.unknown_item")
    answers = await _answers(s, a.id)
    row = answers.get(item_id)
    if row is None:
        row = AssessmentItem(assessment_id=a.id, item_id=item_id, status=answer.status, note=answer.note)
        s.add(row)
        answers[item_id] = row
    else:
        row.status, row.note = answer.status, answer.note
    await s.flush()
    await audit.record(
        s,
        actor,
        "assessment.answer",
        org_id=a.org_id,
        detail={"assessment_id": a.id, "item_id": item_id, "status": answer.status.value},
    )
    valid = {i.id for i in cl.items}
    return Progress(a, sum(1 for k in answers if k in valid), len(cl.items))


async def unanswered(s: AsyncSession, actor: Actor, assessment_id: int, pack: Pack) -> list[str]:
    """Item ids of the checklist not yet answered, in the checklist's order."""
    a, _org = await _load(s, actor, assessment_id)
    answers = await _answers(s, a.id)
    return [i.id for i in _checklist(pack, a.checklist_id).items if i.id not in answers]


async def finish(s: AsyncSession, actor: Actor, assessment_id: int, now: datetime, pack: Pack) -> Assessment:
    a, _org = await _load(s, actor, assessment_id)
    if a.finished_at is not None:
        raise Refused("checklist.already_finished")
    cl = _checklist(pack, a.checklist_id)
    answers = await _answers(s, a.id)
    missing = [i.id for i in cl.items if i.id not in answers]
    if missing:
        raise Refused("checklist.unanswered", count=len(missing))
    a.score = score([answers[i.id].status for i in cl.items], len(cl.items))
    a.finished_at = now
    await s.flush()
    await audit.record(
        s,
        actor,
        "assessment.finish",
        org_id=a.org_id,
        detail={"assessment_id": a.id, "score": a.score},
        now=now,
    )
    return a


@dataclass(frozen=True, slots=True)
class HistoryRow:
    id: int
    period: str
    score: float
    finished_at: datetime


async def history(s: AsyncSession, actor: Actor, org_id: int, checklist_id: str) -> list[HistoryRow]:
    """Finished assessments of one checklist for a branch, newest first."""
    await require_manager(s, actor, org_id)
    rows = await s.execute(
        select(Assessment.id, Assessment.period, Assessment.score, Assessment.finished_at)
        .where(
            Assessment.org_id == org_id,
            Assessment.checklist_id == checklist_id,
            Assessment.finished_at.is_not(None),
        )
        .order_by(Assessment.finished_at.desc(), Assessment.id.desc())
    )
    return [HistoryRow(i, p, float(sc or 0), f) for i, p, sc, f in rows]


@dataclass(frozen=True, slots=True)
class ItemChange:
    item_id: str
    before: ItemStatus | None  # None: not answered in the previous one (or no previous one)
    after: ItemStatus | None


@dataclass(frozen=True, slots=True)
class Comparison:
    score: float | None
    previous_id: int | None
    previous_period: str | None
    previous_score: float | None
    changes: list[ItemChange]  # only the items whose answer differs, in the checklist's order

    @property
    def delta(self) -> float | None:
        if self.score is None or self.previous_score is None:
            return None
        return round(self.score - self.previous_score, 1)


async def compare_with_previous(s: AsyncSession, actor: Actor, assessment_id: int, pack: Pack) -> Comparison:
    """This assessment against the branch's previous finished one of the same checklist."""
    a, _org = await _load(s, actor, assessment_id)
    before_this = (
        Assessment.finished_at < a.finished_at
        if a.finished_at is not None
        else Assessment.finished_at.is_not(None)
    )
    prev = await s.scalar(
        select(Assessment)
        .where(
            Assessment.org_id == a.org_id,
            Assessment.checklist_id == a.checklist_id,
            Assessment.id != a.id,
            before_this,
        )
        .order_by(Assessment.finished_at.desc(), Assessment.id.desc())
        .limit(1)
    )
    now_answers = await _answers(s, a.id)
    prev_answers = await _answers(s, prev.id) if prev is not None else {}
    changes = []
    for item in _checklist(pack, a.checklist_id).items:
        after = now_answers[item.id].status if item.id in now_answers else None
        before = prev_answers[item.id].status if item.id in prev_answers else None
        if after != before:
            changes.append(ItemChange(item.id, before, after))
    return Comparison(
        score=a.score,
        previous_id=prev.id if prev else None,
        previous_period=prev.period if prev else None,
        previous_score=prev.score if prev else None,
        changes=changes,
    )


async def latest_scores(s: AsyncSession, org_id: int) -> dict[str, tuple[str, float, datetime]]:
    """checklist id → (period, score, finished_at) of the branch's latest finished assessment.

    No scope check: for reports that have checked it already.
    """
    latest = (
        select(Assessment.checklist_id, func.max(Assessment.finished_at).label("at"))
        .where(Assessment.org_id == org_id, Assessment.finished_at.is_not(None))
        .group_by(Assessment.checklist_id)
        .subquery()
    )
    rows = await s.execute(
        select(Assessment.checklist_id, Assessment.period, Assessment.score, Assessment.finished_at)
        .join(
            latest,
            (latest.c.checklist_id == Assessment.checklist_id) & (latest.c.at == Assessment.finished_at),
        )
        .where(Assessment.org_id == org_id)
        .order_by(Assessment.checklist_id, Assessment.id)
    )
    return {c: (p, float(sc or 0), f) for c, p, sc, f in rows}
