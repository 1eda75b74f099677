"""The offline demo's data: a small province with two months of history, made through the store's
own operations so every rule holds (joining by invite with consent, logging then review, the
commitment lifecycle, a finished self-assessment, a notice and who acknowledged it).

Dates are counted back from `now`, so a freshly seeded demo never looks stale. Seeding a
database that already holds any organization does nothing: the demo seeds once, and never
writes into a database that is not its own.

The store stamps some rows with the wall clock (`created_at` defaults); for the history to read
as history, those stamps are set back to the day things happened, right after each operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from content.pack import Pack
from storage import (
    audit,
    checklists,
    commitments,
    invites,
    notices,
    orgs,
    outbox,
    pairings,
    people,
    reminders,
    service_list,
    service_log,
    web_auth,
)
from storage.access import Actor, load_actor
from storage.models import (
    Audience,
    Delivery,
    ItemStatus,
    Membership,
    Org,
    OrgKind,
    Person,
    Role,
)

PACK_ID = "qh-2015"
TIMEZONE = "Asia/Shanghai"
HISTORY_DAYS = 65  # about two months

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "demo-admin"
STAFF_USERNAME = "wang"
STAFF_PASSWORD = "demo-staff"

PROVINCE = "青海省社会组织党工委"
COMMITTEE = "西宁市社会组织党工委"
TRADE_BRANCH = "西宁市餐饮行业协会党支部"
ACADEMIC_BRANCH = "青海省地理学会党支部"


@dataclass(frozen=True, slots=True)
class Someone:
    key: str
    name: str
    telegram_id: int
    role: Role
    org: str  # "province" | "committee" | "trade" | "academic"
    joined_days_ago: int


# Telegram ids well away from the emulator's own (it numbers its users from 5_000_000_001).
PEOPLE: tuple[Someone, ...] = (
    Someone("admin", "系统管理员", 7_700_000_001, Role.ADMIN, "province", HISTORY_DAYS),
    Someone("wang", "王芳", 7_700_000_002, Role.STAFF, "committee", HISTORY_DAYS),
    Someone("li", "李建华", 7_700_000_003, Role.SECRETARY, "trade", HISTORY_DAYS - 1),
    Someone("zhao", "赵文博", 7_700_000_004, Role.SECRETARY, "academic", HISTORY_DAYS - 1),
    Someone("zhang", "张伟", 7_700_000_011, Role.MEMBER, "trade", HISTORY_DAYS - 2),
    Someone("liu", "刘洋", 7_700_000_012, Role.MEMBER, "trade", HISTORY_DAYS - 2),
    Someone("chen", "陈静", 7_700_000_013, Role.MEMBER, "trade", HISTORY_DAYS - 3),
    Someone("yang", "杨帆", 7_700_000_014, Role.MEMBER, "academic", HISTORY_DAYS - 2),
    Someone("huang", "黄丽", 7_700_000_015, Role.MEMBER, "academic", HISTORY_DAYS - 4),
)

# Whom the demo talks as first: a member of the trade branch, whose secretary is 李建华.
FIRST_PERSON = "zhang"


@dataclass(frozen=True, slots=True)
class Service:
    who: str
    days_ago: int
    minutes: int
    action: str
    place: str
    description: str
    outcome: str  # approved | pending | rejected
    reason: str | None = None


SERVICE: tuple[Service, ...] = (
    Service(
        "zhang", 58, 180, "volunteer", "城东区八一路社区", "社区食品安全知识宣传，发放宣传册", "approved"
    ),
    Service("zhang", 45, 120, "integrity", "协会会议室", "为会员餐馆讲解明码标价与诚信经营", "approved"),
    Service("zhang", 30, 240, "welfare_day", "南山公园", "党员公益日：清理公园步道垃圾", "approved"),
    Service(
        "zhang", 12, 90, "walk_with_you", "城中区结对户家中", "走访结对户，帮助更换老旧燃气灶", "approved"
    ),
    Service("zhang", 3, 120, "volunteer", "西宁火车站", "节假日志愿服务，引导旅客进站", "pending"),
    Service("liu", 50, 240, "welfare_day", "南山公园", "党员公益日：植树护绿", "approved"),
    Service(
        "liu",
        20,
        150,
        "volunteer",
        "城西区敬老院",
        "为老人送餐并陪同聊天",
        "rejected",
        "时长与活动签到记录不符，请核实后重新登记",
    ),
    Service("liu", 5, 60, "integrity", "协会会议室", "整理会员企业诚信经营承诺书", "pending"),
    Service("chen", 40, 120, "walk_with_you", "城北区结对户家中", "陪同结对老人就医取药", "approved"),
    Service("chen", 8, 180, "volunteer", "城东区八一路社区", "社区老年食堂帮厨", "pending"),
    Service("li", 35, 180, "volunteer", "城东区八一路社区", "带领党员开展食品安全入户宣传", "approved"),
    Service("yang", 55, 180, "volunteer", "青海湖科普基地", "为中小学生讲解青海湖地理与生态", "approved"),
    Service("yang", 15, 120, "walk_with_you", "湟中区结对户家中", "帮助结对户整理土地确权资料", "approved"),
    Service("yang", 4, 180, "welfare_day", "西宁市科技馆", "党员公益日：地理科普开放日讲解", "pending"),
    Service("huang", 25, 120, "integrity", "学会秘书处", "审核学术会议经费公开明细", "approved"),
    Service("huang", 6, 120, "volunteer", "城中区图书馆", "地图与地理读物公益导读", "pending"),
    Service("zhao", 28, 240, "welfare_day", "西宁市科技馆", "组织学会党员公益日科普活动", "approved"),
)

SERVICE_LIST = (
    (
        "餐饮企业食品安全咨询",
        "会员餐饮企业、个体餐馆",
        "协会党支部办公室(工作日 9:00–17:00)",
        "3 个工作日内答复",
    ),
    ("诚信经营承诺指导", "新入会的餐饮企业", "协会秘书处", "入会后 1 个月内"),
    ("困难职工帮扶对接", "行业内困难职工家庭", "支部书记 李建华", "5 个工作日内上门走访"),
)

NOTICE_TEXT = (
    "关于开展“党员公益日”活动的通知：本月最后一个周六上午 9 点在南山公园东门集合，"
    "开展环境清洁志愿服务。请各位党员按时参加，活动后用 /log 登记服务时长。"
)


@dataclass
class Seeded:
    """What was made, by key, for the demo and its tests."""

    orgs: dict[str, int] = field(default_factory=dict)
    people: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DemoPerson:
    """Someone the demo can talk as: a joined person with a Telegram id."""

    person_id: int
    telegram_id: int
    name: str
    locale: str | None
    role: Role
    org_name: str

    @property
    def aliases(self) -> tuple[str, ...]:
        """How colleagues address them in Chinese: 李书记， 王干事."""
        title = {Role.SECRETARY: "书记", Role.STAFF: "干事"}.get(self.role)
        return (self.name[0] + title,) if title and self.name else ()


def _at(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """A moment on a local day, in UTC as the store keeps it."""
    return datetime.combine(day, time(hour), tzinfo=tz).astimezone(UTC)


async def is_empty(s: AsyncSession) -> bool:
    return not await s.scalar(select(func.count()).select_from(Org))


async def seed_demo(s: AsyncSession, *, now: datetime, pack: Pack) -> Seeded | None:
    """Seed the demo province into an empty database; None (and nothing written) if it is not empty.

    `pack` is the one the seed is written for (`PACK_ID`: its categories, checklists and actions);
    the demo loads it and passes it, as every front passes the store its pack.
    Flushes, never commits: the caller owns the transaction.
    """
    if not await is_empty(s):
        return None
    tz = ZoneInfo(TIMEZONE)
    today = now.astimezone(tz).date()

    def day(days_ago: int) -> date:
        return today - timedelta(days=days_ago)

    def at(days_ago: int, hour: int = 10) -> datetime:
        return min(_at(day(days_ago), hour, tz), now)

    out = Seeded()
    system = audit.system_actor("cli")

    # ---- the tree --------------------------------------------------------------------------
    province = await orgs.add_org(s, system, PROVINCE, OrgKind.PROVINCE, timezone=TIMEZONE, pack=pack)
    committee = await orgs.add_org(s, system, COMMITTEE, OrgKind.COMMITTEE, province.id, pack=pack)
    trade = await orgs.add_org(
        s, system, TRADE_BRANCH, OrgKind.BRANCH, committee.id, category="trade", pack=pack
    )
    academic = await orgs.add_org(
        s, system, ACADEMIC_BRANCH, OrgKind.BRANCH, committee.id, category="academic", pack=pack
    )
    by_org = {"province": province, "committee": committee, "trade": trade, "academic": academic}
    for key, org in by_org.items():
        org.created_at = at(HISTORY_DAYS + 1)
        out.orgs[key] = org.id

    # ---- people, each joining through an invite from whoever may hand it out -----------------
    actors: dict[str, Actor] = {}

    def inviter(someone: Someone) -> Actor:
        if someone.role in (Role.ADMIN, Role.STAFF):
            return system
        if someone.role is Role.SECRETARY:
            return actors["wang"]  # staff appoint secretaries
        return actors["li" if someone.org == "trade" else "zhao"]  # secretaries invite members

    for someone in PEOPLE:
        when = at(someone.joined_days_ago, 9)
        org = by_org[someone.org]
        inv = await invites.create_invite(s, inviter(someone), org.id, someone.role, uses=1, days=7, now=when)
        joined = await people.join(
            s, inv.code, someone.telegram_id, someone.name, "zh", consent=True, now=when
        )
        person = joined.person
        person.created_at = when
        membership = await s.scalar(
            select(Membership).where(Membership.person_id == person.id, Membership.org_id == org.id)
        )
        assert membership is not None
        membership.created_at = when
        await s.flush()
        actors[someone.key] = await load_actor(s, person.id)
        out.people[someone.key] = person.id

    await web_auth.set_password(s, system, out.people["admin"], ADMIN_USERNAME, ADMIN_PASSWORD)
    await web_auth.set_password(s, system, out.people["wang"], STAFF_USERNAME, STAFF_PASSWORD)

    # ---- service log: logged on the day, reviewed a day later --------------------------------
    for n, sv in enumerate(SERVICE, 1):
        logged = at(sv.days_ago, 18)
        entry = await service_log.log_service(
            s,
            actors[sv.who],
            service_log.new_entry(
                day=day(sv.days_ago),
                minutes=sv.minutes,
                action=sv.action,
                place=sv.place,
                description=sv.description,
            ),
            source=f"seed:{n}",
            today=day(sv.days_ago),
            window_days=90,
            pack=pack,
        )
        entry.created_at = logged
        if sv.outcome != "pending":
            # A secretary's own service is reviewed by the committee's staff.
            reviewer = actors["wang"] if sv.who in ("li", "zhao") else _secretary_of(actors, sv.who)
            await service_log.review(
                s, reviewer, entry.id, sv.outcome == "approved", sv.reason, at(max(sv.days_ago - 1, 0), 20)
            )
    await s.flush()

    # ---- commitments: made, reported, evaluated, and one overdue -----------------------------
    async def commit(who: str, days_ago: int, **data: object) -> int:
        c = await commitments.make_commitment(
            s, actors[who], commitments.new_commitment(**data), today=day(days_ago), pack=pack
        )
        c.created_at = at(days_ago, 11)
        return c.id

    await commit("zhang", 20, template_id="volunteer_monthly")
    reported = await commit("liu", 50, template_id="integrity_promise")
    await commitments.report_fulfilment(
        s,
        actors["liu"],
        reported,
        "已为 12 家会员餐馆逐一讲解明码标价要求，并收回诚信经营承诺书。",
        None,
        at(10),
    )
    evaluated = await commit("chen", 55, template_id="welfare_day")
    await commitments.report_fulfilment(
        s, actors["chen"], evaluated, "参加了南山公园党员公益日，并带动一名同事一同参与。", None, at(25)
    )
    await commitments.evaluate(s, actors["li"], evaluated, "excellent", "按期兑现，带动作用明显。", at(20))
    await commit("yang", 50, text="整理并公开一份青海湖湿地科普讲解提纲", deadline=day(10))  # overdue now
    await commit("huang", 10, template_id="expertise_service")

    # ---- the trade branch's 六有 self-assessment, for the quarter before this one ------------
    checklist = pack.checklist("six_haves")
    assert checklist is not None
    answers = (ItemStatus.MET, ItemStatus.MET, ItemStatus.PARTLY, ItemStatus.MET, ItemStatus.PARTLY)
    assessment = await checklists.start_assessment(
        s, actors["li"], trade.id, checklist.id, _previous_quarter(today), at(21), pack=pack
    )
    for i, item in enumerate(checklist.items):
        status = answers[i] if i < len(answers) else ItemStatus.NOT_YET
        await checklists.set_item(s, actors["li"], assessment.id, item.id, status, pack=pack)
    await checklists.finish(s, actors["li"], assessment.id, at(20), pack=pack)

    # ---- the trade branch's service list --------------------------------------------------------
    for title, audience, contact, time_limit in SERVICE_LIST:
        item = await service_list.add_service(
            s,
            actors["li"],
            trade.id,
            service_list.service_item(title=title, audience=audience, contact=contact, time_limit=time_limit),
        )
        item.created_at = at(40)

    # ---- a notice two weeks ago; two of the three members acknowledged it --------------------
    sent_at = at(14, 9)
    notice = await notices.create_notice(
        s, actors["li"], trade.id, Audience.BRANCH_MEMBERS, NOTICE_TEXT, now=sent_at
    )
    await notices.send_notice(s, actors["li"], notice.id, now=sent_at)
    deliveries = list(await s.scalars(select(Delivery).where(Delivery.notice_id == notice.id)))
    for d in deliveries:
        # Delivered back then: the demo's delivery worker must not send history again.
        await outbox.mark_sent(s, d.id, None, sent_at)
    await notices.finish_if_done(s, notice.id, sent_at)
    readers = {out.people["zhang"]: at(14, 12), out.people["chen"]: at(13, 8)}
    for d in deliveries:
        if d.person_id in readers:
            await notices.acknowledge(s, d.chat_id, d.id, readers[d.person_id])

    # ---- pairing, and each branch's default reminder rules ------------------------------------
    await pairings.record_pairing(
        s,
        actors["wang"],
        pairings.new_pairing(
            strong_org_id=trade.id,
            weak_org_id=academic.id,
            started_on=day(30),
            note="餐饮协会支部与地理学会支部结对，联合开展社区科普与食品安全宣传",
        ),
    )
    for branch in (trade, academic):
        await reminders.ensure_default_rules(s, branch, now=now)
    await s.flush()
    return out


def _secretary_of(actors: dict[str, Actor], member_key: str) -> Actor:
    branch = next(p.org for p in PEOPLE if p.key == member_key)
    return actors["li" if branch == "trade" else "zhao"]


def _previous_quarter(today: date) -> str:
    q = (today.month - 1) // 3 + 1
    return f"{today.year}-Q{q - 1}" if q > 1 else f"{today.year - 1}-Q4"


async def demo_people(s: AsyncSession) -> list[DemoPerson]:
    """Everyone who has joined (a Telegram id and consent) in their highest role: members first,
    then secretaries, staff and admins, each group in the order they joined."""
    rows = await s.execute(
        select(Person.id, Person.telegram_id, Person.name, Person.locale, Membership.role, Org.name)
        .join(Membership, Membership.person_id == Person.id)
        .join(Org, Org.id == Membership.org_id)
        .where(Person.telegram_id.is_not(None), Person.consent_at.is_not(None), Person.erased_at.is_(None))
        .order_by(Person.id, Membership.id)
    )
    rank = {r: i for i, r in enumerate(people.ROLE_RANK)}
    best: dict[int, DemoPerson] = {}
    for pid, tg, name, locale, role, org_name in rows:
        current = best.get(pid)
        if current is None or people.ROLE_RANK[role] > people.ROLE_RANK[current.role]:
            best[pid] = DemoPerson(pid, int(tg), name, locale, role, org_name)
    return sorted(best.values(), key=lambda p: (rank[p.role], p.person_id))
