"""Dashboard aggregates: approved hours per month and the latest checklist scores, scoped."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from storage import dashboard
from storage.errors import Forbidden
from storage.models import Assessment, EntryStatus, ServiceEntry

TODAY = date(2026, 11, 28)


def _entry(person, org, day: date, minutes: int, status=EntryStatus.APPROVED) -> ServiceEntry:
    return ServiceEntry(
        person_id=person.id,
        org_id=org.id,
        day=day,
        minutes=minutes,
        action="volunteer",
        description="服务",
        status=status,
    )


async def test_monthly_minutes_cover_the_subtree_and_every_month(session, world) -> None:
    session.add_all(
        [
            _entry(world.member_a, world.branch_a, date(2026, 11, 2), 60),
            _entry(world.member_a2, world.branch_a, date(2026, 11, 20), 30),
            _entry(world.member_b, world.branch_b, date(2026, 9, 1), 120),
            _entry(world.member_b, world.branch_b, date(2026, 9, 3), 45, EntryStatus.PENDING),
            _entry(world.member_c, world.branch_c, date(2026, 11, 5), 600),  # other committee
            _entry(world.member_a, world.branch_a, date(2025, 11, 30), 90),  # thirteen months back
        ]
    )
    await session.flush()
    actor = await world.actor(session, world.staff)
    months = await dashboard.monthly_minutes(session, actor, world.committee.id, today=TODAY)
    assert months[0].label == "2025-12" and months[-1].label == "2026-11"
    assert len(months) == 12
    by = {m.label: m.minutes for m in months}
    assert by["2026-11"] == 90 and by["2026-09"] == 120 and sum(by.values()) == 210
    assert months[-1].entries == 2 and months[-1].hours == 1.5
    sec = await world.actor(session, world.secretary_a)
    mine = await dashboard.monthly_minutes(session, sec, world.branch_a.id, today=TODAY, months=3)
    assert [m.minutes for m in mine] == [0, 0, 90]


async def test_monthly_minutes_refuse_an_org_outside_the_scope(session, world) -> None:
    with pytest.raises(Forbidden):
        await dashboard.monthly_minutes(
            session, await world.actor(session, world.staff), world.other_committee.id, today=TODAY
        )


async def test_latest_checklist_scores_pick_the_newest_finished_per_branch(session, world) -> None:
    def a(org, cl, period, score, day):
        at = datetime(2026, day // 100, day % 100, tzinfo=UTC) if day else None
        return Assessment(org_id=org.id, checklist_id=cl, period=period, score=score, finished_at=at)

    session.add_all(
        [
            a(world.branch_a, "six_haves", "2026-Q2", 50.0, 601),
            a(world.branch_a, "six_haves", "2026-Q3", 75.0, 901),
            a(world.branch_a, "six_haves", "2026-Q4", None, None),  # still in progress
            a(world.branch_a, "five_standards", "2026", 60.0, 1001),
            a(world.branch_b, "six_haves", "2026", 90.0, 1101),
            a(world.branch_c, "six_haves", "2026", 10.0, 1101),
        ]
    )
    await session.flush()
    rows = await dashboard.latest_checklist_scores(
        session, await world.actor(session, world.staff), world.committee.id
    )
    got = {(r.org_id, r.checklist_id): (r.period, r.score) for r in rows}
    assert got == {
        (world.branch_a.id, "six_haves"): ("2026-Q3", 75.0),
        (world.branch_a.id, "five_standards"): ("2026", 60.0),
        (world.branch_b.id, "six_haves"): ("2026", 90.0),
    }


async def test_checklist_averages_use_each_branchs_latest(session, world) -> None:
    at = datetime(2026, 10, 1, tzinfo=UTC)
    later = datetime(2026, 11, 1, tzinfo=UTC)
    session.add_all(
        [
            Assessment(
                org_id=world.branch_a.id,
                checklist_id="six_haves",
                period="2026-Q3",
                score=20.0,
                finished_at=at,
            ),
            Assessment(
                org_id=world.branch_a.id,
                checklist_id="six_haves",
                period="2026-Q4",
                score=70.0,
                finished_at=later,
            ),
            Assessment(
                org_id=world.branch_b.id, checklist_id="six_haves", period="2026", score=90.0, finished_at=at
            ),
            Assessment(
                org_id=world.branch_c.id, checklist_id="six_haves", period="2026", score=0.0, finished_at=at
            ),
        ]
    )
    await session.flush()
    rows = await dashboard.checklist_averages(
        session, await world.actor(session, world.staff), world.committee.id
    )
    assert [(r.checklist_id, r.average, r.branches) for r in rows] == [("six_haves", 80.0, 2)]


async def test_commitment_states_are_today_s_state_of_the_year_s_commitments(session, world) -> None:
    from storage.models import Commitment, CommitmentStatus

    S = CommitmentStatus
    today = date(2026, 11, 20)
    made = datetime(2026, 3, 1, tzinfo=UTC)  # made long ago: still in force this year

    def c(org, status, deadline):
        session.add(
            Commitment(
                person_id=world.member_a.id,
                org_id=org.id,
                text="承诺",
                status=status,
                deadline=deadline,
                created_at=made,
            )
        )

    c(world.branch_a, S.MADE, date(2026, 12, 1))  # in progress
    c(world.branch_a, S.MADE, date(2026, 11, 1))  # overdue
    c(world.branch_b, S.REPORTED, date(2026, 11, 1))
    c(world.branch_b, S.EVALUATED, date(2026, 6, 1))
    c(world.branch_a, S.WITHDRAWN, date(2026, 12, 1))  # never
    c(world.branch_a, S.EVALUATED, date(2025, 12, 1))  # last year's
    c(world.branch_c, S.MADE, date(2026, 12, 1))  # another committee
    await session.flush()
    staff = await world.actor(session, world.staff)
    got = await dashboard.commitment_states(
        session, staff, world.committee.id, date_from=date(2026, 1, 1), today=today
    )
    assert got == dashboard.CommitmentStates(in_progress=1, overdue=1, reported=1, evaluated=1)
    assert got.total == 4
