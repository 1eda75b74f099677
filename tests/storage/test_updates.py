"""The update's claim, alone and (PostgreSQL) read along with the person writing; the polling inbox."""

from __future__ import annotations

from sqlalchemy import func, select

from storage import people
from storage.db import utcnow
from storage.models import ConversationState, ProcessedUpdate
from storage.updates import (
    claim_update,
    claim_update_with_person,
    drop_inbound,
    pending_inbound,
    store_inbound,
)
from tests.dbutil import postgres_only

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
