"""Shared fixtures: a migrated database per test session (SQLite, or PostgreSQL when
TEST_DATABASE_URL is set), a clean set of tables per test, and a session to read and write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import bot  # noqa: F401  # first, as in `branchbot`: aiogram's types built on first use (bot/deferred_types.py)
from storage.db import make_engine, make_sessionmaker
from storage.migrate import upgrade
from tests import dbutil


@pytest.fixture(scope="session")
async def db_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    base = dbutil.pg_requested()
    if base is None:
        url = dbutil.sqlite_url(tmp_path_factory.mktemp("db"))
        await asyncio.to_thread(upgrade, url)
        yield url
        return
    try:
        url = await dbutil.create_pg_database(base)
    except Exception as e:  # any failure to reach PostgreSQL ends the run; never a skip
        pytest.exit(f"TEST_DATABASE_URL is set but PostgreSQL is unreachable: {type(e).__name__}: {e}", 3)
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        await dbutil.drop_pg_database(url, base)


@pytest.fixture(scope="session")
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
async def clean_db(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """Every test that touches the database starts from empty tables."""
    await dbutil.wipe(engine)
    yield engine


@pytest.fixture
async def session(
    clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as s:
        yield s


@pytest.fixture(scope="session")
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
async def world(session: AsyncSession):
    """A committed province: see tests/factories.World."""
    from tests.factories import make_world

    return await make_world(session)
