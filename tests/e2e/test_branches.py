"""/branches for staff: the overview of the subtree, and recording pairings and exemplars."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from content.pack import get_pack
from storage import reports
from storage.models import EntryStatus, Exemplar, Pairing, ServiceEntry
from tests.e2e.forge import forged_button
from tests.e2e.harness import NOW

TODAY = date(2026, 11, 28)
PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK


async def scene(session, world) -> None:
    for person, org, minutes in (
        (world.member_a, world.branch_a, 120),
        (world.member_a2, world.branch_a, 30),
        (world.member_b, world.branch_b, 60),
        (world.member_c, world.branch_c, 600),
    ):
        session.add(
            ServiceEntry(
                person_id=person.id,
                org_id=org.id,
                day=date(2026, 11, 3),
                minutes=minutes,
                action="volunteer",
                description="服务",
                status=EntryStatus.APPROVED,
            )
        )
    await session.flush()
    actor = await world.actor(session, world.secretary_a)
    await reports.submit_report(
        session, actor, world.branch_a.id, date(2026, 1, 1), date(2026, 12, 31), None, NOW, PACK
    )
    await session.commit()


async def test_overview_of_the_subtree(chat, world, session) -> None:
    await scene(session, world)
    reply = await chat.send(world.staff, "/branches")
    overview = reply.sent[0].text
    assert f"{world.committee.name} 所辖支部概况（2026 年）" in overview
    assert "支部 2 个 · 党员 5 人 · 参与服务 3 人 · 服务 3.5 小时 · 已报送全年报告 1 个" in overview
    assert f"1. {world.branch_a.name}\n党员 3 人 · 参与 2 人（67%）· 2.5 小时" in overview
    assert f"2. {world.branch_b.name}\n党员 2 人 · 参与 1 人（50%）· 1 小时" in overview
    a_part, b_part = overview.split(world.branch_b.name)
    assert "✅ 已报送全年报告" in a_part and "⏳ 未报送全年报告" in b_part
    assert world.branch_c.name not in overview
    records = reply.sent[-1]
    assert "结对共建" in records.text and "（暂无）" in records.text
    assert [b["text"] for b in records.buttons] == ["🤝 记录结对共建", "🏅 记录标杆支部"]


async def test_admin_sees_every_branch(chat, world, session) -> None:
    await scene(session, world)
    reply = await chat.send(world.admin, "/branches")
    assert "支部 3 个" in reply.sent[0].text and world.branch_c.name in reply.sent[0].text


async def test_recording_a_pairing(chat, db, world) -> None:
    records = (await chat.send(world.staff, "/branches")).sent[-1]
    strong = await chat.press(world.staff, records, "🤝 记录结对共建")
    assert strong.buttons == [world.branch_a.name, world.branch_b.name]
    weak = await chat.press(world.staff, strong, world.branch_a.name)
    assert world.branch_a.name in weak.text
    assert weak.buttons == [world.branch_b.name]  # not the strong branch itself
    done = await chat.press(world.staff, weak, world.branch_b.name)
    assert "已记录结对共建" in done.text
    row = await db.one(select(Pairing))
    assert (row.strong_org_id, row.weak_org_id, row.started_on, row.recorded_by_id) == (
        world.branch_a.id,
        world.branch_b.id,
        TODAY,
        world.staff.id,
    )
    again = await chat.press(world.staff, weak, world.branch_b.name)
    assert again.alert and "已经结对" in again.alert
    listed = (await chat.send(world.staff, "/branches")).sent[-1]
    assert f"{world.branch_a.name} 带动 {world.branch_b.name}（自 2026-11-28 起）" in listed.text
    assert await db.count(Pairing) == 1


async def test_recording_an_exemplar(chat, db, world) -> None:
    records = (await chat.send(world.staff, "/branches")).sent[-1]
    pick = await chat.press(world.staff, records, "🏅 记录标杆支部")
    asked = await chat.press(world.staff, pick, world.branch_b.name)
    assert "称号" in asked.text
    too_long = await chat.send(world.staff, "称" * 201)
    assert "200" in too_long.text and await db.count(Exemplar) == 0
    done = await chat.send(world.staff, "2026年度服务型党组织示范点")
    assert "已记录" in done.text
    row = await db.one(select(Exemplar))
    assert (row.org_id, row.title, row.year, row.recorded_by_id) == (
        world.branch_b.id,
        "2026年度服务型党组织示范点",
        2026,
        world.staff.id,
    )
    listed = (await chat.send(world.staff, "/branches")).sent[-1]
    assert f"{world.branch_b.name}：2026年度服务型党组织示范点" in listed.text


async def test_outside_the_subtree_is_refused(chat, db, world) -> None:
    await chat.send(world.other_staff, "/branches")
    for data in (
        f"spk:pairs:{world.branch_a.id}",
        f"spk:pairw{world.branch_a.id}:{world.branch_b.id}",
        f"spk:pairw{world.branch_c.id}:{world.branch_a.id}",
        f"spk:exem:{world.branch_a.id}",
    ):
        pressed = await chat.press(
            world.other_staff, await forged_button(chat, world.other_staff, data), "forged"
        )
        assert pressed.alert and "没有权限" in pressed.alert, data
    assert await db.count(Pairing) == 0 and await db.count(Exemplar) == 0


async def test_secretaries_cannot_record(chat, db, world) -> None:
    await chat.send(world.secretary_a, "/pending")
    for data in (f"spk:pairw{world.branch_a.id}:{world.branch_b.id}", "sba:pair"):
        pressed = await chat.press(
            world.secretary_a, await forged_button(chat, world.secretary_a, data), "forged"
        )
        assert pressed.alert and "失效" in pressed.alert  # not a staff button: the fallback's answer
    assert await db.count(Pairing) == 0
