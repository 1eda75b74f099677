"""What every update does with the person writing (bot/middlewares.PersonContext): they are
active now (at most once per ten minutes), and reachable again if they had blocked the bot."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event
from sqlalchemy.engine import Engine

from storage.models import Person
from tests.dbutil import pg_requested
from tests.e2e.harness import NOW


async def test_writing_unblocks_and_marks_active(chat, world, session, db) -> None:
    person = await session.get(Person, world.member_a.id)
    person.blocked_at = NOW - timedelta(days=3)
    person.last_active_at = None
    await session.commit()

    await chat.send(world.member_a, "/my")

    async with await db.session() as s:
        seen = await s.get(Person, world.member_a.id)
    assert seen.blocked_at is None
    assert seen.last_active_at == NOW


async def test_activity_is_written_at_most_every_ten_minutes(chat, world, session, db) -> None:
    recent, old = NOW - timedelta(minutes=5), NOW - timedelta(minutes=11)
    (await session.get(Person, world.member_a.id)).last_active_at = recent
    (await session.get(Person, world.member_b.id)).last_active_at = old
    await session.commit()

    await chat.send(world.member_a, "/my")
    await chat.send(world.member_b, "/my")

    async with await db.session() as s:
        assert (await s.get(Person, world.member_a.id)).last_active_at == recent
        assert (await s.get(Person, world.member_b.id)).last_active_at == NOW
        assert (await s.get(Person, world.member_b.id)).blocked_at is None


async def test_the_quick_form_reads_the_conversation_with_the_person_and_writes_it_once(chat, world) -> None:
    """Per update: the person's query brings the conversation state along (no read of its own),
    and the form's step writes it in one statement at commit. On PostgreSQL the update's claim
    is in the same statement as the person's query."""
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", note)
    try:
        reply = await chat.send(world.member_a, "/log 1 今天 社区志愿服务")
    finally:
        event.remove(Engine, "before_cursor_execute", note)
    assert reply.buttons  # the actions to pick from
    on_states = [s.split()[0] for s in seen if "conversation_states" in s]
    # The person's query (joined), then the upsert.
    assert on_states == (["WITH", "INSERT"] if pg_requested() else ["SELECT", "INSERT"])
    assert any("FROM people" in s and "conversation_states" in s for s in seen)
    claims = [s.split()[0] for s in seen if "INSERT INTO processed_updates" in s]
    assert claims == (["WITH"] if pg_requested() else ["INSERT"])
    # The day's room: read in the person's query (with the claim on PostgreSQL), not on its own.
    day_totals = [s for s in seen if "service_entries" in s]
    assert len(day_totals) == 1 and "FROM people" in day_totals[0]
