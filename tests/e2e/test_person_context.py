"""What every update does with the person writing (bot/middlewares.PersonContext): they are
active now (at most once per ten minutes), and reachable again if they had blocked the bot."""

from __future__ import annotations

from datetime import timedelta

from storage.models import Person
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
