"""SQLite through aiosqlite in one trip per statement (storage/sqlite_driver.py): what SQLAlchemy
reads from a cursor (rows, row count, last row id, errors) is what the stock adapter gives."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
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
    SMALL_COMMIT_BYTES,
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


HELD_FOR = 0.5  # seconds another writer holds the lock


@dataclass
class _Watch:
    ticks: int = 0  # the loop's 10 ms ticks while watched
    elapsed: float = 0.0


@contextlib.asynccontextmanager
async def _released_after(holder: sqlite3.Connection, seconds: float) -> AsyncIterator[_Watch]:
    """The other writer (`holder`) commits after `seconds`; meanwhile the loop's ticks are
    counted, to show it was never blocked."""
    loop = asyncio.get_running_loop()
    loop.call_later(seconds, holder.execute, "COMMIT")
    watch = _Watch()
    started = loop.time()

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.01)
            watch.ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        yield watch
    finally:
        ticker.cancel()
        watch.elapsed = loop.time() - started


async def test_waiting_for_the_write_lock_leaves_the_loop_running(engine) -> None:
    """Another writer holds the lock: the update's BEGIN IMMEDIATE waits for it in aiosqlite's
    thread while the loop goes on; the update's statements then run on the loop's thread."""
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(ProcessedUpdate.__table__.create)
        holder.execute("BEGIN IMMEDIATE")
        t = ProcessedUpdate.__table__
        count = Direct(select(func.count()).select_from(t))
        async with _released_after(holder, HELD_FOR) as watch:
            async with make_sessionmaker(engine)() as s:
                assert [tuple(r) for r in await fetch(s, count, {})] == [(0,)]
        assert watch.elapsed >= HELD_FOR  # the lock really was held that long
        assert watch.ticks >= 10  # and the loop kept going meanwhile (50 at most)
    finally:
        holder.close()


def _count_trips(monkeypatch: pytest.MonkeyPatch, seen: asyncio.Event | None = None) -> list[str]:
    """What goes to aiosqlite's thread: a statement's text, else the function's name (`seen`
    is set at each trip)."""
    trips: list[str] = []
    real = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):
        trips.append(args[1] if fn is run_in_thread else fn.__name__)
        if seen is not None:
            seen.set()
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
    loop's thread): one small commit in COMMITS_PER_CHECKPOINT + 1 goes to aiosqlite's thread
    and checkpoints the WAL there, and the next one, which may start the WAL over and fsync its
    header, goes there too. The WAL then stays small. A big transaction also commits there."""
    async with engine.begin() as conn:
        await conn.run_sync(ProcessedUpdate.__table__.create)
        await conn.exec_driver_sql("CREATE TABLE blobs (v TEXT)")
        assert (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar() == 0
    trips = _count_trips(monkeypatch)
    t = ProcessedUpdate.__table__
    sessions = make_sessionmaker(engine)
    rounds = 10
    for i in range(rounds * (COMMITS_PER_CHECKPOINT + 2)):
        async with sessions() as s:
            await s.execute(insert(t).values(bot_id=1, update_id=i))
            await s.commit()
    commits = [trip for trip in trips if not trip.startswith("INSERT")]
    assert commits == ["commit_and_checkpoint", "commit"] * rounds
    wal = f"{engine.url.database}-wal"
    # About 8 KB a commit: without the checkpoints, over 8 MB here.
    assert await asyncio.to_thread(os.path.getsize, wal) < 2 * 1024 * 1024
    trips.clear()
    async with sessions() as s:
        many = SMALL_COMMIT_ROWS + 1
        await s.execute(insert(t), [{"bot_id": 2, "update_id": i} for i in range(many)])
        await s.commit()
    assert trips[-1] == "commit_and_checkpoint"
    async with sessions() as s:  # the one after a checkpoint
        await s.execute(insert(t).values(bot_id=3, update_id=1))
        await s.commit()
    assert trips[-1] == "commit"
    trips.clear()
    async with sessions() as s:  # one row, but a big one (a photo kept as evidence)
        await s.execute(text("INSERT INTO blobs (v) VALUES (:v)"), {"v": "x" * (SMALL_COMMIT_BYTES + 1)})
        await s.commit()
    assert trips[-1] == "commit_and_checkpoint"
    async with sessions() as s:  # the one after that checkpoint
        await s.execute(insert(t).values(bot_id=3, update_id=2))
        await s.commit()
    trips.clear()
    # Counted in UTF-8 bytes, as stored: fewer characters than the limit, three bytes each.
    long_note = "社区环境整治" * (SMALL_COMMIT_BYTES // 12)
    assert len(long_note) < SMALL_COMMIT_BYTES < len(long_note.encode())
    async with sessions() as s:
        await s.execute(text("INSERT INTO blobs (v) VALUES (:v)"), {"v": long_note})
        await s.commit()
    assert trips[-1] == "commit_and_checkpoint"


async def test_outside_wal_mode_every_commit_goes_to_the_thread(monkeypatch) -> None:
    """An in-memory database has no WAL: a commit there could wait for readers, so none runs on
    the loop's thread."""
    eng = make_engine("sqlite+aiosqlite://")
    try:
        async with eng.begin() as conn:
            await conn.run_sync(ProcessedUpdate.__table__.create)
        trips = _count_trips(monkeypatch)
        async with make_sessionmaker(eng)() as s:
            await s.execute(insert(ProcessedUpdate.__table__).values(bot_id=1, update_id=1))
            await s.commit()
        assert trips[-1] == "commit"
    finally:
        await eng.dispose()


async def test_a_begin_cancelled_while_it_waits_leaves_the_connection_sound(tmp_path, monkeypatch) -> None:
    """An update cancelled while its BEGIN waits in aiosqlite's thread for another writer: that
    BEGIN still runs there once the lock is free. The connection goes back to the pool only
    after a rollback queued behind it, so the next update neither blocks the loop on it nor
    finds a transaction already open."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'cancel.db'}", busy_timeout=5)
    async with engine.begin() as conn:
        await conn.run_sync(ProcessedUpdate.__table__.create)
    tripped = asyncio.Event()
    trips = _count_trips(monkeypatch, tripped)
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    sessions = make_sessionmaker(engine)
    count = Direct(select(func.count()).select_from(ProcessedUpdate.__table__))
    try:
        holder.execute("BEGIN IMMEDIATE")

        async def update() -> None:
            async with sessions() as s:
                await fetch(s, count, {})

        cancelled = asyncio.create_task(update())
        async with asyncio.timeout(10):
            await tripped.wait()
        assert trips == ["BEGIN IMMEDIATE"]  # waiting in the thread now
        cancelled.cancel()
        async with _released_after(holder, HELD_FOR) as watch:
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            async with sessions() as s:
                assert [tuple(r) for r in await fetch(s, count, {})] == [(0,)]
                await s.commit()
        assert watch.elapsed >= HELD_FOR  # the lock was held until then
        assert watch.ticks >= 10  # and the loop kept going meanwhile
        # The cancelled BEGIN's transaction was rolled back in the thread; the next update's
        # BEGIN and commit ran on the loop's thread.
        assert trips == ["BEGIN IMMEDIATE", "rollback"]
    finally:
        holder.close()
        await engine.dispose()
