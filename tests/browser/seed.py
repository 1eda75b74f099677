"""A lived-in province for the browser tests (and their screenshots): more branches and people,
a year of service, commitments in every state, self-assessments and a notice half acknowledged.
Written straight to the tables, deterministic (a fixed random seed)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Assessment,
    Audience,
    Commitment,
    CommitmentStatus,
    Delivery,
    DeliveryStatus,
    EntryStatus,
    Notice,
    NoticeStatus,
    Org,
    OrgKind,
    Person,
    Role,
    ServiceEntry,
)
from tests.factories import World, make_org, make_person, make_world

ACTIONS = ("volunteer", "integrity", "welfare_day", "walk_with_you", "branch_project")
PLACES = (
    "城东区八一路社区",
    "城中区南滩街道",
    "城西区文化街",
    "湟中区鲁沙尔镇",
    "协会会议室",
    "西宁市第一人民医院",
)
DEEDS = (
    "为社区老人义务测量血压、讲解用药常识",
    "走访慰问困难党员家庭，送去米面油",
    "在诚信经营承诺墙前为商户讲解食品安全规范",
    "组织行业企业开展“党员公益日”义务植树",
    "为小微企业免费提供法律咨询",
    "协助社区开展垃圾分类宣传",
    "到结对支部开展共建学习交流",
)
NAMES = (
    "王建国",
    "刘秀英",
    "张志强",
    "陈丽华",
    "杨帆",
    "赵敏",
    "黄海涛",
    "周婷",
    "吴磊",
    "徐静",
    "孙浩",
    "马晓燕",
    "朱伟",
    "胡玉兰",
    "郭峰",
    "何娟",
    "林涛",
    "高红梅",
    "罗斌",
    "梁晨",
    "宋佳",
    "郑凯",
    "谢芳",
    "韩冬",
    "唐雪",
    "冯刚",
    "于莉",
    "董鹏",
    "萧雨",
    "程亮",
)


@dataclass
class Lived:
    world: World
    branches: list[Org]
    pending_ids: list[int]
    notice_id: int


async def seed(s: AsyncSession, today: date) -> Lived:
    w = await make_world(s)
    extra = [
        await make_org(s, "西宁市律师协会党支部", OrgKind.BRANCH, w.committee, category="trade"),
        await make_org(s, "青海省民营经济研究会党支部", OrgKind.BRANCH, w.committee, category="academic"),
    ]
    branches = [w.branch_a, w.branch_b, *extra]
    rnd = random.Random(7)
    names = iter(NAMES)
    people: dict[int, list[Person]] = {w.branch_a.id: [w.member_a, w.member_a2], w.branch_b.id: [w.member_b]}
    for b, n in zip(branches, (6, 5, 7, 4), strict=True):
        people.setdefault(b.id, [])
        for _ in range(n):
            people[b.id].append(await make_person(s, next(names), b, Role.MEMBER))
    for b in extra:
        await make_person(s, next(names), b, Role.SECRETARY)
    # A year of service: most approved, the last weeks' still pending, a few sent back.
    pending: list[int] = []
    start = date(today.year - 1, today.month, 1) + timedelta(days=31)
    for b in branches:
        for p in people[b.id]:
            for _ in range(rnd.randint(3, 9)):
                day = start + timedelta(days=rnd.randint(0, (today - start).days))
                recent = (today - day).days < 20
                status = (
                    EntryStatus.PENDING
                    if recent
                    else rnd.choice([EntryStatus.APPROVED] * 9 + [EntryStatus.REJECTED])
                )
                e = ServiceEntry(
                    person_id=p.id,
                    org_id=b.id,
                    day=day,
                    minutes=rnd.choice((60, 90, 120, 150, 180, 240)),
                    action=rnd.choice(ACTIONS),
                    place=rnd.choice(PLACES),
                    description=rnd.choice(DEEDS),
                    status=status,
                    reason="请补充服务地点和证明人" if status is EntryStatus.REJECTED else None,
                    reviewer_id=w.secretary_a.id if status is not EntryStatus.PENDING else None,
                    reviewed_at=datetime.now(UTC) if status is not EntryStatus.PENDING else None,
                )
                s.add(e)
                await s.flush()
                if status is EntryStatus.PENDING and b.id == w.branch_a.id:
                    pending.append(e.id)
    # Commitments in every state.
    for b in branches:
        for i, p in enumerate(people[b.id][:5]):
            st = (
                CommitmentStatus.MADE,
                CommitmentStatus.REPORTED,
                CommitmentStatus.EVALUATED,
                CommitmentStatus.MADE,
                CommitmentStatus.EVALUATED,
            )[i]
            deadline = today + timedelta(days=40) if i != 3 else today - timedelta(days=12)
            s.add(
                Commitment(
                    person_id=p.id,
                    org_id=b.id,
                    text=rnd.choice(
                        (
                            "每月至少参加一次志愿服务",
                            "带头诚信经营，公开服务承诺",
                            "结对帮扶一户困难群众",
                            "年内为会员企业开展两次政策宣讲",
                        )
                    ),
                    deadline=deadline,
                    status=st,
                    fulfilment_text="已完成，详见活动照片" if st is not CommitmentStatus.MADE else None,
                    rating="good" if st is CommitmentStatus.EVALUATED else None,
                    created_at=datetime(today.year, 1, 15, tzinfo=UTC),
                )
            )
    # Self-assessments: most branches have finished some.
    for b, base in zip(branches, (72.0, 55.0, 88.0, 40.0), strict=True):
        for k, cl in enumerate(("six_haves", "five_standards", "six_grasps")):
            if b is extra[1] and k == 2:
                continue
            for q, delta in ((2, -10.0), (3, 0.0)):
                s.add(
                    Assessment(
                        org_id=b.id,
                        checklist_id=cl,
                        period=f"{today.year}-Q{q}",
                        assessor_id=None,
                        score=min(100.0, base + delta + 5 * k),
                        finished_at=datetime(today.year, 3 * q, 20, tzinfo=UTC),
                    )
                )
    # A notice from the committee to every branch's members, half acknowledged.
    sent = datetime.combine(today - timedelta(days=2), datetime.min.time(), UTC) + timedelta(hours=1)
    n = Notice(
        org_id=w.committee.id,
        sender_id=w.staff.id,
        audience=Audience.SUBTREE_ALL,
        text="各支部：请于本月底前完成第四季度“六有”清单自评，并在机器人中报送服务记录。",
        status=NoticeStatus.DONE,
        created_at=sent,
        sent_at=sent,
    )
    s.add(n)
    await s.flush()
    for i, p in enumerate([q for b in branches for q in people[b.id]][:14]):
        s.add(
            Delivery(
                kind="notice",
                notice_id=n.id,
                person_id=p.id,
                chat_id=p.telegram_id or 0,
                dedupe_key=f"notice:{n.id}:{p.id}",
                payload={},
                status=DeliveryStatus.SENT if i != 5 else DeliveryStatus.BLOCKED,
                sent_at=sent,
                acknowledged_at=sent + timedelta(hours=i) if i % 2 == 0 and i != 5 else None,
            )
        )
    await s.commit()
    return Lived(w, branches, pending, n.id)
