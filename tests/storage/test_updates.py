"""The update's claim, alone and (PostgreSQL) read along with the person writing; the polling inbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

from sqlalchemy import event, func, select

from storage import people, service_log
from storage.db import utcnow
from storage.models import ConversationState, EntryStatus, ProcessedUpdate
from storage.updates import (
    claim_update,
    claim_update_with_person,
    drop_inbound,
    pending_inbound,
    store_inbound,
)
from tests.dbutil import postgres_only
from tests.factories import add_entry

BOT = 42


async def test_an_update_is_claimed_once(session) -> None:
    assert await claim_update(session, BOT, 1)
    assert not await claim_update(session, BOT, 1)
    assert await claim_update(session, BOT, 2)


def _polled(update_id: int, text: str) -> dict[str, object]:
    return {"update_id": update_id, "message": {"message_id": update_id, "text": text, "chat": {"id": 7}}}


async def test_polled_updates_are_kept_once_in_order_until_dropped(session) -> None:
    """The inbox keeps batches of any size with one statement; a second copy of an update (the
    same poll answered again) is ignored, within a batch and across batches."""
    await store_inbound(session, BOT, [_polled(3, "三"), _polled(1, "一")], utcnow())
    await store_inbound(session, BOT, [_polled(1, "again"), _polled(2, "二"), _polled(2, "again")], utcnow())
    await store_inbound(session, BOT + 1, [_polled(1, "another bot")], utcnow())
    await store_inbound(session, BOT, [], utcnow())
    await session.commit()
    kept = await pending_inbound(session, BOT)
    assert [(u["update_id"], u["message"]["text"]) for u in kept] == [(1, "一"), (2, "二"), (3, "三")]
    await drop_inbound(session, BOT, [1, 3])
    await session.commit()
    assert [u["update_id"] for u in await pending_inbound(session, BOT)] == [2]
    assert [u["update_id"] for u in await pending_inbound(session, BOT + 1)] == [1]


@postgres_only("SQLite has no INSERT inside WITH")
async def test_claim_with_person_reads_what_chat_person_reads_and_claims_once(session, world) -> None:
    member = world.member_a
    session.add(ConversationState(key="k:1", state="LogQuick:action", data={"wid": 7}))
    await session.commit()
    alone = await people.chat_person(session, member.telegram_id, state_key="k:1")
    assert alone is not None and alone.conversation == ("LogQuick:action", {"wid": 7})

    taken, found = await claim_update_with_person(session, BOT, 10, member.telegram_id, "k:1")
    assert taken and found == alone
    taken, found = await claim_update_with_person(session, BOT, 11, member.telegram_id, None)
    assert taken and found == await people.chat_person(session, member.telegram_id)
    # A stranger: the update is claimed all the same, with nobody.
    assert await claim_update_with_person(session, BOT, 12, 999_999_999, "k:2") == (True, None)
    # Taken already: not taken again, and no person handed on.
    assert await claim_update_with_person(session, BOT, 10, member.telegram_id, "k:1") == (False, None)
    assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 3


@postgres_only("SQLite has no INSERT inside WITH")
async def test_claim_with_person_reads_the_day_totals_asked_for(session, world) -> None:
    """The totals read along with the claim are what `day_room` would count: the person's own,
    rejected entries left out, only the days asked for, several entries of a day added up."""
    today = date(2026, 11, 20)
    a, b = world.member_a, world.member_b
    for person, org, day, minutes, status in [
        (a, world.branch_a, today, 60, EntryStatus.PENDING),
        (a, world.branch_a, today, 90, EntryStatus.APPROVED),
        (a, world.branch_a, today, 600, EntryStatus.REJECTED),
        (a, world.branch_a, today - timedelta(days=1), 30, EntryStatus.PENDING),
        (a, world.branch_a, today - timedelta(days=3), 45, EntryStatus.PENDING),  # before the days
        (b, world.branch_b, today, 120, EntryStatus.PENDING),  # someone else
    ]:
        add_entry(session, person, org, day=day, minutes=minutes, status=status)
    await session.commit()
    days = (today - timedelta(days=2), today + timedelta(days=1))
    taken, found = await claim_update_with_person(session, BOT, 20, a.telegram_id, None, days)
    assert taken and found == await people.chat_person(session, a.telegram_id)
    expected = {d: await service_log.day_room(session, a.id, d) for d in (today, today - timedelta(days=1))}
    assert expected == {today: 24 * 60 - 150, today - timedelta(days=1): 24 * 60 - 30}
    for n, (day, left) in enumerate(expected.items()):
        taken, _ = await claim_update_with_person(session, BOT, 21 + n, a.telegram_id, None, days)
        with statements(session) as seen:
            assert taken and await service_log.day_room(session, a.id, day, read_ahead=True) == left
        assert seen == []  # read with the claim: no query of its own
    # A day asked for with nothing on it; someone with no entries at all.
    await claim_update_with_person(session, BOT, 40, a.telegram_id, None, days)
    with statements(session) as seen:
        assert (
            await service_log.day_room(session, a.id, today + timedelta(days=1), read_ahead=True) == 24 * 60
        )
    assert seen == []
    await claim_update_with_person(session, BOT, 41, world.member_a2.telegram_id, "k:3", days)
    with statements(session) as seen:  # json_agg of no rows is NULL: all the room, still no query
        assert await service_log.day_room(session, world.member_a2.id, today, read_ahead=True) == 24 * 60
    assert seen == []
    # Without days asked for, nothing is read ahead: the check asks the database.
    await claim_update_with_person(session, BOT, 42, a.telegram_id, None)
    with statements(session) as seen:
        assert await service_log.day_room(session, a.id, today, read_ahead=True) == expected[today]
    assert len(seen) == 1


@contextmanager
def statements(session) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    engine = session.bind.sync_engine if hasattr(session.bind, "sync_engine") else session.bind
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)
