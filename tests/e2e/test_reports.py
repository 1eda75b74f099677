"""/report: the period, the summary, the .xlsx read back cell by cell against the database,
submitting upward, and the staff's compiled report of their subtree."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from io import BytesIO

import pytest
from openpyxl import load_workbook
from sqlalchemy import and_, func, select

from content.pack import get_pack
from handlers.reports import PeriodError, parse_period, presets
from storage import checklists, reports
from storage.models import (
    Commitment,
    CommitmentStatus,
    EntryStatus,
    Membership,
    Person,
    Report,
    Role,
    ServiceEntry,
    Submission,
)
from tests.e2e.forge import forged_button
from tests.e2e.harness import NOW

PACK = get_pack()
ACTIONS = [a.id for a in PACK.actions]
NOV = (date(2026, 11, 1), date(2026, 11, 30))


# ---- periods (pure) ----


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("2026-11", NOV),
        ("2026年11月", NOV),
        ("2026-Q4", (date(2026, 10, 1), date(2026, 12, 31))),
        ("2026年第四季度", (date(2026, 10, 1), date(2026, 12, 31))),
        ("2026", (date(2026, 1, 1), date(2026, 12, 31))),
        ("2026-02", (date(2026, 2, 1), date(2026, 2, 28))),
        ("2026-11-01 2026-11-15", (date(2026, 11, 1), date(2026, 11, 15))),
        ("2026-11-01至2026-11-15", (date(2026, 11, 1), date(2026, 11, 15))),
        ("2026/11/01 ~ 2026/11/15", (date(2026, 11, 1), date(2026, 11, 15))),
    ],
)
def test_parse_period(text: str, period: tuple[date, date]) -> None:
    assert parse_period(text) == period


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("上个月", "reports_chat.bad_period"),
        ("2026-13", "reports_chat.bad_period"),
        ("2026-11-31 2026-12-01", "reports_chat.bad_period"),
        ("2026-11-15 2026-11-01", "reports_chat.period_order"),
    ],
)
def test_parse_period_explains(text: str, key: str) -> None:
    with pytest.raises(PeriodError) as e:
        parse_period(text)
    assert e.value.key == key


def test_presets_in_january_reach_back_to_december() -> None:
    got = {key: (a, b) for key, _p, a, b in presets(date(2027, 1, 10))}
    assert got["reports_chat.last_month"] == (date(2026, 12, 1), date(2026, 12, 31))
    assert got["reports_chat.this_quarter"] == (date(2027, 1, 1), date(2027, 3, 31))
    assert got["reports_chat.last_year"] == (date(2026, 1, 1), date(2026, 12, 31))


# ---- a branch with a month of work ----


def entry(person, org, day, minutes, action, status=EntryStatus.APPROVED) -> ServiceEntry:
    return ServiceEntry(
        person_id=person.id,
        org_id=org.id,
        day=day,
        minutes=minutes,
        action=action,
        description="服务",
        status=status,
    )


async def scene(session, world) -> None:
    a = world.branch_a
    session.add_all(
        [
            entry(world.member_a, a, date(2026, 11, 10), 120, "volunteer"),
            entry(world.member_a, a, date(2026, 11, 20), 90, "welfare_day"),
            entry(world.member_a2, a, date(2026, 11, 5), 60, "integrity"),
            entry(world.secretary_a, a, date(2026, 11, 6), 45, "branch_project"),
            entry(world.member_a, a, date(2026, 10, 15), 60, "volunteer"),  # last month
            entry(world.member_a2, a, date(2026, 11, 21), 30, "volunteer", EntryStatus.PENDING),
            entry(world.member_a2, a, date(2026, 11, 22), 40, "volunteer", EntryStatus.REJECTED),
            entry(world.member_b, world.branch_b, date(2026, 11, 12), 75, "volunteer"),
        ]
    )
    made = datetime(2026, 11, 2, tzinfo=UTC)
    session.add_all(
        [
            Commitment(
                person_id=world.member_a.id,
                org_id=a.id,
                text="每月义诊",
                deadline=date(2026, 12, 20),
                created_at=made,
            ),
            Commitment(
                person_id=world.member_a.id,
                org_id=a.id,
                text="逾期的",
                deadline=date(2026, 11, 20),
                created_at=made,
            ),
            Commitment(
                person_id=world.member_a2.id,
                org_id=a.id,
                text="诚信经营",
                deadline=date(2026, 12, 1),
                status=CommitmentStatus.REPORTED,
                created_at=made,
                reported_at=datetime(2026, 11, 5, tzinfo=UTC),
            ),
        ]
    )
    await session.flush()
    actor = await world.actor(session, world.secretary_a)
    done = NOW - timedelta(days=1)
    # November's own self-assessment (a quarter's would not belong to a month's report).
    a1 = await checklists.start_assessment(session, actor, a.id, "six_haves", "2026-11", done, pack=PACK)
    for i, item in enumerate(PACK.checklist("six_haves").items):
        await checklists.set_item(
            session, actor, a1.id, item.id, "met" if i % 2 == 0 else "partly", pack=PACK
        )
    await checklists.finish(session, actor, a1.id, done, pack=PACK)
    await session.commit()


async def approved_minutes(db, org_id, start, end) -> dict[tuple[int, str], int]:
    """(person, action) -> approved minutes, straight from the table."""
    E = ServiceEntry
    async with db.sessionmaker() as s:
        rows = await s.execute(
            select(E.person_id, E.action, func.sum(E.minutes))
            .where(E.org_id == org_id, E.status == EntryStatus.APPROVED, E.day.between(start, end))
            .group_by(E.person_id, E.action)
        )
        return {(p, a): int(m) for p, a, m in rows}


def workbook(reply):
    doc = reply.sent[-1].document
    assert doc is not None and doc.file_name.endswith(".xlsx")
    return load_workbook(BytesIO(doc.data))


def hours(minutes: int) -> float:
    return round(minutes / 60, 2)


async def test_branch_report_summary_and_workbook_match_the_database(chat, db, world, session) -> None:
    await scene(session, world)
    menu = await chat.send(world.secretary_a, "/report")
    assert menu.buttons == [
        "本月（11 月）",
        "上月（10 月）",
        "本季度（第 4 季度）",
        "本年（2026 年）",
        "上一年（2025 年）",
        "📅 其他时段…",
    ]
    reply = await chat.press(world.secretary_a, menu, "本月（11 月）")
    summary = reply.sent[0]
    assert "2026-11-01 至 2026-11-30" in summary.text
    assert "服务时长 5.25 小时，3/3 名党员参与" in summary.text
    assert "待审核 1 条，共 0.5 小时" in summary.text
    assert "本期承诺 3 项，践诺 1 项，评诺 0 项；本期到期而逾期未践诺 1 项" in summary.text
    assert "“六有”目标 2026年11月 75 分" in summary.text
    assert summary.buttons[0]["text"] == "📤 报送党工委"

    minutes = await approved_minutes(db, world.branch_a.id, *NOV)
    wb = workbook(reply)
    assert wb.sheetnames == ["汇总", "党员明细", "清单自评"]
    assert reply.sent[-1].document.file_name == "支部报表-2026-11-01至2026-11-30.xlsx"

    # Summary sheet: label and value, row by row.
    ws = wb["汇总"]
    values = {ws.cell(r, 1).value: ws.cell(r, 2).value for r in range(2, ws.max_row + 1)}
    assert values["党支部"] == world.branch_a.name
    assert values["开始日期"].date() == NOV[0] and values["结束日期"].date() == NOV[1]
    assert values["服务时长合计（小时）"] == hours(sum(minutes.values()))
    for action in PACK.actions:
        total = sum(m for (_p, a), m in minutes.items() if a == action.id)
        assert values[f"{action.title.zh}（小时）"] == hours(total)
    async with db.sessionmaker() as s:
        members = int(
            await s.scalar(
                select(func.count())
                .select_from(Membership)
                .where(
                    Membership.org_id == world.branch_a.id, Membership.role.in_((Role.MEMBER, Role.SECRETARY))
                )
            )
        )
        pending = int(
            await s.scalar(
                select(func.count()).where(
                    ServiceEntry.org_id == world.branch_a.id,
                    ServiceEntry.status == EntryStatus.PENDING,
                    ServiceEntry.day.between(*NOV),
                )
            )
        )
    assert values["党员总数（人）"] == members
    assert values["参与服务党员（人）"] == len({p for p, _a in minutes})
    assert values["待审核记录（条）"] == pending
    assert values["承诺（项）"] == 3 and values["逾期未践诺（项）"] == 1

    # Members sheet: one row per member, hours per action and commitments, cell by cell.
    ws = wb["党员明细"]
    header = [c.value.replace("\n", "") for c in ws[1]]  # the unit prints on its own line
    assert header[:2] == ["姓名", "身份"] and header[-4:] == [
        "服务时长合计（小时）",
        "承诺（项）",
        "已践诺（项）",
        "逾期未践诺（项）",
    ]
    async with db.sessionmaker() as s:
        people = dict((await s.execute(select(Person.name, Person.id))).all())
        commitment_rows = (
            await s.execute(
                select(Commitment.person_id, Commitment.reported_at).where(
                    Commitment.org_id == world.branch_a.id
                )
            )
        ).all()
    made: dict[int, int] = {}
    fulfilled: dict[int, int] = {}
    for pid, reported_at in commitment_rows:  # all made in November; fulfilled if reported in it
        made[pid] = made.get(pid, 0) + 1
        fulfilled[pid] = fulfilled.get(pid, 0) + int(reported_at is not None)
    names = [ws.cell(r, 1).value for r in range(2, ws.max_row + 1)]
    assert sorted(names) == sorted(["张三", "李四", "李书记"])
    for r in range(2, ws.max_row + 1):
        pid = people[ws.cell(r, 1).value]
        for i, action in enumerate(ACTIONS):
            assert ws.cell(r, 3 + i).value == hours(minutes.get((pid, action), 0)), (r, action)
        total = sum(m for (p, _a), m in minutes.items() if p == pid)
        assert ws.cell(r, 3 + len(ACTIONS)).value == hours(total)
        assert ws.cell(r, 4 + len(ACTIONS)).value == made.get(pid, 0)
        assert ws.cell(r, 5 + len(ACTIONS)).value == fulfilled.get(pid, 0)
    role_col = {ws.cell(r, 1).value: ws.cell(r, 2).value for r in range(2, ws.max_row + 1)}
    assert role_col["李书记"] == "书记" and role_col["张三"] == "党员"

    ws = wb["清单自评"]
    assert [c.value for c in ws[2]][:3] == ["“六有”目标", "2026年11月", 75.0]


async def test_submitting_sends_the_summary_to_the_committee(chat, db, world, session) -> None:
    await scene(session, world)
    menu = await chat.send(world.secretary_a, "/report")
    reply = await chat.press(world.secretary_a, menu, "本月（11 月）")
    done = await chat.press(world.secretary_a, reply.sent[0], "📤 报送党工委")
    assert f"报送「{world.committee.name}」" in done.text
    row = await db.one(select(Report))
    assert (row.org_id, row.to_org_id, row.period_start, row.period_end) == (
        world.branch_a.id,
        world.committee.id,
        *NOV,
    )
    assert row.summary["minutes"] == 315 and row.summary["pending_entries"] == 1
    assert row.submitted_by_id == world.secretary_a.id and row.submitted_at == NOW
    # Submitting the same period again replaces it.
    await chat.press(world.secretary_a, reply.sent[0], "📤 报送党工委")
    assert await db.count(Report) == 1


async def test_a_submitted_report_opens_as_sent_and_names_what_changed(chat, db, world, session) -> None:
    """报送 freezes the figures and the workbook: after the data moves, /report for the same
    period shows the submitted figures and sends the same bytes, and lists what changed."""
    await scene(session, world)
    menu = await chat.send(world.secretary_a, "/report")
    first = await chat.press(world.secretary_a, menu, "本月（11 月）")
    await chat.press(world.secretary_a, first.sent[0], "📤 报送党工委")
    sent = await db.one(select(Submission))
    assert sent.sha256 == hashlib.sha256(sent.file_bytes).hexdigest()
    assert sent.figures["minutes"] == 315 and sent.figures["commitments"]["reported"] == 1

    # Afterwards: the pending entry is approved, a new one is added, a commitment is fulfilled.
    async with db.sessionmaker() as s:
        pending = await s.scalar(select(ServiceEntry).where(ServiceEntry.status == EntryStatus.PENDING))
        pending.status = EntryStatus.APPROVED
        s.add(entry(world.member_a, world.branch_a, date(2026, 11, 25), 60, "volunteer"))
        c = await s.scalar(select(Commitment).where(Commitment.text == "每月义诊"))
        c.status, c.reported_at = CommitmentStatus.REPORTED, NOW
        await s.commit()

    menu = await chat.send(world.secretary_a, "/report")
    again = await chat.press(world.secretary_a, menu, "本月（11 月）")
    text = again.sent[0].text
    assert "服务时长 5.25 小时" in text  # as submitted, not today's 6.75
    assert "2026-11-28 10:00 报送的报表" in text and sent.sha256[:16] in text
    assert "报送以后有变化的数据" in text
    assert "服务时长合计（小时）：5.25 → 6.75" in text
    assert "待审核记录（条）：1 → 0" in text
    assert "本期践诺（项）：1 → 2" in text
    assert again.sent[-1].document.data == sent.file_bytes
    assert hashlib.sha256(again.sent[-1].document.data).hexdigest() == sent.sha256
    # The file is the submitted one too: its summary sheet holds the submitted hours.
    values = {r[0].value: r[1].value for r in workbook(again)["汇总"].iter_rows(min_row=2)}
    assert values["服务时长合计（小时）"] == 5.25


async def test_staff_get_the_compiled_subtree_report_with_who_submitted(chat, db, world, session) -> None:
    await scene(session, world)
    actor = await world.actor(session, world.secretary_a)
    await reports.submit_report(session, actor, world.branch_a.id, *NOV, "本月按计划完成", NOW, pack=PACK)
    await session.commit()

    menu = await chat.send(world.staff, "/report")
    assert world.committee.name in menu.text
    reply = await chat.press(world.staff, menu, "本月（11 月）")
    text = "\n".join(m.text or "" for m in reply.sent[:-1])
    assert "所辖支部 2 个，本时段已报送 1 个" in text
    assert f"{world.branch_a.name}：5.25 小时" in text and "✅ 2026-11-28 10:00 已报送" in text
    assert f"{world.branch_b.name}：1.25 小时" in text and "⏳ 未报送" in text
    assert world.branch_c.name not in text

    wb = workbook(reply)
    assert wb.sheetnames == ["汇总", "各支部"]
    assert reply.sent[-1].document.file_name == "汇总报表-2026-11-01至2026-11-30.xlsx"
    summary = {r[0].value: r[1].value for r in wb["汇总"].iter_rows(min_row=2)}
    assert summary["所辖支部（个）"] == 2 and summary["已报送支部（个）"] == 1
    ws = wb["各支部"]
    header = [(c.value or "").replace("\n", "") for c in ws[1]]  # units print on their own line
    col = {h: i + 1 for i, h in enumerate(header)}
    rows = {ws.cell(r, 1).value: r for r in range(2, ws.max_row + 1)}
    assert set(rows) == {world.branch_a.name, world.branch_b.name}
    for org in (world.branch_a, world.branch_b):
        r = rows[org.name]
        minutes = await approved_minutes(db, org.id, *NOV)
        async with db.sessionmaker() as s:
            members = int(
                await s.scalar(
                    select(func.count())
                    .select_from(Membership)
                    .where(
                        and_(Membership.org_id == org.id, Membership.role.in_((Role.MEMBER, Role.SECRETARY)))
                    )
                )
            )
            commitments = int(await s.scalar(select(func.count()).where(Commitment.org_id == org.id)))
            submitted = await s.scalar(select(Report).where(Report.org_id == org.id))
        assert ws.cell(r, col["党员总数（人）"]).value == members
        assert ws.cell(r, col["参与服务党员（人）"]).value == len({p for p, _a in minutes})
        assert ws.cell(r, col["服务时长合计（小时）"]).value == hours(sum(minutes.values()))
        for action in PACK.actions:
            total = sum(m for (_p, a), m in minutes.items() if a == action.id)
            assert ws.cell(r, col[f"{action.title.zh}（小时）"]).value == hours(total)
        assert ws.cell(r, col["承诺（项）"]).value == commitments
        assert ws.cell(r, col["是否报送"]).value == ("已报送" if submitted else "未报送")
        assert ws.cell(r, col["报送人"]).value == ("李书记" if submitted else None)
        assert ws.cell(r, col["报送说明"]).value == (submitted.note if submitted else None)
    assert ws.cell(rows[world.branch_a.name], col["得分"]).value == 75.0
    assert ws.cell(rows[world.branch_a.name], col["最近自评清单"]).value == "“六有”目标"
    assert ws.cell(rows[world.branch_b.name], col["得分"]).value is None


async def test_a_typed_period(chat, world, session) -> None:
    await scene(session, world)
    menu = await chat.send(world.secretary_a, "/report")
    asked = await chat.press(world.secretary_a, menu, "📅 其他时段…")
    assert "2026-11-01 2026-11-15" in asked.text
    bad = await chat.send(world.secretary_a, "上半月")
    assert "没看懂" in bad.text
    reply = await chat.send(world.secretary_a, "2026-11-01 2026-11-15")
    assert "2026-11-01 至 2026-11-15" in reply.sent[0].text and "服务时长 3.75 小时" in reply.sent[0].text
    assert reply.sent[-1].document is not None


async def test_reports_outside_the_scope_are_refused(chat, db, world, session) -> None:
    await scene(session, world)
    cases = [
        (world.secretary_b, f"srp:b:{world.branch_a.id}:20261101:20261130"),
        (world.secretary_a, f"srp:s:{world.committee.id}:20261101:20261130"),
        (world.other_staff, f"srp:s:{world.committee.id}:20261101:20261130"),
        (world.secretary_b, f"srs:{world.branch_a.id}:20261101:20261130"),
        (world.staff, f"srs:{world.branch_a.id}:20261101:20261130"),  # staff do not submit for a branch
    ]
    for person, data in cases:
        await chat.send(person, "/report")
        pressed = await chat.press(person, await forged_button(chat, person, data), "forged")
        assert pressed.alert and "没有权限" in pressed.alert, data
        assert not [m for m in chat.messages(person) if m.document is not None]
    assert await db.count(Report) == 0
