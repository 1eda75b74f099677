"""The branch service list: managers write, everyone in the branch reads."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from storage import service_list as sv
from storage.errors import Forbidden, Invalid, NotFound, Refused


def item(**kw) -> sv.ServiceItemIn:
    data = {"title": "政策咨询", "audience": "会员企业", "contact": "0971-1234567", "time_limit": "3个工作日"}
    data.update(kw)
    return sv.service_item(**data)


async def add(session, world, person=None, org=None, **kw):
    actor = await world.actor(session, person or world.secretary_a)
    return await sv.add_service(session, actor, (org or world.branch_a).id, item(**kw))


async def test_add_update_remove_and_list(session, world) -> None:
    first = await add(session, world, description=" 每周二下午 ")
    second = await add(session, world, title="法律援助")
    assert first.description == "每周二下午"
    sec = await world.actor(session, world.secretary_a)
    await sv.update_service(session, sec, second.id, item(title="法律援助(免费)"))
    await sv.remove_service(session, sec, first.id)
    listed = await sv.list_services(session, await world.actor(session, world.member_a), world.branch_a.id)
    assert [(i.id, i.title) for i in listed] == [(second.id, "法律援助(免费)")]
    with pytest.raises(NotFound):
        await sv.update_service(session, sec, first.id, item())  # removed items are gone for good


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("title", "", "services.bad_title"),
        ("title", "t" * 201, "services.bad_title"),
        ("audience", "  ", "services.bad_audience"),
        ("contact", "c" * 201, "services.bad_contact"),
        ("time_limit", "", "services.bad_time_limit"),
        ("time_limit", "x" * 101, "services.bad_time_limit"),
        ("description", "d" * 1001, "services.bad_description"),
    ],
)
def test_fields_are_checked(field: str, value: str, key: str) -> None:
    with pytest.raises(Invalid) as e:
        item(**{field: value})
    assert e.value.key == key


@given(st.text(max_size=250))
@example("\x1f")
def test_title_is_cleaned_and_1_to_200(text: str) -> None:
    visible = "".join(c for c in text if c in "\n\t" or not (ord(c) < 32 or ord(c) == 127)).strip()
    if 1 <= len(visible) <= 200:
        assert item(title=text).title == visible
    else:
        with pytest.raises(Invalid):
            item(title=text)


async def test_only_branches_have_a_service_list(session, world) -> None:
    with pytest.raises(Refused) as e:
        await add(session, world, world.staff, world.committee)
    assert e.value.key == "services.not_branch"


@pytest.mark.parametrize(
    ("who", "reads", "writes"),
    [
        ("member_a", True, False),
        ("member_b", False, False),
        ("secretary_a", True, True),
        ("secretary_b", False, False),
        ("staff", True, True),
        ("other_staff", False, False),
        ("admin", True, True),
    ],
)
async def test_service_list_authorization_matrix(session, world, who, reads, writes) -> None:
    existing = await add(session, world)
    actor = await world.actor(session, getattr(world, who))
    if reads:
        assert len(await sv.list_services(session, actor, world.branch_a.id)) == 1
    else:
        with pytest.raises(Forbidden):
            await sv.list_services(session, actor, world.branch_a.id)
    if writes:
        await sv.add_service(session, actor, world.branch_a.id, item(title="新增"))
        await sv.update_service(session, actor, existing.id, item(title="改名"))
        await sv.remove_service(session, actor, existing.id)
        assert existing.active is False
    else:
        with pytest.raises(Forbidden):
            await sv.add_service(session, actor, world.branch_a.id, item())
        with pytest.raises(Forbidden):
            await sv.update_service(session, actor, existing.id, item(title="改名"))
        with pytest.raises(Forbidden):
            await sv.remove_service(session, actor, existing.id)
        assert (existing.active, existing.title) == (True, "政策咨询")
