"""Notices: who receives them, who may send them, idempotent send, acknowledgement, counts,
nudges and scheduled release."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from storage import notices, outbox
from storage.errors import Forbidden, Invalid, NotFound, Refused
from storage.models import Audience, Delivery, DeliveryStatus, Membership, Notice, NoticeStatus, Person, Role
from tests.factories import make_person

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


async def _send(
    session, world, who, org, audience=Audience.BRANCH_MEMBERS, text="本周五下午开展主题党日活动。", **kw
):
    actor = await world.actor(session, who)
    n = await notices.create_notice(session, actor, org.id, audience, text, now=NOW, **kw)
    await notices.send_notice(session, actor, n.id, now=NOW)
    return n


async def _recipients(session, notice_id: int) -> set[int]:
    rows = await session.scalars(
        select(Delivery.person_id).where(Delivery.notice_id == notice_id, Delivery.kind == "notice")
    )
    return set(rows)


async def _deliver_all(session, notice_id: int) -> None:
    for d in await session.scalars(select(Delivery).where(Delivery.notice_id == notice_id)):
        await outbox.mark_sent(session, d.id, 1000 + d.id, NOW)


async def test_branch_notice_reaches_joined_consented_reachable_members_only(session, world) -> None:
    a = world.branch_a
    blocked = await make_person(session, "已屏蔽", a)
    blocked.blocked_at = NOW
    erased = await make_person(session, "已删除", a)
    erased.erased_at = NOW
    await make_person(session, "未同意", a, consent=False)
    roster = await make_person(session, "未加入", a)
    roster.telegram_id = None
    await make_person(session, "他支部", world.branch_b)
    await session.flush()
    n = await _send(session, world, world.secretary_a, a)
    # The sender follows the counts instead of receiving their own notice.
    assert await _recipients(session, n.id) == {world.member_a.id, world.member_a2.id}


async def test_staff_notice_to_branch_members_includes_the_secretary(session, world) -> None:
    n = await _send(session, world, world.staff, world.branch_a)
    assert await _recipients(session, n.id) == {world.secretary_a.id, world.member_a.id, world.member_a2.id}


async def test_subtree_audiences(session, world) -> None:
    w = world
    secs = await _send(session, w, w.staff, w.committee, Audience.SUBTREE_SECRETARIES)
    assert await _recipients(session, secs.id) == {w.secretary_a.id, w.secretary_b.id}
    everyone = await _send(session, w, w.staff, w.committee, Audience.SUBTREE_ALL, text="全体党员通知")
    assert await _recipients(session, everyone.id) == {
        w.secretary_a.id,
        w.secretary_b.id,
        w.member_a.id,
        w.member_a2.id,
        w.member_b.id,
    }
    province = await _send(session, w, w.admin, w.province, Audience.SUBTREE_SECRETARIES, text="全省")
    assert await _recipients(session, province.id) == {w.secretary_a.id, w.secretary_b.id, w.secretary_c.id}


async def test_a_person_in_two_branches_gets_one_delivery(session, world) -> None:
    session.add(Membership(person_id=world.member_a.id, org_id=world.branch_b.id, role=Role.MEMBER))
    await session.flush()
    n = await _send(session, world, world.staff, world.committee, Audience.SUBTREE_ALL)
    count = await session.scalar(
        select(func.count()).where(Delivery.notice_id == n.id, Delivery.person_id == world.member_a.id)
    )
    assert count == 1


@pytest.mark.parametrize(
    ("who", "org", "audience", "outcome"),
    [
        ("secretary_a", "branch_a", Audience.BRANCH_MEMBERS, None),
        ("secretary_a", "branch_b", Audience.BRANCH_MEMBERS, Forbidden),
        ("secretary_a", "branch_a", Audience.SUBTREE_ALL, Forbidden),
        ("secretary_a", "committee", Audience.SUBTREE_SECRETARIES, Forbidden),
        ("member_a", "branch_a", Audience.BRANCH_MEMBERS, Forbidden),
        ("staff", "branch_a", Audience.BRANCH_MEMBERS, None),
        ("staff", "committee", Audience.SUBTREE_ALL, None),
        ("staff", "branch_c", Audience.BRANCH_MEMBERS, Forbidden),
        ("staff", "other_committee", Audience.SUBTREE_SECRETARIES, Forbidden),
        ("staff", "province", Audience.SUBTREE_ALL, Forbidden),
        ("other_staff", "committee", Audience.SUBTREE_ALL, Forbidden),
        ("admin", "branch_c", Audience.BRANCH_MEMBERS, None),
        ("admin", "province", Audience.SUBTREE_ALL, None),
        ("staff", "committee", Audience.BRANCH_MEMBERS, Refused),
    ],
)
async def test_who_may_send_where(session, world, who, org, audience, outcome) -> None:
    actor = await world.actor(session, getattr(world, who))
    target = getattr(world, org)
    if outcome is None:
        n = await notices.create_notice(session, actor, target.id, audience, "通知", now=NOW)
        assert n.status is NoticeStatus.DRAFT and n.sender_id == actor.person_id
        return
    with pytest.raises(outcome) as info:
        await notices.create_notice(session, actor, target.id, audience, "通知", now=NOW)
    assert type(info.value) is outcome
    assert await session.scalar(select(func.count()).select_from(Notice)) == 0


async def test_a_secretary_cannot_send_or_read_another_branchs_notice(session, world) -> None:
    n = await _send(session, world, world.secretary_b, world.branch_b)
    other = await world.actor(session, world.secretary_a)
    for op in (notices.send_notice, notices.nudge):
        with pytest.raises(Forbidden):
            await op(session, other, n.id, now=NOW)
    for op in (notices.notice_stats, notices.unacknowledged):
        with pytest.raises(Forbidden):
            await op(session, other, n.id)
    staff = await world.actor(session, world.staff)
    assert (await notices.notice_stats(session, staff, n.id)).total == 1


async def test_same_source_creates_one_notice_and_sending_twice_enqueues_once(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    first = await notices.create_notice(
        session, actor, world.branch_a.id, "branch_members", "x", now=NOW, source="9:1"
    )
    again = await notices.create_notice(
        session, actor, world.branch_a.id, "branch_members", "x", now=NOW, source="9:1"
    )
    assert first.id == again.id
    assert await notices.send_notice(session, actor, first.id, now=NOW) == 2
    assert await notices.send_notice(session, actor, first.id, now=NOW + timedelta(minutes=1)) == 0
    assert await session.scalar(select(func.count()).select_from(Delivery)) == 2
    assert first.status is NoticeStatus.SENDING and first.sent_at == NOW


async def test_payload_is_in_the_recipients_language_with_an_ack_button_for_its_own_row(
    session, world
) -> None:
    world.member_a2.locale = "en"
    await session.flush()
    n = await _send(session, world, world.secretary_a, world.branch_a, text="周五 <开会> & 学习")
    rows = {d.person_id: d for d in await session.scalars(select(Delivery).where(Delivery.notice_id == n.id))}
    zh, en = rows[world.member_a.id], rows[world.member_a2.id]
    for d, label in ((zh, "已阅"), (en, "Acknowledge")):
        assert d.payload["method"] == "sendMessage" and d.payload["parse_mode"] == "HTML"
        assert "周五 &lt;开会&gt; &amp; 学习" in d.payload["text"]
        assert world.branch_a.name in d.payload["text"]
        (button,) = d.payload["reply_markup"]["inline_keyboard"][0]
        assert label in button["text"]
        assert button["callback_data"] == f"ack:{d.id}"
        assert len(button["callback_data"].encode()) <= 64
        assert d.chat_id == (await session.get(Person, d.person_id)).telegram_id
        assert d.dedupe_key == f"notice:{n.id}:{d.person_id}"


async def test_photo_notice_uses_send_photo_with_a_caption(session, world) -> None:
    n = await _send(
        session, world, world.secretary_a, world.branch_a, file_id="AgAD-photo", file_kind="photo"
    )
    d = await session.scalar(select(Delivery).where(Delivery.notice_id == n.id).limit(1))
    assert d.payload["method"] == "sendPhoto" and d.payload["photo"] == "AgAD-photo"
    assert d.payload["caption"] == "本周五下午开展主题党日活动。" and "text" not in d.payload


@pytest.mark.parametrize(
    ("text", "extra", "key"),
    [
        ("", {}, "notices.text_length"),
        ("   ", {}, "notices.text_length"),
        ("长" * 4001, {}, "notices.text_length"),
        ("长" * 1025, {"file_id": "F", "file_kind": "document"}, "notices.caption_length"),
        ("x", {"file_id": "F"}, "error.invalid"),
        ("x", {"file_id": "F", "file_kind": "video"}, "error.invalid"),
    ],
)
async def test_bad_notice_input_is_refused_before_writing(session, world, text, extra, key) -> None:
    actor = await world.actor(session, world.secretary_a)
    with pytest.raises(Invalid) as info:
        await notices.create_notice(
            session, actor, world.branch_a.id, "branch_members", text, now=NOW, **extra
        )
    assert info.value.key == key
    assert await session.scalar(select(func.count()).select_from(Notice)) == 0


async def test_longest_allowed_texts_are_accepted(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    await notices.create_notice(session, actor, world.branch_a.id, "branch_members", "长" * 4000, now=NOW)
    await notices.create_notice(
        session, actor, world.branch_a.id, "branch_members", "长" * 1024, "F", "document", now=NOW
    )


async def test_only_the_recipient_can_acknowledge_and_only_once(session, world) -> None:
    n = await _send(session, world, world.secretary_a, world.branch_a)
    await _deliver_all(session, n.id)
    mine = await session.scalar(
        select(Delivery).where(Delivery.notice_id == n.id, Delivery.person_id == world.member_a.id)
    )
    with pytest.raises(NotFound):
        await notices.acknowledge(session, world.member_a2.telegram_id, mine.id, NOW)
    with pytest.raises(NotFound):
        await notices.acknowledge(session, world.secretary_a.telegram_id, mine.id, NOW)
    with pytest.raises(NotFound):
        await notices.acknowledge(session, world.member_a.telegram_id, mine.id + 999, NOW)
    assert await notices.acknowledge(session, world.member_a.telegram_id, mine.id, NOW) is True
    assert (
        await notices.acknowledge(session, world.member_a.telegram_id, mine.id, NOW + timedelta(hours=1))
        is False
    )
    await session.refresh(mine)
    assert mine.acknowledged_at == NOW


async def test_stats_count_each_status_and_acknowledgements(session, world) -> None:
    extra = [await make_person(session, f"党员{i}", world.branch_a) for i in range(3)]
    n = await _send(session, world, world.secretary_a, world.branch_a)
    rows = {d.person_id: d for d in await session.scalars(select(Delivery).where(Delivery.notice_id == n.id))}
    await outbox.mark_sent(session, rows[world.member_a.id].id, 1, NOW)
    await outbox.mark_sent(session, rows[world.member_a2.id].id, 2, NOW)
    await outbox.mark_blocked(session, rows[extra[0].id].id, NOW)
    await outbox.mark_failed(session, rows[extra[1].id].id, "bad")
    await notices.acknowledge(session, world.member_a.telegram_id, rows[world.member_a.id].id, NOW)
    actor = await world.actor(session, world.secretary_a)
    stats = await notices.notice_stats(session, actor, n.id)
    assert stats == notices.NoticeStats(total=5, pending=1, sent=2, failed=1, blocked=1, acknowledged=1)
    unacked = await notices.unacknowledged(session, actor, n.id)
    assert {u.person_id: u.status for u in unacked} == {
        world.member_a2.id: DeliveryStatus.SENT,
        extra[0].id: DeliveryStatus.BLOCKED,
        extra[1].id: DeliveryStatus.FAILED,
        extra[2].id: DeliveryStatus.PENDING,
    }


async def test_nudge_goes_only_to_those_sent_and_not_acknowledged_once_a_day(session, world) -> None:
    late = await make_person(session, "未送达", world.branch_a)
    n = await _send(session, world, world.secretary_a, world.branch_a)
    rows = {d.person_id: d for d in await session.scalars(select(Delivery).where(Delivery.notice_id == n.id))}
    await outbox.mark_sent(session, rows[world.member_a.id].id, 1, NOW)
    await outbox.mark_sent(session, rows[world.member_a2.id].id, 2, NOW)
    await notices.acknowledge(session, world.member_a.telegram_id, rows[world.member_a.id].id, NOW)
    actor = await world.actor(session, world.secretary_a)
    assert await notices.nudge(session, actor, n.id, now=NOW + timedelta(hours=3)) == 1
    assert await notices.nudge(session, actor, n.id, now=NOW + timedelta(hours=4)) == 0
    nudges = list(await session.scalars(select(Delivery).where(Delivery.kind == "nudge")))
    assert [d.person_id for d in nudges] == [world.member_a2.id]
    (button,) = nudges[0].payload["reply_markup"]["inline_keyboard"][0]
    assert button["callback_data"] == f"ack:{rows[world.member_a2.id].id}"  # acknowledges the notice itself
    assert late.id not in {d.person_id for d in nudges}
    assert await notices.nudge(session, actor, n.id, now=NOW + timedelta(days=1)) == 1
    # A nudge is not a delivery of the notice: the counts are unchanged.
    assert (await notices.notice_stats(session, actor, n.id)).total == 3


async def test_nudge_before_sending_is_refused(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    n = await notices.create_notice(session, actor, world.branch_a.id, "branch_members", "x", now=NOW)
    with pytest.raises(Refused) as info:
        await notices.nudge(session, actor, n.id, now=NOW)
    assert info.value.key == "notices.not_sent"


async def test_scheduled_notice_is_released_once_when_due(session, world) -> None:
    at = NOW + timedelta(hours=2)
    n = await _send(session, world, world.secretary_a, world.branch_a, scheduled_at=at)
    assert n.status is NoticeStatus.SCHEDULED
    assert await session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert await notices.release_scheduled(session, at - timedelta(seconds=1)) == []
    assert await notices.release_scheduled(session, at) == [n.id]
    assert n.status is NoticeStatus.SENDING and n.sent_at == at
    assert await _recipients(session, n.id) == {world.member_a.id, world.member_a2.id}
    assert await notices.release_scheduled(session, at + timedelta(hours=1)) == []
    assert await session.scalar(select(func.count()).select_from(Delivery)) == 2


async def test_a_past_schedule_means_now(session, world) -> None:
    n = await _send(
        session, world, world.secretary_a, world.branch_a, scheduled_at=NOW - timedelta(minutes=5)
    )
    assert n.scheduled_at is None and n.status is NoticeStatus.SENDING


async def test_cancelled_notice_is_never_sent(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    n = await notices.create_notice(
        session,
        actor,
        world.branch_a.id,
        "branch_members",
        "x",
        scheduled_at=NOW + timedelta(days=1),
        now=NOW,
    )
    await notices.send_notice(session, actor, n.id, now=NOW)
    await notices.cancel_notice(session, actor, n.id)
    assert await notices.release_scheduled(session, NOW + timedelta(days=2)) == []
    with pytest.raises(Refused):
        await notices.send_notice(session, actor, n.id, now=NOW)
    sent = await _send(session, world, world.secretary_a, world.branch_a)
    with pytest.raises(Refused) as info:
        await notices.cancel_notice(session, actor, sent.id)
    assert info.value.key == "notices.cannot_cancel"


async def test_done_when_nothing_is_pending(session, world) -> None:
    n = await _send(session, world, world.secretary_a, world.branch_a)
    assert await notices.finish_if_done(session, n.id, NOW) is False
    await _deliver_all(session, n.id)
    assert await notices.finish_if_done(session, n.id, NOW) is True
    await session.refresh(n)
    assert n.status is NoticeStatus.DONE
    assert await notices.finish_if_done(session, n.id, NOW) is False


async def test_a_notice_with_no_recipients_is_done_at_once(session, world) -> None:
    world.member_c.blocked_at = NOW
    await session.flush()
    n = await _send(session, world, world.secretary_c, world.branch_c)
    await session.refresh(n)
    assert n.status is NoticeStatus.DONE
    assert await _recipients(session, n.id) == set()


async def test_list_notices_is_scoped_with_acknowledged_ratios(session, world) -> None:
    a = await _send(session, world, world.secretary_a, world.branch_a, text="A")
    b = await _send(session, world, world.secretary_b, world.branch_b, text="B")
    c = await _send(session, world, world.staff, world.committee, Audience.SUBTREE_SECRETARIES, text="C")
    await _deliver_all(session, a.id)
    first = await session.scalar(
        select(Delivery).where(Delivery.notice_id == a.id).order_by(Delivery.id).limit(1)
    )
    tg = (await session.get(Person, first.person_id)).telegram_id
    await notices.acknowledge(session, tg, first.id, NOW)

    sec = await world.actor(session, world.secretary_a)
    mine = await notices.list_notices(session, sec)
    assert [(x.notice.id, x.recipients, x.acknowledged, x.ratio) for x in mine] == [(a.id, 2, 1, 0.5)]
    staff = await world.actor(session, world.staff)
    assert {x.notice.id for x in await notices.list_notices(session, staff)} == {a.id, b.id, c.id}
    assert [x.notice.id for x in await notices.list_notices(session, staff, world.branch_b.id)] == [b.id]
    other = await world.actor(session, world.other_staff)
    assert await notices.list_notices(session, other) == []
    with pytest.raises(Forbidden):
        await notices.list_notices(session, sec, world.branch_b.id)


async def test_recipient_sees_own_notices_with_acknowledged_flags(session, world) -> None:
    a = await _send(session, world, world.secretary_a, world.branch_a, text="第一条")
    b = await _send(session, world, world.staff, world.committee, Audience.SUBTREE_ALL, text="第二条")
    await _deliver_all(session, a.id)
    await _deliver_all(session, b.id)
    d = await session.scalar(
        select(Delivery).where(Delivery.notice_id == a.id, Delivery.person_id == world.member_a.id)
    )
    await notices.acknowledge(session, world.member_a.telegram_id, d.id, NOW)
    got = await notices.recipient_notices(session, world.member_a)
    assert [(r.notice_id, r.text, r.acknowledged) for r in got] == [
        (b.id, "第二条", False),
        (a.id, "第一条", True),
    ]
    assert await notices.recipient_notices(session, world.member_c) == []
