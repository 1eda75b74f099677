"""The migration stairway: every revision upgrades, downgrades and upgrades again, on the
backend under test (SQLite by default, PostgreSQL with TEST_DATABASE_URL), and the migrated
schema matches the models exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from storage.db import Base, make_engine
from storage.migrate import alembic_config, downgrade, upgrade
from tests import dbutil


@pytest.fixture
async def empty_db_url(tmp_path) -> AsyncIterator[str]:
    async with dbutil.empty_database(tmp_path) as url:
        yield url


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


async def test_stairway_up_down_up_every_revision(empty_db_url: str) -> None:
    revs = _revisions()
    assert revs, "no migrations found"
    for i, rev in enumerate(revs):
        previous = revs[i - 1] if i else "base"
        await asyncio.to_thread(upgrade, empty_db_url, rev)
        await asyncio.to_thread(downgrade, empty_db_url, previous)
        await asyncio.to_thread(upgrade, empty_db_url, rev)


async def test_migrated_schema_matches_models(empty_db_url: str) -> None:
    await asyncio.to_thread(upgrade, empty_db_url, "head")
    engine = make_engine(empty_db_url)
    try:
        async with engine.connect() as conn:

            def diff(sync_conn):
                ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return compare_metadata(ctx, Base.metadata)

            changes = await conn.run_sync(diff)
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert changes == []
    assert set(Base.metadata.tables) <= tables


async def test_downgrade_to_base_leaves_no_tables(empty_db_url: str) -> None:
    await asyncio.to_thread(upgrade, empty_db_url, "head")
    await asyncio.to_thread(downgrade, empty_db_url, "base")
    engine = make_engine(empty_db_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert tables <= {"alembic_version"}


async def test_models_create_the_pairing_index_partial(empty_db_url: str) -> None:
    """The models hand the partial index's condition to the backend when it creates the index
    (storage/models._partial_index), not in the constructor, which would import PostgreSQL's
    dialect into every SQLite process: created from the models, the index is partial all the same."""
    engine = make_engine(empty_db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            if conn.dialect.name == "sqlite":
                sql = "SELECT sql FROM sqlite_master WHERE name = 'ix_service_entries_pairing'"
            else:
                sql = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_service_entries_pairing'"
            definition = (await conn.execute(text(sql))).scalar_one()
    finally:
        await engine.dispose()
    assert "WHERE pairing_id IS NOT NULL" in definition.replace("(", "").replace(")", "")
