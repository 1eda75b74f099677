"""Portable column behaviour: UTC-aware datetimes round-trip on both backends; naive ones are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from storage.models import Membership, Org, OrgKind, Role
from tests.dbutil import sqlite_only


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
