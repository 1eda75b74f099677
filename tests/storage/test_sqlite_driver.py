"""SQLite through aiosqlite in one trip per statement (storage/sqlite_driver.py): what SQLAlchemy
reads from a cursor (rows, row count, last row id, errors) is what the stock adapter gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from storage.db import make_engine
from storage.sqlite_driver import OneTripConnection, OneTripCursor


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
