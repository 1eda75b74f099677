"""Portable column behaviour: UTC-aware datetimes round-trip on both backends; naive ones are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from storage.models import Membership, Org, OrgKind, Role
from tests.dbutil import pg_requested, postgres_only, sqlite_only


async def test_aware_datetime_round_trips_as_utc(session) -> None:
    shanghai = timezone(timedelta(hours=8))
    org = Org(
        name="省委", kind=OrgKind.PROVINCE, path="/", created_at=datetime(2026, 11, 20, 9, 0, tzinfo=shanghai)
    )
    session.add(org)
    await session.commit()
    session.expunge_all()
    got = await session.scalar(select(Org.created_at))
    assert got == datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    assert got.tzinfo is not None


async def test_naive_datetime_is_refused(session) -> None:
    session.add(Org(name="x", kind=OrgKind.PROVINCE, path="/", created_at=datetime(2026, 1, 1)))
    with pytest.raises(StatementError):
        await session.flush()


async def test_foreign_keys_are_enforced(session) -> None:
    session.add(Membership(person_id=999, org_id=999, role=Role.MEMBER))
    with pytest.raises(IntegrityError):
        await session.flush()


@sqlite_only("the WAL and busy-timeout pragmas")
async def test_sqlite_runs_with_wal_and_busy_timeout(session) -> None:
    assert (await session.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    assert (await session.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
    # make_engine's default; a test may pass a shorter busy_timeout (see tests/e2e/test_resilience.py)
    assert (await session.execute(text("PRAGMA busy_timeout"))).scalar() == 30000


async def test_a_database_error_does_not_carry_the_statements_values(session, world) -> None:
    """An error logged with its exception (the guard's log, a traceback) shows the statement but
    never its values: the engine hides parameters."""
    from storage.models import Person

    tg = world.member_a.telegram_id
    session.add(Person(name="病假条：住院三天", telegram_id=tg))
    with pytest.raises(IntegrityError) as e:
        await session.flush()
    await session.rollback()
    message = str(e.value)
    assert "INSERT INTO people" in message and "hidden" in message
    assert "病假条" not in message and str(tg) not in message


async def _backend_pid_then_killed(engine) -> int:
    """Use a pooled connection, give it back, then end its server process from outside the pool."""
    import asyncpg
    from sqlalchemy.engine import make_url

    async with engine.connect() as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    url = make_url(pg_requested())
    other = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database=url.database
    )
    try:
        # With a timeout, the call returns once the process has ended (true) or the time is up.
        assert await other.fetchval("SELECT pg_terminate_backend($1, 10000)", pid)
    finally:
        await other.close()
    return pid


@postgres_only("the idle connections' ping is PostgreSQL's pool")
async def test_a_pooled_connection_is_pinged_only_after_sitting_idle(monkeypatch) -> None:
    """No ping per checkout (three round trips on asyncpg); a connection idle for PING_IDLE_AFTER
    is pinged and replaced if its server process is gone, one in recent use fails as a lost
    connection (the update is retried, bot/transient.py) and the pool replaces it."""
    from bot.transient import is_transient_db_error
    from storage import db

    monkeypatch.setattr(db, "PING_IDLE_AFTER", 0.0)
    idle = db.make_engine(pg_requested(), pool_size=2)
    monkeypatch.setattr(db, "PING_IDLE_AFTER", 3600.0)
    busy = db.make_engine(pg_requested(), pool_size=2)
    try:
        killed = await _backend_pid_then_killed(idle)
        async with idle.connect() as conn:  # pinged, found dead, replaced: no error
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() != killed

        killed = await _backend_pid_then_killed(busy)
        with pytest.raises(Exception) as lost:
            async with busy.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert is_transient_db_error(lost.value)
        async with busy.connect() as conn:  # the pool has let the dead connection go
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() != killed
    finally:
        await idle.dispose()
        await busy.dispose()


@postgres_only("the pool of PostgreSQL connections")
async def test_the_pool_opens_no_connection_beyond_its_size(monkeypatch) -> None:
    """Connections given back stay open for the next update (an overflow connection would be
    opened and closed again under load); beyond the pool's size an update waits its turn."""
    from sqlalchemy import event
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from storage import db

    monkeypatch.setenv("DB_POOL_SIZE", "2")
    engine = db.make_engine(pg_requested(), pool_timeout=0.2)
    opened: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda conn, _record: opened.append(conn))
    try:
        async with engine.connect() as one, engine.connect() as two:
            await one.execute(text("SELECT 1"))
            await two.execute(text("SELECT 1"))
            with pytest.raises(PoolTimeout):
                async with engine.connect() as three:
                    await three.execute(text("SELECT 1"))
        for _ in range(3):
            async with engine.connect() as again:
                await again.execute(text("SELECT 1"))
        assert len(opened) == 2
    finally:
        await engine.dispose()


@sqlite_only("SQLite's write lock taken at BEGIN IMMEDIATE")
async def test_a_begin_that_finds_the_write_lock_taken_fails_as_an_outage(tmp_path) -> None:
    """BEGIN IMMEDIATE is sent on the driver's cursor (storage/db.py); when the lock stays taken
    past the busy timeout, it fails as SQLAlchemy's OperationalError, which the bot retries."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from bot.transient import is_transient_db_error
    from storage.db import make_engine, make_sessionmaker

    path = tmp_path / "locked.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}", busy_timeout=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        async with make_sessionmaker(engine)() as s:
            await s.execute(text("CREATE TABLE t (x INTEGER)"))
            await s.commit()
        holder.execute("BEGIN IMMEDIATE")
        async with make_sessionmaker(engine)() as s:
            with pytest.raises(OperationalError, match="locked") as raised:
                await s.execute(text("INSERT INTO t VALUES (1)"))
            assert is_transient_db_error(raised.value)
        holder.execute("ROLLBACK")
        async with make_sessionmaker(engine)() as s:
            await s.execute(text("INSERT INTO t VALUES (1)"))  # free again: it goes through
            await s.commit()
    finally:
        holder.close()
        await engine.dispose()
