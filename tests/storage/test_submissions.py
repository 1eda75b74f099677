"""Frozen submissions (storage/submissions.py): stored as sent, newest wins, hash checked,
changes named, scope kept, audited."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from storage import submissions
from storage.errors import Forbidden
from storage.models import AuditEntry

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
NOV = (date(2026, 11, 1), date(2026, 11, 30))


async def _freeze(session, actor, org_id, figures, data, now=NOW):
    return await submissions.freeze(
        session,
        actor,
        kind="branch_report",
        org_id=org_id,
        period_start=NOV[0],
        period_end=NOV[1],
        figures=figures,
        file_name="r.xlsx",
        data=data,
        now=now,
    )


async def test_frozen_as_sent_and_the_newest_counts(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    first = await _freeze(session, actor, world.branch_a.id, {"minutes": 60}, b"one")
    second = await _freeze(session, actor, world.branch_a.id, {"minutes": 90}, b"two")
    await session.commit()
    session.expunge_all()
    got = await submissions.latest(
        session, actor, kind="branch_report", org_id=world.branch_a.id, period_start=NOV[0], period_end=NOV[1]
    )
    assert got is not None and got.id == second.id != first.id
    assert (got.figures, got.file_bytes, got.submitted_by_id) == (
        {"minutes": 90},
        b"two",
        world.secretary_a.id,
    )
    assert got.sha256 == submissions.sha256(b"two") and submissions.intact(got)
    got.file_bytes = b"tampered"
    assert not submissions.intact(got)
    other_period = await submissions.latest(
        session,
        actor,
        kind="branch_report",
        org_id=world.branch_a.id,
        period_start=NOV[0],
        period_end=date(2026, 11, 29),
    )
    assert other_period is None


async def test_each_freeze_is_audited_with_ids_only(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    row = await _freeze(session, actor, world.branch_a.id, {"minutes": 60}, b"one")
    audit = (await session.scalars(select(AuditEntry))).all()
    assert [(a.action, a.via, a.actor_id, a.org_id, a.detail["submission_id"]) for a in audit] == [
        ("branch_report.submit", "bot", world.secretary_a.id, world.branch_a.id, row.id)
    ]


async def test_outside_the_scope_is_forbidden(session, world) -> None:
    actor = await world.actor(session, world.secretary_b)
    with pytest.raises(Forbidden):
        await _freeze(session, actor, world.branch_a.id, {}, b"")
    with pytest.raises(Forbidden):
        await submissions.latest(
            session,
            actor,
            kind="branch_report",
            org_id=world.branch_a.id,
            period_start=NOV[0],
            period_end=NOV[1],
        )


def test_changes_name_the_leaves_that_moved() -> None:
    then = {"minutes": 60, "commitments": {"made": 2, "overdue": 1}, "by": {"a": 1}, "today": "x"}
    now = {"minutes": 90, "commitments": {"made": 2, "overdue": 0}, "by": {"b": 5}, "today": "y"}
    got = [(c.key, c.then, c.now) for c in submissions.changes(then, now, ignore=["today"])]
    assert got == [
        ("minutes", 60, 90),
        ("commitments.overdue", 1, 0),
        ("by.a", 1, None),
        ("by.b", None, 5),
    ]
    assert submissions.changes(then, dict(then)) == []
