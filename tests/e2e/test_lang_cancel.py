"""/lang switches the person's language (and a secretary's command menu); /cancel leaves any form."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import ConversationState, Person, ServiceEntry


async def locale_of(db, person: Person) -> str | None:
    return await db.scalar(select(Person.locale).where(Person.id == person.id))


async def test_member_switches_to_english_and_back(chat, db, world) -> None:
    reply = await chat.send(world.member_a, "/lang")
    assert "中文" in reply.text and reply.buttons == ["✓ 中文", "English"]
    done = await chat.press(world.member_a, reply, "English")
    assert "The language is now English" in done.text and done.buttons == []
    assert await locale_of(db, world.member_a) == "en"

    reply = await chat.send(world.member_a, "/help")
    assert "Commands" in reply.text and "/log" in reply.text
    reply = await chat.send(world.member_a, "/my")
    assert "My volunteer service" in reply.texts[0]

    reply = await chat.send(world.member_a, "/lang")
    assert reply.buttons == ["中文", "✓ English"]
    done = await chat.press(world.member_a, reply, "中文")
    assert "界面语言已切换为中文" in done.text
    assert await locale_of(db, world.member_a) == "zh"


async def test_secretary_gets_the_menu_in_the_new_language(chat, db, world, emulator) -> None:
    user = chat.user_for(world.secretary_a)
    reply = await chat.send(world.secretary_a, "/lang")
    await chat.press(world.secretary_a, reply, "English")
    menu = {c["command"]: c["description"] for c in emulator.menu(user)}
    assert "pending" in menu and "log" in menu
    assert menu["log"] == "Log volunteer service"
    assert await locale_of(db, world.secretary_a) == "en"


async def test_cancel_in_the_middle_of_the_wizard(chat, db, world) -> None:
    m = world.member_a
    reply = await chat.send(m, "/log")
    day_step = await chat.press(m, reply, "党员志愿服务行动")
    assert await db.count(ConversationState) == 1
    reply = await chat.send(m, "/cancel")
    assert "已取消" in reply.text
    assert await db.count(ConversationState) == 0
    stale = await chat.press(m, day_step, "今天")
    assert "失效" in (stale.alert or "")
    assert await db.count(ServiceEntry) == 0


async def test_cancel_at_a_typed_step_and_in_the_quick_form(chat, db, world) -> None:
    m = world.member_a
    reply = await chat.send(m, "/log")
    reply = await chat.press(m, reply, "党员志愿服务行动")
    reply = await chat.press(m, reply, "其他日期")
    reply = await chat.send(m, "/cancel")  # a typed step must not take the command as a date
    assert "已取消" in reply.text
    quick = await chat.send(m, "/log 2 今天 清扫")
    reply = await chat.send(m, "/cancel")
    assert "已取消" in reply.text
    stale = await chat.press(m, quick, "党员志愿服务行动")
    assert "失效" in (stale.alert or "")
    assert await db.count(ServiceEntry) == 0
    assert await db.count(ConversationState) == 0


async def test_cancel_with_nothing_open(chat, world) -> None:
    reply = await chat.send(world.member_a, "/cancel")
    assert "没有正在进行的操作" in reply.text


async def test_someone_who_has_not_joined_is_told_how_to_join(chat, world) -> None:
    reply = await chat.send(chat.user("路人"), "/lang")
    assert "邀请链接" in reply.text
