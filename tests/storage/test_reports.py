"""Reports: numbers checked against hand-computed expectations on a small hand-made province."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import delete, func, select

from content.pack import get_pack
from storage import reports as rp
from storage.errors import Forbidden, Invalid, Refused
from storage.models import (
    Assessment,
    Commitment,
    CommitmentStatus,
    EntryStatus,
    Membership,
    Pairing,
    Report,
    Role,
    ServiceEntry,
)
from tests.factories import add_entry, make_person

FROM, TO = date(2026, 11, 1), date(2026, 11, 30)
TODAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK
A, P, R = EntryStatus.APPROVED, EntryStatus.PENDING, EntryStatus.REJECTED
C = CommitmentStatus


@dataclass
class Scene:
    world: object
    ab: Pairing
    ca: Pairing
    former: object


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
async def scene(session, world) -> Scene:
    w = world
    ab = Pairing(strong_org_id=w.branch_a.id, weak_org_id=w.branch_b.id, started_on=date(2026, 1, 1))
    ca = Pairing(strong_org_id=w.branch_c.id, weak_org_id=w.branch_a.id, started_on=date(2026, 1, 1))
    session.add_all([ab, ca])
    former = await make_person(session, "已转出", w.branch_a)
    await session.flush()

    def e(person, org, day, minutes, action, status=A, pairing=None):
        add_entry(
            session,
            person,
            org,
            day=day,
            minutes=minutes,
            action=action,
            status=status,
            pairing_id=pairing.id if pairing else None,
        )

    d = date
    e(w.member_a, w.branch_a, d(2026, 11, 2), 60, "volunteer")
    e(w.member_a, w.branch_a, d(2026, 11, 5), 30, "integrity")
    e(w.member_a, w.branch_a, d(2026, 11, 6), 45, "volunteer", P)
    e(w.member_a, w.branch_a, d(2026, 10, 31), 100, "volunteer")  # before the period
    e(w.member_a, w.branch_a, d(2026, 12, 1), 100, "volunteer")  # after it
    e(w.member_a, w.branch_a, d(2026, 11, 7), 20, "volunteer", R)
    e(w.member_a2, w.branch_a, d(2026, 11, 10), 90, "welfare_day")
    e(former, w.branch_a, d(2026, 11, 9), 10, "volunteer")
    e(w.member_b, w.branch_b, d(2026, 11, 3), 120, "volunteer", pairing=ab)  # joint: counts for A too
    e(w.member_b, w.branch_b, d(2026, 11, 4), 15, "integrity")
    e(w.member_b, w.branch_b, d(2026, 11, 4), 33, "integrity", P, pairing=ab)  # pending: not for A
    e(w.member_c, w.branch_c, d(2026, 11, 3), 50, "volunteer")
    e(w.member_c, w.branch_c, d(2026, 11, 8), 40, "walk_with_you", pairing=ca)  # joint: counts for A too
    e(w.member_c, w.branch_c, d(2026, 11, 8), 7, "walk_with_you", pairing=ab)  # a pairing C is not in
    e(w.secretary_b, w.branch_b, d(2026, 11, 8), 25, "legacy_action")  # no longer in the pack

    def c(person, org, status, deadline, created, **kw):
        session.add(
            Commitment(
                person_id=person.id,
                org_id=org.id,
                text="承诺",
                status=status,
                deadline=deadline,
                created_at=created,
                **kw,
            )
        )

    # By the dates of their events (made, fulfilment reported, evaluated, withdrawn):
    c(w.member_a, w.branch_a, C.MADE, d(2026, 11, 10), _utc(2026, 10, 15))  # fell due in Nov: overdue
    c(w.member_a, w.branch_a, C.REPORTED, d(2026, 12, 31), _utc(2026, 11, 5), reported_at=_utc(2026, 11, 12))
    c(  # made and fulfilled before November, evaluated in it
        w.member_a,
        w.branch_a,
        C.EVALUATED,
        d(2026, 11, 15),
        _utc(2026, 9, 1),
        rating="good",
        reported_at=_utc(2026, 10, 20),
        evaluated_at=_utc(2026, 11, 3),
    )
    c(  # withdrawn before it fell due: never counted
        w.member_a, w.branch_a, C.WITHDRAWN, d(2026, 11, 15), _utc(2026, 9, 1), withdrawn_at=_utc(2026, 10, 1)
    )
    c(w.member_a, w.branch_a, C.MADE, d(2026, 10, 20), _utc(2026, 9, 1))  # fell due in October
    c(w.member_a, w.branch_a, C.MADE, d(2026, 12, 20), _utc(2026, 11, 30, 16, 30))  # 1 Dec in Xining
    c(w.member_a2, w.branch_a, C.MADE, d(2027, 1, 10), _utc(2026, 11, 30, 15, 59))  # 30 Nov in Xining
    c(w.secretary_a, w.branch_a, C.MADE, d(2026, 11, 30), _utc(2026, 11, 1), is_branch=True)
    c(
        w.member_b,
        w.branch_b,
        C.EVALUATED,
        d(2026, 11, 30),
        _utc(2026, 11, 2),
        rating="excellent",
        reported_at=_utc(2026, 11, 10),
        evaluated_at=_utc(2026, 11, 12),
    )

    def a(org, checklist, period, score, finished):
        session.add(
            Assessment(
                org_id=org.id, checklist_id=checklist, period=period, score=score, finished_at=finished
            )
        )

    a(w.branch_a, "six_haves", "2026-Q3", 50.0, _utc(2026, 10, 1))
    a(w.branch_a, "six_haves", "2026-Q4", 80.0, _utc(2026, 11, 15))
    a(w.branch_a, "five_standards", "2026", 60.0, _utc(2026, 11, 10))
    a(w.branch_a, "six_haves", "2026-11", 70.0, _utc(2026, 11, 19))
    a(w.branch_a, "six_grasps", "2026", None, None)  # unfinished

    # The former member left the branch after serving in it.
    await session.execute(delete(Membership).where(Membership.person_id == former.id))
    await session.flush()
    return Scene(w, ab, ca, former)


async def actor(session, scene, who: str):
    return await scene.world.actor(session, getattr(scene.world, who))


# --------------------------------------------------------------------------------------------
# Branch


async def test_branch_report_numbers(session, scene) -> None:
    w = scene.world
    got = await rp.branch_report(
        session, await actor(session, scene, "secretary_a"), w.branch_a.id, FROM, TO, TODAY, PACK
    )
    # Own approved: 60 + 30 (张三) + 90 (李四) + 10 (former member) = 190;
    # joint from partners: 120 (王五, pairing A-B) + 40 (马六, pairing C-A) = 160.
    assert got.minutes_by_action == {
        "volunteer": 190,
        "integrity": 30,
        "welfare_day": 90,
        "walk_with_you": 40,
    }
    assert (got.minutes, got.joint_minutes) == (350, 160)
    assert (got.pending_entries, got.pending_minutes) == (1, 45)
    assert (got.participants, got.members_total) == (3, 3)
    rows = {m.name: m for m in got.members}
    assert set(rows) == {w.member_a.name, w.member_a2.name, w.secretary_a.name}
    assert [m.name for m in got.members] == sorted(rows)
    assert (rows["张三"].minutes, rows["张三"].minutes_by_action) == (90, {"volunteer": 60, "integrity": 30})
    assert (rows["李四"].minutes, rows["李四"].minutes_by_action) == (90, {"welfare_day": 90})
    assert (rows["李书记"].minutes, rows["李书记"].minutes_by_action, rows["李书记"].role) == (
        0,
        {},
        Role.SECRETARY,
    )
    # November's events: 张三 made one (5 Nov) and reported it (12 Nov), had one evaluated (3 Nov)
    # and one fell due unfulfilled (10 Nov); 李四 made one (30 Nov, Xining time); the branch made
    # its own. Not: made in September/October or on 1 Dec (Xining), withdrawn, due in October.
    assert rows["张三"].commitments == rp.CommitmentCounts(made=1, reported=1, evaluated=1, overdue=1)
    assert rows["张三"].commitments.fulfilled == 1
    assert rows["李四"].commitments == rp.CommitmentCounts(made=1)
    assert rows["李书记"].commitments == rp.CommitmentCounts()  # the branch's own is not personal
    assert got.commitments == rp.CommitmentCounts(made=3, reported=1, evaluated=1, overdue=1)
    # The self-assessment of November itself: not the year's or the quarter's.
    assert [(c.checklist_id, c.period, c.score) for c in got.checklists] == [("six_haves", "2026-11", 70.0)]


async def test_branch_report_of_a_partner_counts_only_its_own_and_joint_entries(session, scene) -> None:
    w = scene.world
    got = await rp.branch_report(
        session, await actor(session, scene, "staff"), w.branch_b.id, FROM, TO, TODAY, PACK
    )
    # 120 + 15 own, 25 under an action the pack no longer lists; nothing joint comes from A.
    assert got.minutes_by_action == {"volunteer": 120, "integrity": 15, rp.OTHER: 25}
    assert (got.minutes, got.joint_minutes, got.participants, got.members_total) == (160, 0, 2, 2)
    assert (got.pending_entries, got.pending_minutes) == (1, 33)


async def test_an_empty_period_reports_zeros_and_every_member(session, scene) -> None:
    w = scene.world
    got = await rp.branch_report(
        session,
        await actor(session, scene, "admin"),
        w.branch_a.id,
        date(2020, 1, 1),
        date(2020, 1, 31),
        TODAY,
        PACK,
    )
    assert (got.minutes, got.minutes_by_action, got.participants, got.members_total) == (0, {}, 0, 3)
    assert all(m.minutes == 0 for m in got.members)


async def test_commitments_count_in_a_period_without_service(session, scene) -> None:
    # Regression: the branch's commitment counts came from a join with its service entries, so a
    # period without any service reported no commitments either.
    w = scene.world
    got = await rp.branch_report(
        session,
        await actor(session, scene, "secretary_a"),
        w.branch_a.id,
        date(2026, 11, 21),
        date(2026, 11, 30),
        date(2026, 12, 5),
        PACK,
    )
    assert got.minutes == 0
    assert got.commitments == rp.CommitmentCounts(
        made=1, overdue=1
    )  # 李四 made one; the branch's own fell due


async def test_summary_is_json_ready_and_names_no_member(session, scene) -> None:
    import json

    w = scene.world
    got = await rp.branch_report(
        session, await actor(session, scene, "secretary_a"), w.branch_a.id, FROM, TO, TODAY, PACK
    )
    text = json.dumps(got.summary(), ensure_ascii=False)
    assert w.member_a.name not in text and w.member_a2.name not in text
    assert json.loads(text)["minutes"] == 350


@pytest.mark.parametrize(("date_from", "date_to"), [(TO, FROM), (date(2020, 1, 1), date(2026, 1, 2))])
async def test_bad_periods_are_refused(session, scene, date_from, date_to) -> None:
    with pytest.raises(Refused) as e:
        await rp.branch_report(
            session,
            await actor(session, scene, "admin"),
            scene.world.branch_a.id,
            date_from,
            date_to,
            TODAY,
            PACK,
        )
    assert e.value.key == "report.bad_period"


async def test_branch_report_is_for_branches(session, scene) -> None:
    with pytest.raises(Refused) as e:
        await rp.branch_report(
            session, await actor(session, scene, "admin"), scene.world.committee.id, FROM, TO, TODAY, PACK
        )
    assert e.value.key == "report.not_branch"


# --------------------------------------------------------------------------------------------
# Subtree


async def test_committee_subtree_counts_each_entry_once_in_its_totals(session, scene) -> None:
    w = scene.world
    got = await rp.subtree_report(
        session, await actor(session, scene, "staff"), w.committee.id, FROM, TO, TODAY, PACK
    )
    rows = {b.org_id: b for b in got.branches}
    assert [b.org_id for b in got.branches] == [w.branch_a.id, w.branch_b.id]
    a, b = rows[w.branch_a.id], rows[w.branch_b.id]
    assert (a.minutes, a.joint_minutes, a.participants, a.members_total) == (350, 160, 3, 3)
    assert a.minutes_by_action == {"volunteer": 190, "integrity": 30, "welfare_day": 90, "walk_with_you": 40}
    assert (b.minutes, b.joint_minutes, b.participants, b.members_total) == (160, 0, 2, 2)
    assert a.commitments == rp.CommitmentCounts(made=3, reported=1, evaluated=1, overdue=1)
    assert b.commitments == rp.CommitmentCounts(made=1, reported=1, evaluated=1)
    assert a.last_assessment is not None and (a.last_assessment.checklist_id, a.last_assessment.score) == (
        "six_haves",
        70.0,
    )
    assert b.last_assessment is None
    # Once each: A's own 190, B's own 160, and C's 40 done with A (C is outside the committee).
    # B's 120 joint with A is inside already.
    assert got.minutes == 390
    assert got.minutes_by_action == {
        "volunteer": 70 + 120,
        "integrity": 30 + 15,
        "welfare_day": 90,
        "walk_with_you": 40,
        rp.OTHER: 25,
    }
    assert (got.members_total, got.participants) == (5, 5)
    assert got.commitments == rp.CommitmentCounts(made=4, reported=2, evaluated=2, overdue=1)
    assert got.submitted == 0


async def test_province_subtree_holds_every_branch(session, scene) -> None:
    w = scene.world
    got = await rp.subtree_report(
        session, await actor(session, scene, "admin"), w.province.id, FROM, TO, TODAY, PACK
    )
    rows = {b.org_id: b for b in got.branches}
    assert set(rows) == {w.branch_a.id, w.branch_b.id, w.branch_c.id}
    # C: its own 50 + 40 + 7 (the 7 names a pairing C is not in: still C's own, joint for nobody).
    assert (rows[w.branch_c.id].minutes, rows[w.branch_c.id].joint_minutes) == (97, 0)
    assert got.minutes == 190 + 160 + 97
    assert sum(b.minutes for b in got.branches) == got.minutes + 160  # joint ones twice in rows


async def test_submit_stores_the_summary_for_the_parent_and_resubmitting_replaces_it(session, scene) -> None:
    w = scene.world
    sec = await actor(session, scene, "secretary_a")
    first = await rp.submit_report(session, sec, w.branch_a.id, FROM, TO, " 第一次 ", NOW, PACK)
    assert (first.to_org_id, first.note, first.summary["minutes"], first.submitted_by_id) == (
        w.committee.id,
        "第一次",
        350,
        w.secretary_a.id,
    )
    assert "members" not in first.summary
    session.add(
        ServiceEntry(
            person_id=w.member_a.id,
            org_id=w.branch_a.id,
            day=date(2026, 11, 19),
            minutes=5,
            action="volunteer",
            description="x",
            status=A,
        )
    )
    await session.flush()
    later = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    again = await rp.submit_report(session, sec, w.branch_a.id, FROM, TO, None, later, PACK)
    assert again.id == first.id
    assert (again.summary["minutes"], again.note, again.submitted_at) == (355, None, later)
    assert await session.scalar(select(func.count(Report.id))) == 1

    staff = await actor(session, scene, "staff")
    got = await rp.submissions(session, staff, w.committee.id, FROM, TO)
    assert [(r.org_id, r.submitted, r.submitted_by) for r in got] == [
        (w.branch_a.id, True, w.secretary_a.name),
        (w.branch_b.id, False, None),
    ]
    assert await rp.submissions(session, staff, w.committee.id, FROM, date(2026, 11, 29)) != got
    subtree = await rp.subtree_report(session, staff, w.committee.id, FROM, TO, TODAY, PACK)
    assert [b.submitted for b in subtree.branches] == [True, False]


async def test_submitting_a_period_not_yet_begun_is_refused(session, scene) -> None:
    sec = await actor(session, scene, "secretary_a")
    with pytest.raises(Refused) as e:
        await rp.submit_report(
            session, sec, scene.world.branch_a.id, date(2026, 12, 1), date(2026, 12, 31), None, NOW, PACK
        )
    assert e.value.key == "report.future_period"
    with pytest.raises(Invalid) as e:
        await rp.submit_report(session, sec, scene.world.branch_a.id, FROM, TO, "说" * 2001, NOW, PACK)
    assert e.value.key == "report.bad_note"


async def test_person_report(session, scene) -> None:
    w = scene.world
    got = await rp.person_report(
        session, await actor(session, scene, "member_a"), w.member_a.id, FROM, TO, TODAY, PACK
    )
    assert (got.minutes, got.minutes_by_action, got.pending_minutes) == (
        90,
        {"volunteer": 60, "integrity": 30},
        45,
    )
    assert got.commitments == rp.CommitmentCounts(made=1, reported=1, evaluated=1, overdue=1)


# --------------------------------------------------------------------------------------------
# Authorization matrix


ROLES = ["member_a", "secretary_a", "secretary_b", "staff", "other_staff", "admin"]


@pytest.mark.parametrize("who", ROLES)
async def test_report_authorization_matrix(session, scene, who) -> None:
    w = scene.world
    me = await actor(session, scene, who)
    ops = {
        "branch_a": (
            lambda: rp.branch_report(session, me, w.branch_a.id, FROM, TO, TODAY, PACK),
            {"secretary_a", "staff", "admin"},
        ),
        "subtree_committee": (
            lambda: rp.subtree_report(session, me, w.committee.id, FROM, TO, TODAY, PACK),
            {"staff", "admin"},
        ),
        "person_member_a": (
            lambda: rp.person_report(session, me, w.member_a.id, FROM, TO, TODAY, PACK),
            {"member_a", "secretary_a", "staff", "admin"},
        ),
        "submit_a": (
            lambda: rp.submit_report(session, me, w.branch_a.id, FROM, TO, None, NOW, PACK),
            {"secretary_a"},
        ),
        "submissions_committee": (
            lambda: rp.submissions(session, me, w.committee.id, FROM, TO),
            {"staff", "admin"},
        ),
    }
    for name, (call, allowed) in ops.items():
        if who in allowed:
            assert await call() is not None, name
        else:
            with pytest.raises(Forbidden):
                await call()


async def test_branch_report_makes_a_workbook_with_every_member(session, scene) -> None:
    from io import BytesIO

    from openpyxl import load_workbook

    from storage.report_files import branch_report_xlsx

    w = scene.world
    got = await rp.branch_report(
        session, await actor(session, scene, "secretary_a"), w.branch_a.id, FROM, TO, TODAY, PACK
    )
    wb = load_workbook(BytesIO(branch_report_xlsx(got, PACK)))
    assert [r[0].value for r in wb["党员明细"].iter_rows(min_row=2)] == [m.name for m in got.members]


async def test_a_period_counts_only_what_happened_in_it(session, scene) -> None:
    """The November report made in December: December's fulfilments, evaluations, withdrawals
    and self-assessments do not move it; a month shows no quarter's score, a quarter no year's."""
    w = scene.world
    sec = await actor(session, scene, "secretary_a")
    before = await rp.branch_report(session, sec, w.branch_a.id, FROM, TO, date(2026, 12, 1), PACK)
    assert before.commitments == rp.CommitmentCounts(made=3, reported=1, evaluated=1, overdue=2)

    dec = _utc(2026, 12, 3, 2)
    rows = {(c.person_id, c.status, c.deadline): c for c in (await session.scalars(select(Commitment))).all()}
    overdue = rows[(w.member_a.id, C.MADE, date(2026, 11, 10))]
    overdue.status, overdue.reported_at = C.REPORTED, dec  # fulfilled late, in December
    reported = rows[(w.member_a.id, C.REPORTED, date(2026, 12, 31))]
    reported.status, reported.evaluated_at = C.EVALUATED, dec  # evaluated in December
    own = rows[(w.secretary_a.id, C.MADE, date(2026, 11, 30))]
    own.status, own.withdrawn_at = C.WITHDRAWN, dec
    session.add(
        Assessment(
            org_id=w.branch_a.id, checklist_id="six_haves", period="2026-12", score=99.0, finished_at=dec
        )
    )
    await session.flush()

    after = await rp.branch_report(session, sec, w.branch_a.id, FROM, TO, date(2026, 12, 5), PACK)
    assert after.commitments == before.commitments
    assert [m.commitments for m in after.members] == [m.commitments for m in before.members]
    assert after.checklists == before.checklists
    # December sees its own events.
    december = await rp.branch_report(
        session, sec, w.branch_a.id, date(2026, 12, 1), date(2026, 12, 31), date(2026, 12, 5), PACK
    )
    assert december.commitments == rp.CommitmentCounts(made=1, reported=1, evaluated=1)
    assert [(c.period, c.score) for c in december.checklists] == [("2026-12", 99.0)]

    def scores(r: rp.BranchReport) -> list[tuple[str, str, float]]:
        return [(c.checklist_id, c.period, c.score) for c in r.checklists]

    october = await rp.branch_report(
        session, sec, w.branch_a.id, date(2026, 10, 1), date(2026, 10, 31), date(2026, 12, 5), PACK
    )
    assert scores(october) == []
    q4 = await rp.branch_report(
        session, sec, w.branch_a.id, date(2026, 10, 1), date(2026, 12, 31), date(2026, 12, 5), PACK
    )
    assert scores(q4) == [("six_haves", "2026-Q4", 80.0)]
    so_far = await rp.branch_report(
        session, sec, w.branch_a.id, date(2026, 10, 1), date(2026, 12, 5), date(2026, 12, 5), PACK
    )
    assert scores(so_far) == [("six_haves", "2026-Q4", 80.0)]  # this quarter so far: its own
    year = await rp.branch_report(
        session, sec, w.branch_a.id, date(2026, 1, 1), date(2026, 12, 31), date(2026, 12, 5), PACK
    )
    assert scores(year) == [("five_standards", "2026", 60.0), ("six_haves", "2026-Q4", 80.0)]


def test_periods_within() -> None:
    assert rp.periods_within(date(2026, 11, 1), date(2026, 11, 30)) == {"2026-11": (1, date(2026, 11, 1))}
    assert set(rp.periods_within(date(2026, 10, 1), date(2026, 12, 31))) == {
        "2026-Q4",
        "2026-10",
        "2026-11",
        "2026-12",
    }
    assert "2026" in rp.periods_within(date(2026, 1, 1), date(2026, 12, 31))
    assert rp.periods_within(date(2026, 11, 2), date(2026, 11, 30)) == {}
    # A report running up to today holds the periods begun in it and still running.
    so_far = rp.periods_within(date(2026, 10, 1), date(2026, 12, 6), today=date(2026, 12, 6))
    assert set(so_far) == {"2026-Q4", "2026-10", "2026-11", "2026-12"}
    year = rp.periods_within(date(2026, 1, 1), date(2026, 12, 6), today=date(2026, 12, 6))
    assert year["2026"] == (3, date(2026, 1, 1))
    # The same days, once past, hold only what lies wholly inside them.
    assert "2026-Q4" not in rp.periods_within(date(2026, 10, 1), date(2026, 12, 6), today=date(2027, 1, 5))
    assert "2026-Q4" not in rp.periods_within(date(2026, 10, 1), date(2026, 10, 31), today=date(2026, 12, 6))
