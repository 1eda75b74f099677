"""Test databases: one per test session, created and dropped by the session itself.

SQLite by default (a temporary file); PostgreSQL when TEST_DATABASE_URL is set. The shared
`test` database is only used to create and drop our own database, never to hold tables, so
concurrent runs cannot collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.db import Base

PG_ADMIN_DB = "test"


def pg_requested() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    return url or None


# Tests that only make sense on one backend are collected on both and skipped with the reason on
# the other, so a plain `make test` lists them as skipped instead of leaving them out unseen.
def postgres_only(why: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        pg_requested() is None, reason=f"PostgreSQL only: {why} (set TEST_DATABASE_URL to run it)"
    )


def sqlite_only(why: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        pg_requested() is not None, reason=f"SQLite only: {why} (runs without TEST_DATABASE_URL)"
    )


async def _admin(base_url: str) -> asyncpg.Connection:
    """A connection to the server's admin database (the one given, or `test`), to create and
    drop ours."""
    url = make_url(base_url)
    return await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=url.database or PG_ADMIN_DB,
        timeout=10,
    )


async def create_pg_database(base_url: str) -> str:
    """Create a fresh database next to the given one and return its URL. Raises if unreachable."""
    name = f"branchbot_t_{uuid.uuid4().hex[:12]}"
    conn = await _admin(base_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(db_url: str, base_url: str) -> None:
    name = make_url(db_url).database
    conn = await _admin(base_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def sqlite_url(tmp_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_dir / 'test.db'}"


@asynccontextmanager
async def empty_database(tmp_dir: Path) -> AsyncIterator[str]:
    """The URL of a database of its own with no tables: a SQLite file in `tmp_dir`, or (with
    TEST_DATABASE_URL) a PostgreSQL database created here and dropped afterwards."""
    base = pg_requested()
    if base is None:
        yield sqlite_url(tmp_dir)
        return
    url = await create_pg_database(base)
    try:
        yield url
    finally:
        await drop_pg_database(url, base)


async def wipe(engine: AsyncEngine) -> None:
    """Empty every table between tests (faster than recreating the schema)."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(
                text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            )
        else:
            # orgs refer to themselves with ON DELETE RESTRICT: cut the tree first.
            await conn.execute(text("UPDATE orgs SET parent_id = NULL"))
            for t in tables:
                await conn.execute(text(f'DELETE FROM "{t}"'))
            if await _has_sqlite_sequence(conn):
                await conn.execute(text("DELETE FROM sqlite_sequence"))


async def _has_sqlite_sequence(conn: AsyncConnection) -> bool:
    r = await conn.execute(text("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'"))
    return r.first() is not None


async def forget_bot_in_redis(redis_url: str, bot_id: int) -> int:
    """Delete what a bot's processes kept in Redis (conversation state, the chats' order, the
    gate's windows): the Redis server is shared by every run on this machine and keeps keys
    without an expiry for ever. Returns how many keys went."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    gone = 0
    try:
        for pattern in (f"fsm:{bot_id}:*", f"branchbot:order:{bot_id}:*", f"{{branchbot:gate:{bot_id}}}*"):
            keys = [k async for k in client.scan_iter(match=pattern, count=1000)]
            for i in range(0, len(keys), 500):
                gone += await client.delete(*keys[i : i + 500])
    finally:
        await client.aclose()
    return gone
