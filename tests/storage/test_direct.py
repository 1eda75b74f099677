"""Statements run straight on the driver (storage/direct.py) and the store's session
(storage/db.StoreSession): the same rows as SQLAlchemy gives, in the session's transaction,
errors as SQLAlchemy raises them."""

from __future__ import annotations

import gc
import weakref
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import bindparam, event, exc, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.transient import is_transient_db_error
from storage.db import BEFORE_COMMIT, StoreSession
from storage.direct import Direct, fetch
from storage.models import ConversationState, EntryStatus, Person, ProcessedUpdate, ServiceEntry
from tests.dbutil import postgres_only

# Every kind of conversion on the per-update path: an enum, a date, a UTC datetime, JSON, a
# boolean, a text, and an enum bound in the statement itself (not a parameter).
_ENTRIES = (
    select(
        ServiceEntry.id,
        ServiceEntry.status,
        ServiceEntry.day,
        ServiceEntry.created_at,
        Person.nudges_paused,
        Person.name,
        ConversationState.data,
    )
    .join(Person, Person.id == ServiceEntry.person_id)
    .outerjoin(ConversationState, ConversationState.key == bindparam("key"))
    .where(ServiceEntry.person_id == bindparam("person_id"), ServiceEntry.status != EntryStatus.REJECTED)
    .order_by(ServiceEntry.id)
)
_DIRECT_ENTRIES = Direct(_ENTRIES)


async def _entries(session: AsyncSession, world, n: int) -> None:
    for i in range(n):
        session.add(
            ServiceEntry(
                person_id=world.member_a.id,
                org_id=world.branch_a.id,
                day=date(2026, 11, 1 + i),
                minutes=60,
                action="volunteer",
                description=f"服务{i}",
                status=EntryStatus.PENDING if i % 2 else EntryStatus.APPROVED,
            )
        )
    session.add(ConversationState(key="k:1", state="LogQuick:action", data={"wid": 7, "名": "张"}))
    await session.commit()


async def test_rows_are_what_sqlalchemy_gives(session: AsyncSession, world) -> None:
    await _entries(session, world, 3)
    params = {"person_id": world.member_a.id, "key": "k:1"}
    expected = [tuple(r) for r in (await session.execute(_ENTRIES, params)).all()]
    got = await fetch(session, _DIRECT_ENTRIES, params)
    assert [tuple(r) for r in got] == expected and len(expected) == 3
    first = got[0]
    assert first.status is EntryStatus.APPROVED and first.data == {"wid": 7, "名": "张"}
    assert first.created_at.tzinfo is not None and first.created_at.utcoffset().total_seconds() == 0
    assert isinstance(first.day, date) and first.nudges_paused is False


async def test_it_runs_in_the_sessions_transaction(session: AsyncSession) -> None:
    claim = Direct(
        insert(ProcessedUpdate).values(
            bot_id=bindparam("bot_id"), update_id=bindparam("update_id"), processed_at=bindparam("at")
        )
    )
    assert await fetch(session, claim, {"bot_id": 1, "update_id": 5, "at": datetime.now(UTC)}) == []
    assert await session.scalar(select(ProcessedUpdate.update_id)) == 5  # seen by the session
    await session.rollback()
    assert await session.scalar(select(ProcessedUpdate.update_id)) is None  # and gone with it
    await fetch(session, claim, {"bot_id": 1, "update_id": 6, "at": datetime.now(UTC)})
    await session.commit()
    assert await session.scalar(select(ProcessedUpdate.update_id)) == 6


async def test_a_violated_constraint_is_sqlalchemys_integrity_error(session: AsyncSession) -> None:
    claim = Direct(
        insert(ProcessedUpdate).values(
            bot_id=bindparam("bot_id"), update_id=bindparam("update_id"), processed_at=bindparam("at")
        )
    )
    params = {"bot_id": 1, "update_id": 5, "at": datetime.now(UTC)}
    await fetch(session, claim, params)
    with pytest.raises(exc.IntegrityError) as raised:
        await fetch(session, claim, params)
    assert not raised.value.connection_invalidated
    await session.rollback()
    await fetch(session, claim, params)  # the session goes on after its rollback
    await session.commit()


async def test_watchers_of_the_statements_see_it(session: AsyncSession, clean_db: AsyncEngine) -> None:
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    event.listen(clean_db.sync_engine, "before_cursor_execute", note)
    try:
        await fetch(session, _DIRECT_ENTRIES, {"person_id": 1, "key": "k"})
    finally:
        event.remove(clean_db.sync_engine, "before_cursor_execute", note)
    assert any("service_entries" in s for s in seen)


@postgres_only("SQLite has no server connection to lose")
async def test_a_lost_connection_is_transient_and_never_handed_out_again(session: AsyncSession) -> None:
    pid = (await fetch(session, Direct(select(func.pg_backend_pid())), {}))[0][0]
    # Another connection ends this one's server process, as a restart or a crashed backend would.
    async with AsyncSession(session.bind) as other:
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with pytest.raises(exc.DBAPIError) as raised:
        await fetch(session, _DIRECT_ENTRIES, {"person_id": 1, "key": "k"})
    assert raised.value.connection_invalidated and is_transient_db_error(raised.value)
    await session.rollback()
    # The dead connection was dropped from the pool: every pooled connection is a live one.
    engine = session.bind
    held = [await engine.connect() for _ in range(engine.pool.checkedin())]
    try:
        for conn in held:
            assert await conn.scalar(select(func.pg_backend_pid())) != pid
    finally:
        for conn in held:
            await conn.close()


async def test_the_store_session_runs_its_steps_before_commit_and_forgets_them_on_rollback(
    session: AsyncSession,
) -> None:
    assert isinstance(session, StoreSession)
    ran: list[str] = []

    async def step(s: AsyncSession) -> None:
        ran.append("step")
        s.add(ProcessedUpdate(bot_id=1, update_id=9, processed_at=datetime.now(UTC)))

    session.info[BEFORE_COMMIT] = {"x": step}
    await session.rollback()
    await session.commit()
    assert ran == []
    session.info[BEFORE_COMMIT] = {"x": step}
    await session.commit()
    assert ran == ["step"]
    assert await session.scalar(select(ProcessedUpdate.update_id)) == 9  # written in that commit


async def test_a_commit_with_nothing_begun_sends_nothing(
    session: AsyncSession, clean_db: AsyncEngine
) -> None:
    commits: list[object] = []

    def note(conn) -> None:
        commits.append(conn)

    event.listen(clean_db.sync_engine, "commit", note)
    try:
        await session.commit()  # nothing begun
        assert commits == []
        session.add(ProcessedUpdate(bot_id=1, update_id=3, processed_at=datetime.now(UTC)))
        await session.commit()  # an object waiting to be flushed: a real commit
        assert len(commits) == 1
        await session.get(ProcessedUpdate, (1, 1))  # begins a transaction: committed as ever
        await session.commit()
        assert len(commits) == 2
    finally:
        event.remove(clean_db.sync_engine, "commit", note)


async def test_an_updates_session_is_freed_without_the_cyclic_collector(
    clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Regression: `storage.direct` kept the session's transaction in `session.info`, and the
    transaction refers to its session, so every update's session (with its connection,
    transactions and event dispatchers) lived on as cyclic garbage until the collector ran."""
    claim = Direct(
        insert(ProcessedUpdate).values(
            bot_id=bindparam("bot_id"), update_id=bindparam("update_id"), processed_at=bindparam("at")
        )
    )
    gc.collect()
    gc.disable()
    try:
        async with sessionmaker() as s:
            await fetch(s, claim, {"bot_id": 1, "update_id": 1, "at": datetime.now(UTC)})
            await fetch(s, claim, {"bot_id": 1, "update_id": 2, "at": datetime.now(UTC)})  # held
            assert s.info["direct_connection"][0]() is s.sync_session.get_transaction()
            await s.commit()
            gone = weakref.ref(s.sync_session)
        del s
        assert gone() is None, [type(r).__name__ for r in gc.get_referrers(gone())]
    finally:
        gc.enable()
    async with sessionmaker() as s:
        assert (
            await s.scalars(select(ProcessedUpdate.update_id).order_by(ProcessedUpdate.update_id))
        ).all() == [1, 2]
