"""Commitments: making them, the lifecycle and who may move it, derived overdue, the public list."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import func, select

from content.pack import get_pack
from storage import commitments as cm
from storage.errors import Forbidden, Invalid, NotFound, Refused
from storage.models import Commitment, CommitmentStatus, Role
from tests.factories import make_person

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

TODAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
S = CommitmentStatus


async def make(session, world, person, *, source=None, locale="zh", **kw) -> Commitment:
    data = {"text": "每月参加一次社区志愿服务", "deadline": TODAY + timedelta(days=30)}
    data.update(kw)
    actor = await world.actor(session, person)
    return await cm.make_commitment(
        session, actor, cm.new_commitment(**data), today=TODAY, locale=locale, source=source, pack=PACK
    )


def put(session, person, org, status=S.MADE, *, deadline=TODAY + timedelta(days=10), **kw) -> Commitment:
    row = Commitment(person_id=person.id, org_id=org.id, text="承诺", deadline=deadline, status=status, **kw)
    session.add(row)
    return row


async def count(session) -> int:
    return await session.scalar(select(func.count(Commitment.id)))


# --------------------------------------------------------------------------------------------
# Making


async def test_made_at_the_clock_passed_in(session, world) -> None:
    # Reports count a commitment in the period it was made: that instant comes from the caller.
    actor = await world.actor(session, world.member_a)
    c = await cm.make_commitment(
        session,
        actor,
        cm.new_commitment(text="承诺", deadline=TODAY + timedelta(days=3)),
        today=TODAY,
        now=NOW,
        pack=PACK,
    )
    assert c.created_at == NOW


async def test_member_makes_a_free_text_commitment_in_their_branch(session, world) -> None:
    c = await make(session, world, world.member_a, text="  帮扶两户困难群众 ", is_public=False)
    assert (c.org_id, c.person_id, c.is_branch, c.status, c.text, c.is_public) == (
        world.branch_a.id,
        world.member_a.id,
        False,
        S.MADE,
        "帮扶两户困难群众",
        False,
    )


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_template_fills_text_and_default_deadline(session, world, locale) -> None:
    t = get_pack().templates[0]
    c = await make(session, world, world.member_a, text=None, deadline=None, template_id=t.id, locale=locale)
    assert c.text == t.text.get(locale)
    assert c.deadline == TODAY + timedelta(days=t.default_days)
    assert c.template_id == t.id


async def test_template_text_and_deadline_may_be_overridden(session, world) -> None:
    t = get_pack().templates[0]
    c = await make(session, world, world.member_a, text="我自己的话", deadline=TODAY, template_id=t.id)
    assert (c.text, c.deadline) == ("我自己的话", TODAY)


async def test_unknown_template_is_refused(session, world) -> None:
    with pytest.raises(Refused) as e:
        await make(session, world, world.member_a, template_id="no_such_template")
    assert e.value.key == "commitment.unknown_template"


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"text": None}, "commitment.text_required"),
        ({"text": "   "}, "commitment.text_required"),
        ({"deadline": None}, "commitment.deadline_required"),
        ({"text": "长" * 501}, "commitment.bad_text"),
    ],
)
async def test_free_text_needs_text_and_deadline(session, world, kw, key) -> None:
    with pytest.raises(Invalid) as e:
        await make(session, world, world.member_a, **kw)
    assert e.value.key == key
    assert await count(session) == 0


async def test_deadline_from_today_up_to_two_years(session, world) -> None:
    await make(session, world, world.member_a, deadline=TODAY)
    await make(session, world, world.member_a, deadline=date(2028, 11, 20))
    with pytest.raises(Refused) as e:
        await make(session, world, world.member_a, deadline=TODAY - timedelta(days=1))
    assert e.value.key == "commitment.deadline_past"
    with pytest.raises(Refused) as e:
        await make(session, world, world.member_a, deadline=date(2028, 11, 21))
    assert (e.value.key, e.value.params) == ("commitment.deadline_too_far", {"latest": "2028-11-20"})
    assert await count(session) == 2


@given(st.text(max_size=600))
@example("\x00\x1f ")
def test_commitment_text_is_cleaned_blank_means_none_and_at_most_500(text: str) -> None:
    visible = "".join(c for c in text if c in "\n\t" or not (ord(c) < 32 or ord(c) == 127)).strip()
    if len(visible) > 500:
        with pytest.raises(Invalid) as e:
            cm.new_commitment(text=text)
        assert e.value.key == "commitment.bad_text"
    else:
        assert cm.new_commitment(text=text).text == (visible or None)


def test_two_years_from_29_february_is_28_february() -> None:
    assert cm.add_years(date(2028, 2, 29), 2) == date(2030, 2, 28)


@pytest.mark.parametrize("who", ["staff", "admin"])
async def test_only_branch_people_make_personal_commitments(session, world, who) -> None:
    with pytest.raises(Refused) as e:
        await make(session, world, getattr(world, who))
    assert e.value.key == "commitment.not_member"


async def test_branch_commitment_is_made_by_its_secretary(session, world) -> None:
    c = await make(session, world, world.secretary_a, for_branch=True)
    assert (c.is_branch, c.org_id) == (True, world.branch_a.id)
    with pytest.raises(Forbidden) as e:
        await make(session, world, world.member_a, for_branch=True)
    assert e.value.key == "commitment.branch_needs_secretary"


async def test_redelivered_source_returns_the_first_commitment(session, world) -> None:
    first = await make(session, world, world.member_a, source="5:1")
    again = await make(session, world, world.member_a, source="5:1", text="别的")
    assert again.id == first.id
    with pytest.raises(Refused) as e:
        await make(session, world, world.member_a2, source="5:1")
    assert e.value.key == "commitment.duplicate_source"
    assert await count(session) == 1


# --------------------------------------------------------------------------------------------
# The lifecycle


async def _do(session, world, op: str, c: Commitment):
    owner = await world.actor(session, world.member_a)
    reviewer = await world.actor(session, world.secretary_a)
    if op == "report":
        return await cm.report_fulfilment(session, owner, c.id, "已完成", None, NOW)
    if op == "withdraw":
        return await cm.withdraw(session, owner, c.id, NOW)
    if op == "evaluate":
        return await cm.evaluate(session, reviewer, c.id, "good", "不错", NOW)
    return await cm.return_for_more_work(session, reviewer, c.id, "请补充照片", NOW)


ALLOWED = {
    (S.MADE, "report"): S.REPORTED,
    (S.MADE, "withdraw"): S.WITHDRAWN,
    (S.REPORTED, "evaluate"): S.EVALUATED,
    (S.REPORTED, "return"): S.MADE,
}


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("op", ["report", "withdraw", "evaluate", "return"])
async def test_every_transition_outside_the_lifecycle_is_refused(session, world, status, op) -> None:
    c = put(session, world.member_a, world.branch_a, status)
    await session.flush()
    if (status, op) in ALLOWED:
        await _do(session, world, op, c)
        assert c.status is ALLOWED[(status, op)]
    else:
        with pytest.raises(Refused) as e:
            await _do(session, world, op, c)
        assert e.value.key == "commitment.bad_transition"
        assert c.status is status


async def test_full_lifecycle_keeps_what_each_step_said(session, world) -> None:
    c = await make(session, world, world.member_a, deadline=TODAY)
    owner = await world.actor(session, world.member_a)
    sec = await world.actor(session, world.secretary_a)
    await cm.report_fulfilment(session, owner, c.id, " 已帮扶两户 ", "file-1", NOW)
    assert (c.status, c.fulfilment_text, c.fulfilment_file_id, c.reported_at) == (
        S.REPORTED,
        "已帮扶两户",
        "file-1",
        NOW,
    )
    out = await cm.return_for_more_work(session, sec, c.id, "请补充照片", NOW)
    assert (c.status, c.evaluation, c.reported_at, c.fulfilment_text) == (
        S.MADE,
        "请补充照片",
        None,
        "已帮扶两户",
    )
    assert out.telegram_id == world.member_a.telegram_id
    await cm.report_fulfilment(session, owner, c.id, "已帮扶两户,附照片", "file-2", NOW)
    out = await cm.evaluate(session, sec, c.id, "excellent", None, NOW)
    assert (c.status, c.rating, c.evaluation, c.evaluated_by_id) == (
        S.EVALUATED,
        "excellent",
        None,
        sec.person_id,
    )
    assert (out.locale, out.reachable) == ("zh", True)


async def test_late_fulfilment_is_still_accepted(session, world) -> None:
    c = put(session, world.member_a, world.branch_a, deadline=TODAY - timedelta(days=5))
    await session.flush()
    await cm.report_fulfilment(session, await world.actor(session, world.member_a), c.id, "补交", None, NOW)
    assert c.status is S.REPORTED


@pytest.mark.parametrize(
    ("rating", "comment", "key"),
    [
        ("great", None, "commitment.bad_rating"),
        ("", None, "commitment.bad_rating"),
        ("good", "评" * 501, "commitment.bad_comment"),
    ],
)
async def test_evaluation_needs_a_known_rating_and_a_short_comment(
    session, world, rating, comment, key
) -> None:
    c = put(session, world.member_a, world.branch_a, S.REPORTED)
    await session.flush()
    with pytest.raises(Invalid) as e:
        await cm.evaluate(session, await world.actor(session, world.secretary_a), c.id, rating, comment, NOW)
    assert e.value.key == key
    assert c.status is S.REPORTED


@pytest.mark.parametrize("text", ["", "   ", "长" * 1001])
async def test_fulfilment_text_is_1_to_1000(session, world, text) -> None:
    c = put(session, world.member_a, world.branch_a)
    await session.flush()
    with pytest.raises(Invalid) as e:
        await cm.report_fulfilment(session, await world.actor(session, world.member_a), c.id, text, None, NOW)
    assert e.value.key == "commitment.bad_fulfilment"


async def test_return_needs_a_comment(session, world) -> None:
    c = put(session, world.member_a, world.branch_a, S.REPORTED)
    await session.flush()
    with pytest.raises(Invalid):
        await cm.return_for_more_work(session, await world.actor(session, world.secretary_a), c.id, " ", NOW)
    assert c.status is S.REPORTED


@pytest.mark.parametrize("who", ["member_a2", "secretary_a", "staff", "admin", "member_b"])
async def test_only_the_owner_reports_or_withdraws(session, world, who) -> None:
    c = put(session, world.member_a, world.branch_a)
    await session.flush()
    actor = await world.actor(session, getattr(world, who))
    with pytest.raises(Forbidden):
        await cm.report_fulfilment(session, actor, c.id, "我替他写", None, NOW)
    with pytest.raises(Forbidden):
        await cm.withdraw(session, actor, c.id, NOW)
    assert c.status is S.MADE


# Authorization matrix: evaluating a member's reported commitment in branch A.
@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("member_a", False),  # the owner
        ("member_a2", False),
        ("member_b", False),
        ("secretary_a", True),
        ("secretary_b", False),
        ("staff", True),
        ("other_staff", False),
        ("admin", True),
    ],
)
async def test_evaluate_authorization_matrix(session, world, who, allowed) -> None:
    c = put(session, world.member_a, world.branch_a, S.REPORTED)
    await session.flush()
    actor = await world.actor(session, getattr(world, who))
    if allowed:
        await cm.evaluate(session, actor, c.id, "good", None, NOW)
        assert c.status is S.EVALUATED
    else:
        with pytest.raises(Forbidden):
            await cm.evaluate(session, actor, c.id, "good", None, NOW)
        assert c.status is S.REPORTED


async def test_owner_cannot_evaluate_their_own(session, world) -> None:
    c = put(session, world.member_a, world.branch_a, S.REPORTED)
    await session.flush()
    with pytest.raises(Forbidden) as e:
        await cm.evaluate(session, await world.actor(session, world.member_a), c.id, "excellent", None, NOW)
    assert e.value.key == "commitment.own"


async def test_secretarys_and_branchs_commitments_are_evaluated_by_staff_above(session, world) -> None:
    deputy = await make_person(session, "副书记", world.branch_a, Role.SECRETARY)
    personal = put(session, world.secretary_a, world.branch_a, S.REPORTED)
    branch_own = put(session, world.secretary_a, world.branch_a, S.REPORTED, is_branch=True)
    await session.flush()
    for c in (personal, branch_own):
        for who in (world.secretary_a, deputy):
            with pytest.raises(Forbidden):
                await cm.evaluate(session, await world.actor(session, who), c.id, "good", None, NOW)
        await cm.evaluate(session, await world.actor(session, world.staff), c.id, "good", None, NOW)
        assert c.status is S.EVALUATED


async def test_branch_commitment_is_reported_by_any_secretary_of_the_branch(session, world) -> None:
    deputy = await make_person(session, "副书记", world.branch_a, Role.SECRETARY)
    c = put(session, world.secretary_a, world.branch_a, is_branch=True)
    await session.flush()
    with pytest.raises(Forbidden):
        await cm.report_fulfilment(session, await world.actor(session, world.member_a), c.id, "x", None, NOW)
    await cm.report_fulfilment(session, await world.actor(session, deputy), c.id, "已完成", None, NOW)
    assert c.status is S.REPORTED


async def test_missing_commitment_is_not_found(session, world) -> None:
    with pytest.raises(NotFound):
        await cm.withdraw(session, await world.actor(session, world.member_a), 4242, NOW)


# --------------------------------------------------------------------------------------------
# Reading


async def test_overdue_is_derived_from_status_and_deadline(session, world) -> None:
    m, a = world.member_a, world.branch_a
    late = put(session, m, a, deadline=TODAY - timedelta(days=1))
    due_today = put(session, m, a, deadline=TODAY)
    reported_late = put(session, m, a, S.REPORTED, deadline=TODAY - timedelta(days=9))
    put(session, m, a, S.WITHDRAWN, deadline=TODAY - timedelta(days=9))
    put(session, world.member_a2, a, deadline=TODAY - timedelta(days=1))
    await session.flush()
    mine = await cm.list_commitments(session, await world.actor(session, m), "mine", TODAY)
    assert [(v.commitment.id, v.overdue) for v in mine] == [
        (reported_late.id, False),
        (late.id, True),
        (due_today.id, False),
    ]
    assert all(v.owner_name == m.name for v in mine)
    with_withdrawn = await cm.list_commitments(
        session, await world.actor(session, m), "mine", TODAY, include_withdrawn=True
    )
    assert len(with_withdrawn) == 4


async def test_branch_list_is_for_managers_of_the_branch(session, world) -> None:
    put(session, world.member_a, world.branch_a)
    put(session, world.member_a2, world.branch_a)
    put(session, world.secretary_a, world.branch_a, is_branch=True)
    put(session, world.member_b, world.branch_b)
    await session.flush()
    sec = await world.actor(session, world.secretary_a)
    got = await cm.list_commitments(session, sec, "branch", TODAY)
    assert len(got) == 3
    assert {v.owner_name for v in got} == {world.member_a.name, world.member_a2.name, world.branch_a.name}
    staff = await world.actor(session, world.staff)
    assert len(await cm.list_commitments(session, staff, "branch", TODAY, org_id=world.branch_b.id)) == 1
    with pytest.raises(Forbidden):
        await cm.list_commitments(session, await world.actor(session, world.member_a), "branch", TODAY)
    with pytest.raises(Forbidden):
        await cm.list_commitments(session, sec, "branch", TODAY, org_id=world.branch_b.id)
    with pytest.raises(Forbidden):
        await cm.list_commitments(session, await world.actor(session, world.other_staff), "branch", TODAY)


async def test_publication_lists_public_commitments_with_owner_and_rating(session, world) -> None:
    a = world.branch_a
    branch_own = put(session, world.secretary_a, a, is_branch=True, deadline=TODAY + timedelta(days=90))
    rated = put(
        session, world.member_a, a, S.EVALUATED, rating="excellent", deadline=TODAY - timedelta(days=3)
    )
    late = put(session, world.member_a2, a, deadline=TODAY - timedelta(days=1))
    put(session, world.member_a2, a, is_public=False)
    put(session, world.member_a, a, S.WITHDRAWN)
    put(session, world.member_b, world.branch_b)
    await session.flush()
    got = await cm.publication(session, await world.actor(session, world.member_a2), a.id, TODAY)
    assert [(p.id, p.owner, p.status, p.overdue, p.rating) for p in got] == [
        (branch_own.id, a.name, S.MADE, False, None),
        (rated.id, world.member_a.name, S.EVALUATED, False, "excellent"),
        (late.id, world.member_a2.name, S.MADE, True, None),
    ]


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("member_a", True),
        ("member_b", False),
        ("secretary_a", True),
        ("secretary_b", False),
        ("staff", True),
        ("other_staff", False),
        ("admin", True),
    ],
)
async def test_publication_authorization_matrix(session, world, who, allowed) -> None:
    actor = await world.actor(session, getattr(world, who))
    if allowed:
        assert await cm.publication(session, actor, world.branch_a.id, TODAY) == []
    else:
        with pytest.raises(Forbidden):
            await cm.publication(session, actor, world.branch_a.id, TODAY)
