"""The DingTalk bridge's store: its people (one id each, for good) and the frames it acked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import dingtalk as dt
from storage.models import DingTalkFrame

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def ids(*candidates: int):
    return lambda _dingtalk_id, attempt: candidates[attempt]


async def test_a_person_keeps_the_first_id_and_name_and_language_follow_dingtalk(session) -> None:
    first = await dt.remember(session, "staff1", "张三", "zh", NOW, ids(101))
    await session.commit()
    again = await dt.remember(session, "staff1", "张三丰", "en", NOW + timedelta(days=1), ids(999))
    await session.commit()
    assert (
        (again.user_id, again.name, again.language_code)
        == (first.user_id, "张三丰", "en")
        == (101, "张三丰", "en")
    )
    assert again.first_seen_at == NOW and again.last_seen_at == NOW + timedelta(days=1)


async def test_a_taken_id_goes_to_the_next_candidate(session) -> None:
    await dt.remember(session, "staff1", "张三", "zh", NOW, ids(101))
    other = await dt.remember(session, "staff2", "李四", "zh", NOW, ids(101, 102))
    await session.commit()
    assert other.user_id == 102
    assert [(p.dingtalk_id, p.user_id) for p in await dt.people(session)] == [
        ("staff1", 101),
        ("staff2", 102),
    ]


async def test_a_frame_is_kept_once_waits_until_confirmed_and_the_newest_id_stays(session) -> None:
    assert await dt.keep_frame(session, "m1", "t", {"a": 1}, NOW)
    assert not await dt.keep_frame(session, "m1", "t", {"a": 1}, NOW)  # a redelivery
    assert await dt.keep_frame(session, "m2", "t", {"a": 2}, NOW)
    assert await dt.keep_frame(session, "m3", "t", {"a": 3}, NOW)
    await dt.became(session, "m1", 1000)
    await dt.became(session, "m2", 1001)
    await dt.became(session, "m3", None)  # made no update (a press on a gone card): done at once
    await session.commit()
    assert [f.message_id for f in await dt.waiting(session)] == ["m1", "m2"]
    await dt.confirmed(session, [1000, 1001])
    await session.commit()
    assert await dt.waiting(session) == []
    assert await dt.last_update_id(session) == 1001
    rows = (await session.execute(DingTalkFrame.__table__.select())).all()
    assert [(r.message_id, r.data) for r in rows] == [("m2", {})]  # the newest done row, without content


async def test_a_frame_that_could_not_become_an_update_is_forgotten(session) -> None:
    await dt.keep_frame(session, "m1", "t", {}, NOW)
    await dt.forget_frame(session, "m1")
    await session.commit()
    assert await dt.waiting(session) == []
    assert await dt.keep_frame(session, "m1", "t", {}, NOW)  # DingTalk's redelivery is taken


async def test_message_ids_are_reserved_in_blocks_that_never_overlap(session) -> None:
    await dt.remember(session, "staff1", "张三", "zh", NOW, ids(101))
    assert await dt.reserve_message_ids(session, "staff1", 100) == 1
    assert await dt.reserve_message_ids(session, "staff1", 100) == 101
    await session.commit()
    assert await dt.reserve_message_ids(session, "staff1", 10) == 201


async def test_cards_are_kept_updated_and_forgotten_when_old_or_deleted(session) -> None:
    await dt.remember(session, "staff1", "张三", "zh", NOW, ids(101))
    await dt.keep_card(session, "card1", "staff1", 5, {"text": "周五开会"}, NOW - timedelta(days=100))
    await dt.keep_card(session, "card2", "staff1", 6, {"text": "请审核"}, NOW - timedelta(days=1))
    await dt.keep_card(session, "card3", "staff1", 7, {"text": "已登记"}, NOW)
    await dt.keep_card(session, "card2", "staff1", 6, {"text": "已通过"}, NOW)  # the bot edited it
    await dt.forget_card(session, "card3")
    await session.commit()
    since = NOW - timedelta(days=90)
    assert [(c.out_track_id, c.message) for c in await dt.cards(session, since)] == [
        ("card2", {"text": "已通过"})
    ]
    await dt.forget_cards(session, since)
    await session.commit()
    assert [c.out_track_id for c in await dt.cards(session, NOW - timedelta(days=1000))] == ["card2"]


async def test_plain_messages_and_menu_cards_are_kept_like_cards(session) -> None:
    await dt.remember(session, "staff1", "张三", "zh", NOW, ids(101))
    await dt.keep_plain(session, "pqk1", "staff1", 5, {"text": "旧的"}, NOW - timedelta(days=100))
    await dt.keep_plain(session, "pqk2", "staff1", 6, {"text": "会议地点另行通知"}, NOW)
    await dt.keep_plain(session, "pqk3", "staff1", 7, {"text": "已撤回的"}, NOW)
    await dt.forget_plain(session, "pqk3")  # the bot deleted it: recalled
    await dt.keep_card(session, "menu1", "staff1", 0, {"commands": ["log", "my"]}, NOW, kind="menu")
    await session.commit()
    since = NOW - timedelta(days=90)
    assert [(p.process_query_key, p.message_id, p.message) for p in await dt.plain(session, since)] == [
        ("pqk2", 6, {"text": "会议地点另行通知"})
    ]
    await dt.forget_plain_before(session, since)
    await session.commit()
    assert [p.process_query_key for p in await dt.plain(session, NOW - timedelta(days=1000))] == ["pqk2"]
    assert [(c.kind, c.message) for c in await dt.cards(session, since)] == [
        ("menu", {"commands": ["log", "my"]})
    ]


async def test_outgoing_changes_are_kept_in_order_until_passed_on(session) -> None:
    await dt.remember(session, "staff1", "张三", "zh", NOW, ids(101))
    await dt.remember(session, "staff2", "李四", "zh", NOW, ids(102))
    first = await dt.keep_outgoing(
        session,
        [("staff1", "sent", {"message_id": 5}, None), ("staff2", "sent", {"message_id": 5}, b"png")],
        NOW,
    )
    second = await dt.keep_outgoing(session, [("staff1", "edited", {"message_id": 5}, None)], NOW)
    await session.commit()
    assert first[0] < first[1] < second[0]
    kept = await dt.outgoing(session)
    assert [(o.dingtalk_id, o.kind, o.media) for o in kept] == [
        ("staff1", "sent", None),
        ("staff2", "sent", b"png"),
        ("staff1", "edited", None),
    ]
    await dt.passed_on(session, first[0])
    await session.commit()
    assert [o.id for o in await dt.outgoing(session)] == [first[1], second[0]]
