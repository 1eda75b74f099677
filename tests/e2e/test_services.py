"""/services: the branch's published service list."""

from __future__ import annotations

from storage import service_list


async def add(session, world, title: str, **kw) -> None:
    actor = await world.actor(session, world.secretary_a)
    data = {
        "title": title,
        "audience": "会员企业",
        "contact": "李书记 0971-1234567",
        "time_limit": "3 个工作日",
        **kw,
    }
    await service_list.add_service(session, actor, world.branch_a.id, service_list.service_item(**data))
    await session.commit()


async def test_members_read_their_branch_list(chat, world, session) -> None:
    await add(session, world, "政策咨询", description="解读行业扶持政策 <免费>")
    await add(session, world, "食品安全培训")
    reply = await chat.send(world.member_a, "/services")
    text = reply.text
    assert world.branch_a.name in text and "共 2 项" in text
    assert "1. 政策咨询" in text and "会员企业" in text and "0971-1234567" in text and "3 个工作日" in text
    assert "解读行业扶持政策 <免费>" in text  # the secretary's words, shown as written
    assert "2. 食品安全培训" in text


async def test_another_branch_sees_its_own_list_only(chat, world, session) -> None:
    await add(session, world, "政策咨询")
    reply = await chat.send(world.member_b, "/services")
    assert "还没有公布服务清单" in reply.text and "政策咨询" not in reply.text


async def test_a_long_list_comes_in_several_messages(chat, world, session) -> None:
    for i in range(8):
        await add(session, world, f"服务项目{i}", description="说" * 900)
    reply = await chat.send(world.member_a, "/services")
    assert len(reply.sent) >= 2 and all(len(t) < 4096 for t in reply.texts)
    joined = "\n".join(reply.texts)
    assert all(f"服务项目{i}" in joined for i in range(8))


async def test_staff_without_a_branch_is_told_why(chat, world) -> None:
    reply = await chat.send(world.staff, "/services")
    assert "不属于任何党支部" in reply.text


async def test_someone_who_has_not_joined_is_told_how_to_join(chat, world) -> None:
    reply = await chat.send(chat.user("路人"), "/services")
    assert "邀请链接" in reply.text
