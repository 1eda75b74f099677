"""/assess: item by item with notes, the score, and the change since the previous assessment."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from content.pack import get_pack
from handlers.assess import periods
from storage import checklists
from storage.models import Assessment, AssessmentItem, ItemStatus
from tests.e2e.forge import forged_button
from tests.e2e.harness import NOW

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

FIVE = ["venue_standard", "management", "stability", "activities", "regional"]


def test_periods_offered_are_this_quarter_month_and_year() -> None:
    assert periods(date(2026, 11, 28)) == ["2026-Q4", "2026-11", "2026"]
    assert periods(date(2027, 1, 2)) == ["2027-Q1", "2027-01", "2027"]


async def start(chat, who, checklist="“五化”目标", period="2026年第四季度"):
    menu = await chat.send(who, "/assess")
    picked = await chat.press(who, menu, checklist)
    return await chat.press(who, picked, period)


async def items(db) -> dict[str, tuple[ItemStatus, str | None]]:
    rows = await db.all(select(AssessmentItem))
    return {r.item_id: (r.status, r.note) for r in rows}


async def test_a_full_assessment_with_a_note_gives_the_score(chat, db, world) -> None:
    menu = await chat.send(world.secretary_a, "/assess")
    assert menu.buttons == ["“六有”目标", "“五化”目标", "“六抓六服务”"]
    picked = await chat.press(world.secretary_a, menu, "“五化”目标")
    assert picked.buttons == ["2026年第四季度", "2026年11月", "2026年全年"]
    view = await chat.press(world.secretary_a, picked, "2026年第四季度")
    assert "第 1/5 项" in view.text and "阵地标准化" in view.text
    assert view.buttons == ["✅ 已达到", "🔶 部分达到", "⭕ 尚未达到", "下一项 ➡️"]

    noted = await chat.send(world.secretary_a, "活动场所已统一挂牌")
    assert "备注已记下" in noted.text
    step = await chat.press(world.secretary_a, view, "✅ 已达到")
    assert "第 2/5 项" in step.text and "已答 1 项" in step.text
    assert await items(db) == {"venue_standard": (ItemStatus.MET, "活动场所已统一挂牌")}

    for answer in ("🔶 部分达到", "⭕ 尚未达到", "✅ 已达到", "✅ 已达到"):
        step = await chat.press(world.secretary_a, view, answer)
    assert "自评完成" in step.text and "70 分" in step.text and "第一次自评" in step.text
    a = await db.one(select(Assessment))
    assert (a.org_id, a.checklist_id, a.period, a.score) == (
        world.branch_a.id,
        "five_standards",
        "2026-Q4",
        70.0,
    )
    assert a.finished_at == NOW and a.assessor_id == world.secretary_a.id
    got = await items(db)
    assert [got[i][0] for i in FIVE] == [
        ItemStatus.MET,
        ItemStatus.PARTLY,
        ItemStatus.NOT_YET,
        ItemStatus.MET,
        ItemStatus.MET,
    ]
    assert got["management"][1] is None  # the note went with the first item only


async def test_the_result_compares_with_the_previous_assessment(chat, db, world, session) -> None:
    actor = await world.actor(session, world.secretary_a)
    earlier = NOW - timedelta(days=60)
    prev = await checklists.start_assessment(
        session, actor, world.branch_a.id, "five_standards", "2026-Q3", earlier, pack=PACK
    )
    for item in FIVE:
        await checklists.set_item(session, actor, prev.id, item, "met", pack=PACK)
    await checklists.finish(session, actor, prev.id, earlier, pack=PACK)
    await session.commit()

    menu = await chat.send(world.secretary_a, "/assess")
    assert "“五化”目标（上次 2026年第三季度：100 分）" in menu.buttons
    view = await start(chat, world.secretary_a, "“五化”目标")
    for answer in ("✅ 已达到", "✅ 已达到", "⭕ 尚未达到", "🔶 部分达到", "✅ 已达到"):
        step = await chat.press(world.secretary_a, view, answer)
    assert "70 分" in step.text and "比上次（2026年第三季度，100 分）：-30" in step.text
    assert "已达到 → 尚未达到" in step.text and "已达到 → 部分达到" in step.text
    assert step.text.count("→") == 2


async def test_an_assessment_left_half_way_is_resumed_and_answers_can_be_changed(chat, db, world) -> None:
    view = await start(chat, world.secretary_a)
    await chat.press(world.secretary_a, view, "✅ 已达到")
    await chat.press(world.secretary_a, view, "✅ 已达到")
    await chat.send(world.secretary_a, "/pending")  # leaves the conversation

    again = await start(chat, world.secretary_a)
    assert "第 3/5 项" in again.text and "已答 2 项" in again.text
    back = await chat.press(world.secretary_a, again, "⬅️ 上一项")
    assert "第 2/5 项" in back.text and "当前答案：已达到" in back.text
    await chat.press(world.secretary_a, back, "⭕ 尚未达到")
    assert (await items(db))["management"] == (ItemStatus.NOT_YET, None)
    assert await db.count(Assessment) == 1


async def test_finished_assessments_cannot_be_changed_or_repeated(chat, db, world) -> None:
    view = await start(chat, world.secretary_a)
    for _ in FIVE:
        await chat.press(world.secretary_a, view, "✅ 已达到")
    a = await db.one(select(Assessment))
    stale = await chat.press(
        world.secretary_a, await forged_button(chat, world.secretary_a, f"saa:{a.id}:0:not_yet"), "forged"
    )
    assert stale.alert and "已经完成" in stale.alert
    menu = await chat.send(world.secretary_a, "/assess")
    picked = await chat.press(world.secretary_a, menu, "“五化”目标")
    repeated = await chat.press(world.secretary_a, picked, "2026年第四季度")
    assert repeated.alert and "已经完成自评" in repeated.alert
    assert (await items(db))["venue_standard"][0] is ItemStatus.MET and await db.count(Assessment) == 1


async def test_a_long_note_is_explained_and_not_kept(chat, db, world) -> None:
    view = await start(chat, world.secretary_a)
    long = await chat.send(world.secretary_a, "备" * 501)
    assert "500" in long.text
    await chat.press(world.secretary_a, view, "✅ 已达到")
    assert (await items(db))["venue_standard"] == (ItemStatus.MET, None)


async def test_staff_assess_a_branch_of_their_subtree(chat, db, world) -> None:
    reply = await chat.send(world.staff, "/assess")
    picked = await chat.press(world.staff, reply, world.branch_b.name)
    menu = picked.sent[-1]
    assert world.branch_b.name in menu.text
    period = await chat.press(world.staff, menu, "“六有”目标")
    view = await chat.press(world.staff, period, "2026年11月")
    assert "第 1/6 项" in view.text
    a = await db.one(select(Assessment))
    assert (a.org_id, a.period) == (world.branch_b.id, "2026-11")


@pytest.mark.parametrize("kind", ["start", "answer"])
async def test_outside_the_scope_is_refused(chat, db, world, session, kind) -> None:
    if kind == "start":
        data = f"sat:{world.branch_a.id}:six_haves:2026-Q4"
    else:
        actor = await world.actor(session, world.secretary_a)
        a = await checklists.start_assessment(
            session, actor, world.branch_a.id, "six_haves", "2026-Q4", NOW, pack=PACK
        )
        await session.commit()
        data = f"saa:{a.id}:0:met"
    await chat.send(world.other_staff, "/assess")
    pressed = await chat.press(
        world.other_staff, await forged_button(chat, world.other_staff, data), "forged"
    )
    assert pressed.alert and "没有权限" in pressed.alert
    assert await db.count(AssessmentItem) == 0
    assert await db.count(Assessment) == (1 if kind == "answer" else 0)
