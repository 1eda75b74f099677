"""SQLite through aiosqlite in one trip per statement (storage/sqlite_driver.py): what SQLAlchemy
reads from a cursor (rows, row count, last row id, errors) is what the stock adapter gives."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from storage.db import make_engine, make_sessionmaker
from storage.direct import Direct, fetch
from storage.models import ProcessedUpdate
from storage.sqlite_driver import (
    COMMITS_PER_CHECKPOINT,
    SMALL_COMMIT_ROWS,
    OneTripConnection,
    OneTripCursor,
    run_in_thread,
)


@pytest.fixture
async def engine(tmp_path: Path):
    eng = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'trip.db'}")
    yield eng
    await eng.dispose()


async def test_statements_run_through_the_one_trip_cursor(engine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.dbapi_connection, OneTripConnection)
        assert isinstance(raw.dbapi_connection.cursor(), OneTripCursor)


async def test_rows_counts_ids_and_errors(engine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
        first = await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert (first.rowcount, first.lastrowid) == (1, 1)
        many = await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}])
        assert many.rowcount == 2
        changed = await conn.execute(text("UPDATE t SET v = v || '!' WHERE id > 1"))
        assert changed.rowcount == 2
        rows = (await conn.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b!"), (3, "c!")]
        assert (await conn.execute(text("SELECT v FROM t WHERE id = 9"))).first() is None
        streamed = await conn.stream(text("SELECT v FROM t ORDER BY id"))  # server-side cursor
        assert [r[0] async for r in streamed] == ["a", "b!", "c!"]
    async with engine.connect() as conn:
        with pytest.raises(IntegrityError):
            await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))


async def test_the_updates_statements_run_on_the_loops_thread(engine) -> None:
    """`storage.direct` runs its short statements here, not through aiosqlite's thread
    (`run_here`); a statement through SQLAlchemy still makes the trip."""

    @event.listens_for(engine.sync_engine, "connect")
    def _thread_id(dbapi_conn, _record) -> None:
        # The thread the statement runs on, as SQLite calls this function there.
        dbapi_conn._connection._conn.create_function("thread_id", 0, threading.get_ident)

    direct = Direct(select(func.thread_id()))
    async with make_sessionmaker(engine)() as s:
        assert [tuple(r) for r in await fetch(s, direct, {})] == [(threading.get_ident(),)]
        through = (await s.execute(select(func.thread_id()))).scalar()
        assert through != threading.get_ident()


async def test_waiting_for_the_write_lock_leaves_the_loop_running(engine) -> None:
    """Another writer holds the lock: the update's BEGIN IMMEDIATE waits for it in aiosqlite's
    thread while the loop goes on; the update's statements then run on the loop's thread."""
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(ProcessedUpdate.__table__.create)
        holder.execute("BEGIN IMMEDIATE")
        loop = asyncio.get_running_loop()
        held_for = 0.5
        loop.call_later(held_for, holder.execute, "COMMIT")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        started = loop.time()
        t = ProcessedUpdate.__table__
        count = Direct(select(func.count()).select_from(t))
        async with make_sessionmaker(engine)() as s:
            assert [tuple(r) for r in await fetch(s, count, {})] == [(0,)]
            waited = loop.time() - started
        ticker.cancel()
        assert waited >= held_for  # the lock really was held that long
        assert ticks >= 10  # and the loop kept going meanwhile (50 at most)
    finally:
        holder.close()


def _count_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What goes to aiosqlite's thread: a statement's text, else the function's name."""
    trips: list[str] = []
    real = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):
        trips.append(args[1] if fn is run_in_thread else fn.__name__)
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return trips


async def test_an_updates_transaction_makes_no_trip_when_the_lock_is_free(engine, monkeypatch) -> None:
    """BEGIN IMMEDIATE runs on the loop's thread when no other writer holds the lock, a small
    transaction commits there too, and giving the connection back after the commit rolls
    nothing back: an update's transaction makes no trip to aiosqlite's thread."""
    async with engine.begin() as conn:
        await conn.run_sync(ProcessedUpdate.__table__.create)
    trips = _count_trips(monkeypatch)
    t = ProcessedUpdate.__table__
    count = Direct(select(func.count()).select_from(t))
    async with make_sessionmaker(engine)() as s:
        assert [tuple(r) for r in await fetch(s, count, {})] == [(0,)]
        await s.commit()
    assert trips == []
    # A transaction left open is still rolled back when the connection goes back to the pool.
    async with make_sessionmaker(engine)() as s:
        await fetch(s, count, {})
    assert trips == ["rollback"]


async def test_big_commits_and_every_hundredth_go_to_the_thread_to_checkpoint(engine, monkeypatch) -> None:
    """SQLite's own checkpoint is off for this connection (it would run inside a commit on the
    loop's thread): a big transaction's commit, and one in every COMMITS_PER_CHECKPOINT + 1 small
    ones, go to aiosqlite's thread and checkpoint the WAL there. The WAL then stays small."""
    async with engine.begin() as conn:
        await conn.run_sync(ProcessedUpdate.__table__.create)
        assert (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar() == 0
    trips = _count_trips(monkeypatch)
    t = ProcessedUpdate.__table__
    sessions = make_sessionmaker(engine)
    rounds = 10
    for i in range(rounds * (COMMITS_PER_CHECKPOINT + 1)):
        async with sessions() as s:
            await s.execute(insert(t).values(bot_id=1, update_id=i))
            await s.commit()
    assert trips.count("commit_and_checkpoint") == rounds
    wal = f"{engine.url.database}-wal"
    # About 8 KB a commit: without the checkpoints, over 8 MB here.
    assert await asyncio.to_thread(os.path.getsize, wal) < 2 * 1024 * 1024
    trips.clear()
    async with sessions() as s:
        big = SMALL_COMMIT_ROWS + 1
        await s.execute(insert(t), [{"bot_id": 2, "update_id": i} for i in range(big)])
        await s.commit()
    assert trips.count("commit_and_checkpoint") == 1
