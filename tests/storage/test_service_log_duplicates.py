"""Possible duplicates (the rule, the refusal, the reviewer's marks) and the day's room in hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from content.pack import get_pack
from storage import service_log as sl
from storage.errors import Refused
from storage.models import EntryStatus, ServiceEntry

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

TODAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


async def log(session, world, person, *, allow_duplicate=False, **kw) -> ServiceEntry:
    data = {"day": TODAY, "minutes": 60, "action": "volunteer", "description": "社区义诊"}
    data.update(kw)
    actor = await world.actor(session, person)
    return await sl.log_service(
        session,
        actor,
        sl.new_entry(**data),
        source=None,
        today=TODAY,
        window_days=90,
        allow_duplicate=allow_duplicate,
        pack=PACK,
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("社区义诊", "社区义诊。"),
        ("社区 义诊", "社区义诊"),
        ("社区义诊！", "  社区，义诊  "),
        ("Clean-up, park", "clean up park"),
        ("１２号楼清扫", "12号楼清扫"),  # full-width digits
    ],
)
def test_descriptions_match_once_spaces_punctuation_and_width_are_ignored(a, b) -> None:
    assert sl.same_text_key(a) == sl.same_text_key(b)


def test_different_words_do_not_match() -> None:
    assert sl.same_text_key("社区义诊") != sl.same_text_key("社区义卖")


async def test_same_day_action_and_duration_is_a_possible_duplicate(session, world) -> None:
    first = await log(session, world, world.member_a, minutes=120, description="社区义诊")
    with pytest.raises(sl.PossibleDuplicate) as e:
        await log(session, world, world.member_a, minutes=120, description="另一件事")
    assert e.value.other.id == first.id
    assert (e.value.key, e.value.params) == (
        "log.possible_duplicate",
        {"other_id": first.id, "day": TODAY.isoformat(), "hours": "2"},
    )
    assert len(list(await session.scalars(sl.select(ServiceEntry)))) == 1


async def test_same_description_with_other_duration_is_a_possible_duplicate(session, world) -> None:
    first = await log(session, world, world.member_a, minutes=60, description="社区义诊")
    with pytest.raises(sl.PossibleDuplicate) as e:
        await log(session, world, world.member_a, minutes=90, description="社区 义诊！")
    assert e.value.other.id == first.id


@pytest.mark.parametrize(
    "change",
    [
        {"day": TODAY - timedelta(days=1)},
        {"action": "integrity"},
        {"minutes": 90, "description": "敬老院探访"},
    ],
)
async def test_another_day_action_or_both_duration_and_text_differ_is_no_duplicate(
    session, world, change
) -> None:
    await log(session, world, world.member_a, minutes=60, description="社区义诊")
    await log(session, world, world.member_a, **{"minutes": 60, "description": "社区义诊", **change})


async def test_other_people_and_rejected_entries_are_no_duplicates(session, world) -> None:
    first = await log(session, world, world.member_a)
    await log(session, world, world.member_a2)  # the same text from someone else
    first.status = EntryStatus.REJECTED
    await session.flush()
    await log(session, world, world.member_a)  # the earlier one was rejected: logging again is right


async def test_confirmed_duplicate_is_logged_and_both_are_marked(session, world) -> None:
    first = await log(session, world, world.member_a)
    second = await log(session, world, world.member_a, allow_duplicate=True)
    other = await log(session, world, world.member_a, minutes=30, description="别的事", action="integrity")
    marks = await sl.possible_duplicates(session, [first, second, other])
    assert marks == {first.id: second.id, second.id: first.id}


async def test_the_day_room_is_said_in_hours_before_anything_is_written(session, world) -> None:
    await log(session, world, world.member_a, minutes=4 * 60)
    assert await sl.day_room(session, world.member_a.id, TODAY) == 20 * 60
    with pytest.raises(Refused) as e:
        await sl.check_day_room(session, world.member_a.id, TODAY, 23 * 60)
    assert (e.value.key, e.value.params) == ("log.day_full", {"left": "20"})
    await sl.check_day_room(session, world.member_a.id, TODAY, 20 * 60)  # fits exactly


async def test_review_states_say_what_became_of_a_listed_entry_within_scope_only(session, world) -> None:
    a = await log(session, world, world.member_a)
    b = await log(session, world, world.member_b)  # branch B: not secretary A's
    secretary = await world.actor(session, world.secretary_a)
    await sl.review(session, secretary, a.id, True, None, NOW)
    assert await sl.review_states(session, secretary, [a.id, b.id]) == {a.id: EntryStatus.APPROVED}
