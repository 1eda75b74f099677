"""/my: this month's and this year's approved hours by action, what is pending or rejected, a chart."""

from __future__ import annotations

from datetime import UTC, date, datetime

from storage.models import EntryStatus, ServiceEntry
from tests.e2e.harness import plain


def entry(person, org, day: date, minutes: int, action: str, status: EntryStatus, reason: str | None = None):
    return ServiceEntry(
        person_id=person.id,
        org_id=org.id,
        day=day,
        minutes=minutes,
        action=action,
        description="服务",
        status=status,
        reason=reason,
        reviewed_at=None if status is EntryStatus.PENDING else datetime(2026, 11, 27, tzinfo=UTC),
    )


async def test_summary_and_chart(chat, session, world, emulator) -> None:
    a, branch = world.member_a, world.branch_a
    session.add_all(
        [
            entry(a, branch, date(2026, 11, 3), 90, "volunteer", EntryStatus.APPROVED),
            entry(a, branch, date(2026, 11, 20), 150, "welfare_day", EntryStatus.APPROVED),
            entry(a, branch, date(2026, 3, 8), 240, "volunteer", EntryStatus.APPROVED),
            entry(a, branch, date(2025, 12, 30), 600, "volunteer", EntryStatus.APPROVED),  # last year
            entry(a, branch, date(2026, 11, 25), 60, "integrity", EntryStatus.PENDING),
            entry(a, branch, date(2026, 11, 26), 30, "integrity", EntryStatus.PENDING),
            entry(a, branch, date(2026, 10, 2), 120, "branch_project", EntryStatus.REJECTED, "<缺少佐证>"),
            # Someone else's hours never show.
            entry(world.member_a2, branch, date(2026, 11, 3), 500, "volunteer", EntryStatus.APPROVED),
        ]
    )
    await session.commit()

    reply = await chat.send(a, "/my")
    assert len(reply.sent) == 2
    text = reply.texts[0]
    assert "本月已审核：4.0 小时" in text
    assert "党员公益日：2.5 小时" in text and "党员志愿服务行动：1.5 小时" in text
    assert "2026 年已审核：8.0 小时" in text and "党员志愿服务行动：5.5 小时" in text
    assert "待审核：2 条，共 1.5 小时" in text
    assert "未通过审核：1 条" in text and "2026-10-02" in text and "<缺少佐证>" in text
    assert "8.3" not in text  # the other member's 500 minutes are not added in

    photo = reply.sent[1]
    assert photo.photo is not None and "2026" in (photo.caption or "")
    data = emulator.files.get(photo.photo.file_id).data
    assert data.startswith(b"\x89PNG") and int.from_bytes(data[16:20], "big") == 800


async def test_nothing_yet_suggests_logging_and_sends_no_chart(chat, world) -> None:
    reply = await chat.send(world.member_b, "/my")
    assert len(reply.sent) == 1
    assert "/log" in reply.text and "（暂无）" in reply.text


async def test_english(chat, session, world) -> None:
    world.member_b.locale = "en"
    session.add(world.member_b)
    session.add(
        entry(world.member_b, world.branch_b, date(2026, 11, 2), 45, "volunteer", EntryStatus.APPROVED)
    )
    await session.commit()
    reply = await chat.send(world.member_b, "/my")
    assert "Approved this month: 0.8 h" in plain(reply.texts[0])
    assert "Approved service hours per month in 2026" in (reply.sent[1].caption or "")


async def test_someone_who_has_not_joined_is_told_how_to_join(chat, world) -> None:
    reply = await chat.send(chat.user("路人"), "/my")
    assert "邀请链接" in reply.text
