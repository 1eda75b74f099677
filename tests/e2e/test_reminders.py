"""/reminders: the branch's rules, turning one off and on, changing its time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from content.i18n import texts
from handlers.reminders import TimeError, describe_cron, parse_clock, with_time
from storage.models import ReminderKind, ReminderRule
from tests.e2e.forge import forged_button

_ = texts("zh")


@pytest.mark.parametrize(
    ("text", "clock"),
    [("9:30", (9, 30)), ("09:05", (9, 5)), ("21：00", (21, 0)), ("9点", (9, 0)), ("9点半", (9, 30))],
)
def test_parse_clock(text: str, clock: tuple[int, int]) -> None:
    assert parse_clock(text) == clock


@pytest.mark.parametrize("text", ["25:00", "9:75", "明早", "9:3"])
def test_parse_clock_refuses(text: str) -> None:
    with pytest.raises(TimeError):
        parse_clock(text)


def test_cron_lines_read_as_people_say_them() -> None:
    assert describe_cron(_, "0 10 25 * *") == "每月 25 日 10:00"
    assert describe_cron(_, "0 9 * * 1") == "每周一 09:00"
    assert describe_cron(_, "30 8 * * *") == "每天 08:30"
    assert describe_cron(_, "0 9 1-7 * 1") == "按 <code>0 9 1-7 * 1</code>"
    assert with_time("0 10 25 * *", 8, 30) == "30 8 25 * *"


async def rules(db, org) -> dict[ReminderKind, ReminderRule]:
    return {r.kind: r for r in await db.all(select(ReminderRule).where(ReminderRule.org_id == org.id))}


async def test_first_look_creates_the_default_rules(chat, db, world) -> None:
    reply = await chat.send(world.secretary_a, "/reminders")
    text = reply.text
    assert "每月登记提醒 — 每月 25 日 10:00 — ✅ 开启（下次 2026-12-25 10:00）" in text
    assert "每周工作提要 — 每周一 09:00" in text and "承诺到期提醒 — 每天 09:00（提前 3 天）" in text
    assert [b["text"] for b in reply.message.buttons][:2] == ["⏸ 停用 1", "🕘 改时间 1"]
    got = await rules(db, world.branch_a)
    assert set(got) == set(ReminderKind) and all(r.enabled for r in got.values())
    await chat.send(world.secretary_a, "/reminders")
    assert await db.count(ReminderRule) == 4  # once


async def test_turning_a_rule_off_and_on(chat, db, world) -> None:
    listing = (await chat.send(world.secretary_a, "/reminders")).message
    off = await chat.press(world.secretary_a, listing, "⏸ 停用 2")
    assert off.alert == "已停用。" and "每周工作提要 — 每周一 09:00 — ⏸ 已停用" in off.edited[-1].text
    assert (await rules(db, world.branch_a))[ReminderKind.WEEKLY_DIGEST].enabled is False
    on = await chat.press(world.secretary_a, listing, "▶️ 启用 2")
    assert on.alert == "已启用。"
    rule = (await rules(db, world.branch_a))[ReminderKind.WEEKLY_DIGEST]
    assert rule.enabled and rule.next_due_at == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # Monday 9:00 local


async def test_changing_the_time_keeps_the_days(chat, db, world) -> None:
    listing = (await chat.send(world.secretary_a, "/reminders")).message
    asked = await chat.press(world.secretary_a, listing, "🕘 改时间 1")
    assert "每月 25 日 10:00" in asked.text
    bad = await chat.send(world.secretary_a, "25点")
    assert "9:30" in bad.text
    done = await chat.send(world.secretary_a, "8:30")
    assert "每月 25 日 08:30" in done.text and "2026-12-25 08:30" in done.text
    rule = (await rules(db, world.branch_a))[ReminderKind.MONTHLY_NUDGE]
    assert rule.cron == "30 8 25 * *" and rule.next_due_at == datetime(2026, 12, 25, 0, 30, tzinfo=UTC)
    assert "每月 25 日 08:30" in done.edited[-1].text  # the list is brought up to date


async def test_staff_pick_a_branch(chat, db, world) -> None:
    reply = await chat.send(world.staff, "/reminders")
    listing = await chat.press(world.staff, reply, world.branch_b.name)
    assert world.branch_b.name in listing.text
    assert len(await rules(db, world.branch_b)) == 4 and not await rules(db, world.branch_a)


async def test_rules_outside_the_scope_are_refused(chat, db, world) -> None:
    await chat.send(world.secretary_a, "/reminders")
    rule = (await rules(db, world.branch_a))[ReminderKind.MONTHLY_NUDGE]
    await chat.send(world.secretary_b, "/reminders")
    for data in (f"srt:{rule.id}:0", f"srh:{rule.id}", f"spk:reminders:{world.branch_a.id}"):
        pressed = await chat.press(
            world.secretary_b, await forged_button(chat, world.secretary_b, data), "forged"
        )
        assert pressed.alert and "没有权限" in pressed.alert, data
    assert (await rules(db, world.branch_a))[ReminderKind.MONTHLY_NUDGE].enabled is True
