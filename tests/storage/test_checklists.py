"""Checklist self-assessment: periods, answers, scoring, history and comparison, and who may do it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from content.pack import get_pack
from storage import checklists as ck
from storage.errors import Forbidden, Invalid, NotFound, Refused
from storage.models import ItemStatus

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=40)
CHECKLIST = "six_haves"


def items(checklist_id: str = CHECKLIST) -> list[str]:
    cl = get_pack().checklist(checklist_id)
    assert cl is not None
    return [i.id for i in cl.items]


async def start(session, world, person=None, *, period="2026", checklist=CHECKLIST, org=None, now=NOW):
    actor = await world.actor(session, person or world.secretary_a)
    return await ck.start_assessment(
        session, actor, (org or world.branch_a).id, checklist, period, now, pack=PACK
    )


async def answer_all(session, world, assessment, statuses: list[str], person=None) -> None:
    actor = await world.actor(session, person or world.secretary_a)
    for item_id, status in zip(items(assessment.checklist_id), statuses, strict=True):
        await ck.set_item(session, actor, assessment.id, item_id, status, pack=PACK)


@pytest.mark.parametrize(
    ("period", "start_day"),
    [
        ("2026", date(2026, 1, 1)),
        ("2026-Q4", date(2026, 10, 1)),
        ("2026-Q1", date(2026, 1, 1)),
        ("2026-11", date(2026, 11, 1)),
    ],
)
def test_period_forms(period: str, start_day: date) -> None:
    assert ck.period_start(period) == start_day


@pytest.mark.parametrize(
    "period",
    ["", "26", "2026-Q5", "2026-Q0", "2026-13", "2026-00", "2026-1", "1999", "2026Q4", "2026-q4", " 2026"],
)
def test_bad_periods(period: str) -> None:
    with pytest.raises(Invalid) as e:
        ck.period_start(period)
    assert e.value.key == "checklist.bad_period"


@given(st.text(max_size=12))
def test_period_is_either_valid_or_invalid_never_an_error(text: str) -> None:
    try:
        ck.period_start(text)
    except Invalid as e:
        assert e.key == "checklist.bad_period"


@given(st.lists(st.sampled_from(list(ItemStatus)), min_size=1, max_size=30))
def test_score_is_the_weighted_share(statuses: list[ItemStatus]) -> None:
    expected = (
        100 * (statuses.count(ItemStatus.MET) + 0.5 * statuses.count(ItemStatus.PARTLY)) / len(statuses)
    )
    got = ck.score(statuses, len(statuses))
    assert 0 <= got <= 100
    assert abs(got - expected) <= 0.05 + 1e-9  # rounded to one decimal


async def test_finish_scores_over_all_items(session, world) -> None:
    a = await start(session, world)
    n = len(items())
    statuses = ["met"] * (n - 2) + ["partly", "not_yet"]
    await answer_all(session, world, a, statuses)
    done = await ck.finish(session, await world.actor(session, world.secretary_a), a.id, LATER, pack=PACK)
    assert done.score == round(100 * (n - 2 + 0.5) / n, 1)
    assert done.finished_at == LATER


async def test_cannot_finish_with_unanswered_items(session, world) -> None:
    a = await start(session, world)
    actor = await world.actor(session, world.secretary_a)
    ids = items()
    await ck.set_item(session, actor, a.id, ids[0], "met", pack=PACK)
    with pytest.raises(Refused) as e:
        await ck.finish(session, actor, a.id, NOW, pack=PACK)
    assert (e.value.key, e.value.params) == ("checklist.unanswered", {"count": len(ids) - 1})
    assert a.finished_at is None and a.score is None
    assert await ck.unanswered(session, actor, a.id, pack=PACK) == ids[1:]


async def test_answers_may_change_until_finished_then_not(session, world) -> None:
    a = await start(session, world)
    actor = await world.actor(session, world.secretary_a)
    first = items()[0]
    p = await ck.set_item(session, actor, a.id, first, "not_yet", "还在筹备", pack=PACK)
    assert (p.answered, p.total) == (1, len(items()))
    p = await ck.set_item(session, actor, a.id, first, "met", None, pack=PACK)
    assert p.answered == 1
    await answer_all(session, world, a, ["met"] * len(items()))
    done = await ck.finish(session, actor, a.id, NOW, pack=PACK)
    assert done.score == 100.0
    with pytest.raises(Refused) as e:
        await ck.set_item(session, actor, a.id, first, "not_yet", pack=PACK)
    assert e.value.key == "checklist.already_finished"
    with pytest.raises(Refused):
        await ck.finish(session, actor, a.id, NOW, pack=PACK)


async def test_item_must_belong_to_the_checklist_and_status_and_note_are_checked(session, world) -> None:
    a = await start(session, world)
    actor = await world.actor(session, world.secretary_a)
    other_item = items("five_standards")[0]
    with pytest.raises(Refused) as e:
        await ck.set_item(session, actor, a.id, other_item, "met", pack=PACK)
    assert e.value.key == "checklist.unknown_item"
    with pytest.raises(Invalid) as e:
        await ck.set_item(session, actor, a.id, items()[0], "maybe", pack=PACK)
    assert e.value.key == "checklist.bad_status"
    with pytest.raises(Invalid) as e:
        await ck.set_item(session, actor, a.id, items()[0], "met", "注" * 501, pack=PACK)
    assert e.value.key == "checklist.bad_note"


async def test_start_resumes_an_unfinished_one_and_refuses_a_finished_period(session, world) -> None:
    a = await start(session, world)
    assert (await start(session, world)).id == a.id
    await answer_all(session, world, a, ["met"] * len(items()))
    await ck.finish(session, await world.actor(session, world.secretary_a), a.id, NOW, pack=PACK)
    with pytest.raises(Refused) as e:
        await start(session, world)
    assert (e.value.key, e.value.params) == ("checklist.already_assessed", {"period": "2026"})
    assert (await start(session, world, period="2026-Q4")).id != a.id


@pytest.mark.parametrize(
    ("kw", "error", "key"),
    [
        ({"checklist": "no_such"}, Refused, "checklist.unknown"),
        ({"period": "2026-Q5"}, Invalid, "checklist.bad_period"),
        ({"period": "2026-12"}, Refused, "checklist.future_period"),
        ({"period": "2027"}, Refused, "checklist.future_period"),
    ],
)
async def test_start_checks_checklist_and_period(session, world, kw, error, key) -> None:
    with pytest.raises(error) as e:
        await start(session, world, **kw)
    assert e.value.key == key


async def test_the_period_starts_in_the_branchs_time_zone(session, world) -> None:
    # 16:30 UTC on 30 November is already 1 December in Shanghai.
    at = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)
    assert (await start(session, world, period="2026-12", now=at)).period == "2026-12"


async def test_only_branches_assess_themselves(session, world) -> None:
    with pytest.raises(Refused) as e:
        await start(session, world, world.staff, org=world.committee)
    assert e.value.key == "checklist.not_branch"


async def test_history_and_comparison_with_the_previous_assessment(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    ids = items()
    n = len(ids)
    first = await start(session, world, period="2026-Q3")
    await answer_all(session, world, first, ["not_yet"] * n)
    await ck.finish(session, actor, first.id, NOW, pack=PACK)
    cmp0 = await ck.compare_with_previous(session, actor, first.id, pack=PACK)
    assert (cmp0.previous_id, cmp0.previous_score, cmp0.delta) == (None, None, None)
    assert [c.item_id for c in cmp0.changes] == ids  # all new against nothing

    second = await start(session, world, period="2026-Q4")
    await answer_all(session, world, second, ["met", "partly"] + ["not_yet"] * (n - 2))
    await ck.finish(session, actor, second.id, LATER, pack=PACK)
    cmp1 = await ck.compare_with_previous(session, actor, second.id, pack=PACK)
    assert (cmp1.previous_id, cmp1.previous_period, cmp1.previous_score) == (first.id, "2026-Q3", 0.0)
    assert cmp1.delta == second.score == round(150 / n, 1)
    assert [(c.item_id, c.before, c.after) for c in cmp1.changes] == [
        (ids[0], ItemStatus.NOT_YET, ItemStatus.MET),
        (ids[1], ItemStatus.NOT_YET, ItemStatus.PARTLY),
    ]
    # Another checklist's assessments are not "previous".
    other = await start(session, world, period="2026-Q4", checklist="five_standards")
    assert (await ck.compare_with_previous(session, actor, other.id, pack=PACK)).previous_id is None

    hist = await ck.history(session, actor, world.branch_a.id, CHECKLIST)
    assert [(h.period, h.score) for h in hist] == [("2026-Q4", second.score), ("2026-Q3", 0.0)]


async def test_latest_scores_pick_the_newest_finished_per_checklist(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    n = len(items())
    old = await start(session, world, period="2026-Q3")
    await answer_all(session, world, old, ["met"] * n)
    await ck.finish(session, actor, old.id, NOW, pack=PACK)
    new = await start(session, world, period="2026-Q4")
    await answer_all(session, world, new, ["not_yet"] * n)
    await ck.finish(session, actor, new.id, LATER, pack=PACK)
    await start(session, world, period="2026-11")  # unfinished: ignored
    got = await ck.latest_scores(session, world.branch_a.id)
    assert got == {CHECKLIST: ("2026-Q4", 0.0, LATER)}


# Authorization matrix: start, answer, finish and read history of branch A's assessment.
@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("member_a", False),
        ("member_b", False),
        ("secretary_a", True),
        ("secretary_b", False),
        ("staff", True),
        ("other_staff", False),
        ("admin", True),
    ],
)
async def test_assessment_authorization_matrix(session, world, who, allowed) -> None:
    person = getattr(world, who)
    actor = await world.actor(session, person)
    existing = await start(session, world)  # by the secretary
    if allowed:
        assert (await start(session, world, person)).id == existing.id
        await answer_all(session, world, existing, ["met"] * len(items()), person)
        assert (await ck.finish(session, actor, existing.id, NOW, pack=PACK)).score == 100.0
        assert len(await ck.history(session, actor, world.branch_a.id, CHECKLIST)) == 1
        return
    with pytest.raises(Forbidden):
        await start(session, world, person)
    with pytest.raises(Forbidden):
        await ck.set_item(session, actor, existing.id, items()[0], "met", pack=PACK)
    with pytest.raises(Forbidden):
        await ck.finish(session, actor, existing.id, NOW, pack=PACK)
    with pytest.raises(Forbidden):
        await ck.history(session, actor, world.branch_a.id, CHECKLIST)
    with pytest.raises(Forbidden):
        await ck.compare_with_previous(session, actor, existing.id, pack=PACK)


async def test_missing_assessment_is_not_found(session, world) -> None:
    with pytest.raises(NotFound):
        await ck.finish(session, await world.actor(session, world.admin), 777, NOW, pack=PACK)
