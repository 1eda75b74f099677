"""A branch's year for the packet tests: service under several actions (one joint entry from a
partner), commitments in every state with ratings, a service list, a pairing, an exemplar, a
notice read by one of two, a report submitted upward, two six-haves self-assessments."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Assessment,
    AssessmentItem,
    Audience,
    Commitment,
    CommitmentStatus,
    Delivery,
    DeliveryStatus,
    EntryStatus,
    Exemplar,
    ItemStatus,
    Notice,
    NoticeStatus,
    Pairing,
    Report,
    ServiceListItem,
)
from tests.factories import World, add_entry

YEAR = 2026
TODAY = date(2026, 12, 6)
NOW = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def make_year(s: AsyncSession, w: World) -> None:
    a, b = w.branch_a, w.branch_b
    ab = Pairing(strong_org_id=a.id, weak_org_id=b.id, started_on=date(2026, 3, 1))
    s.add(ab)
    await s.flush()

    def e(person, org, day, minutes, action, status=EntryStatus.APPROVED, pairing=None):
        add_entry(
            s,
            person,
            org,
            day=day,
            minutes=minutes,
            action=action,
            place="城中区",
            description="社区义诊",
            status=status,
            pairing_id=pairing.id if pairing else None,
        )

    e(w.member_a, a, date(2026, 3, 5), 150, "volunteer")
    e(w.member_a, a, date(2026, 5, 9), 120, "welfare_day")
    e(w.member_a2, a, date(2026, 6, 1), 90, "integrity")
    e(w.member_a2, a, date(2026, 7, 1), 45, "volunteer", EntryStatus.PENDING)
    e(w.member_a, a, date(2025, 12, 31), 300, "volunteer")  # the year before
    e(w.member_b, b, date(2026, 4, 2), 60, "walk_with_you", pairing=ab)  # joint: counts for A too

    C = CommitmentStatus
    s.add_all(
        [
            Commitment(
                person_id=w.member_a.id,
                org_id=a.id,
                text="每月参加一次志愿服务",
                deadline=date(2026, 6, 30),
                status=C.EVALUATED,
                rating="excellent",
                evaluation="按时践诺",
                fulfilment_text="每月参加社区义诊",
                reported_at=_utc(2026, 6, 20),
                evaluated_at=_utc(2026, 6, 25),
                created_at=_utc(2026, 1, 10),
            ),
            Commitment(
                person_id=w.member_a2.id,
                org_id=a.id,
                text="结对帮扶一户群众",
                deadline=date(2026, 9, 30),
                status=C.EVALUATED,
                rating="good",
                fulfilment_text="帮助解决就医困难",
                reported_at=_utc(2026, 9, 1),
                evaluated_at=_utc(2026, 9, 5),
                created_at=_utc(2026, 2, 1),
            ),
            Commitment(
                person_id=w.member_a.id,
                org_id=a.id,
                text="带头学习交流",
                deadline=date(2026, 12, 31),
                status=C.REPORTED,
                fulfilment_text="交流学习体会一次",
                reported_at=_utc(2026, 10, 8),
                created_at=_utc(2026, 3, 1),
            ),
            Commitment(
                person_id=w.member_a2.id,
                org_id=a.id,
                text="参加党员公益日",
                deadline=date(2026, 8, 1),
                status=C.MADE,
                created_at=_utc(2026, 4, 1),
            ),  # overdue
            Commitment(
                org_id=a.id,
                is_branch=True,
                text="公开服务清单并按时办结",
                deadline=date(2026, 12, 31),
                status=C.MADE,
                created_at=_utc(2026, 1, 5),
            ),
            Commitment(
                person_id=w.member_a.id,
                org_id=a.id,
                text="已撤回的承诺",
                deadline=date(2026, 12, 31),
                status=C.WITHDRAWN,
                withdrawn_at=_utc(2026, 2, 1),
                created_at=_utc(2026, 1, 5),
            ),
        ]
    )
    s.add_all(
        [
            ServiceListItem(
                org_id=a.id,
                title="餐饮企业食品安全咨询",
                audience="会员企业",
                contact="0971-1234567",
                time_limit="3个工作日",
            ),
            ServiceListItem(
                org_id=a.id,
                title="从业人员技能培训",
                audience="行业职工",
                contact="李书记",
                time_limit="每季度",
            ),
            ServiceListItem(
                org_id=a.id, title="已下架的服务", audience="—", contact="—", time_limit="—", active=False
            ),
        ]
    )
    s.add(Exemplar(org_id=a.id, title="全市社会组织服务型党组织示范点", year=YEAR))
    notice = Notice(
        org_id=a.id,
        sender_id=w.secretary_a.id,
        audience=Audience.BRANCH_MEMBERS,
        text="关于开展党员公益日活动的通知",
        status=NoticeStatus.DONE,
        sent_at=_utc(2026, 5, 1, 2),
    )
    s.add(notice)
    await s.flush()
    for person, ack in ((w.member_a, _utc(2026, 5, 1, 3)), (w.member_a2, None)):
        s.add(
            Delivery(
                kind="notice",
                notice_id=notice.id,
                person_id=person.id,
                chat_id=person.telegram_id,
                status=DeliveryStatus.SENT,
                dedupe_key=f"n{notice.id}:{person.id}",
                acknowledged_at=ack,
            )
        )
    s.add(
        Report(
            org_id=a.id,
            to_org_id=w.committee.id,
            period_start=date(2026, 6, 1),
            period_end=date(2026, 6, 30),
            summary={},
            submitted_by_id=w.secretary_a.id,
            submitted_at=_utc(2026, 7, 2),
        )
    )
    first = Assessment(
        org_id=a.id,
        checklist_id="six_haves",
        period="2026-Q1",
        assessor_id=w.secretary_a.id,
        finished_at=_utc(2026, 3, 30),
        score=50.0,
    )
    latest = Assessment(
        org_id=a.id,
        checklist_id="six_haves",
        period="2026-Q4",
        assessor_id=w.secretary_a.id,
        finished_at=_utc(2026, 11, 30),
        score=83.3,
    )
    s.add_all([first, latest])
    await s.flush()
    statuses = {
        "leadership": ItemStatus.MET,
        "core_team": ItemStatus.MET,
        "venue": ItemStatus.PARTLY,
        "carriers": ItemStatus.MET,
        "mechanisms": ItemStatus.MET,
        "results": ItemStatus.MET,
    }
    for item, st in statuses.items():
        s.add(
            AssessmentItem(
                assessment_id=latest.id,
                item_id=item,
                status=st,
                note="与社区共用活动室" if item == "venue" else None,
            )
        )
    await s.commit()
