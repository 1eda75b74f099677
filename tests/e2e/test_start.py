"""Joining through an invite: privacy notice first, nothing stored before consent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from handlers.kit.commands import set_default_menus
from storage import invites
from storage.models import ConversationState, Membership, Person, ProcessedUpdate, Role
from tests.e2e.harness import NOW


async def make_code(session, world, role: Role = Role.MEMBER, uses: int = 5) -> str:
    actor = await world.actor(session, world.secretary_a)
    inv = await invites.create_invite(session, actor, world.branch_a.id, role, uses=uses, days=7, now=NOW)
    await session.commit()
    return inv.code


async def test_stranger_is_told_how_to_join_and_nothing_is_stored(chat, db, world) -> None:
    people_before = await db.count(Person)
    reply = await chat.send(chat.user("路人"), "/start")
    assert "书记" in reply.text and "邀请链接" in reply.text
    assert await db.count(Person) == people_before


async def test_invite_shows_privacy_notice_and_stores_nothing_before_consent(
    chat, db, world, session
) -> None:
    code = await make_code(session, world)
    people_before = await db.count(Person)
    newcomer = chat.user("新党员")
    reply = await chat.send(newcomer, f"/start {code}")
    assert "个人信息" in reply.text and world.branch_a.name in reply.text
    assert reply.buttons == ["✅ 同意并加入", "不同意"]
    assert await db.count(Person) == people_before
    assert await db.count(Person, Person.telegram_id == newcomer.id) == 0

    reply = await chat.press(newcomer, reply, "✅ 同意并加入")
    assert "已加入" in reply.all_text
    person = await db.one(select(Person).where(Person.telegram_id == newcomer.id))
    assert person.consent_at == NOW and person.name == "新党员"
    roles = await db.all(select(Membership.role).where(Membership.person_id == person.id))
    assert roles == [Role.MEMBER]


async def test_declining_stores_nothing(chat, db, world, session) -> None:
    code = await make_code(session, world)
    newcomer = chat.user("犹豫者")
    reply = await chat.send(newcomer, f"/start {code}")
    reply = await chat.press(newcomer, reply, "不同意")
    assert "没有保存" in reply.all_text
    assert await db.count(Person, Person.telegram_id == newcomer.id) == 0


async def test_expired_invite_is_explained(chat, db, world, session, clock) -> None:
    code = await make_code(session, world)
    clock.advance(timedelta(days=8))
    reply = await chat.send(chat.user("迟到者"), f"/start {code}")
    assert "过期" in reply.text
    assert not reply.buttons


async def test_unknown_code_is_explained(chat, world) -> None:
    reply = await chat.send(chat.user("路人"), "/start nosuchcode12345")
    assert reply.text and not reply.buttons


async def test_update_redelivered_after_a_restart_joins_once_and_replies_once(
    chat, db, world, session, emulator, bots, bot_app
) -> None:
    code = await make_code(session, world, uses=1)
    newcomer = chat.user("重复者")
    reply = await chat.send(newcomer, f"/start {code}")
    update = await emulator.press(newcomer, reply.message, data=reply.message.buttons[0]["callback_data"])
    await chat.deliver(update)
    after_first = len(chat.messages(newcomer))
    assert await db.count(Person, Person.telegram_id == newcomer.id) == 1

    # The bot restarts and Telegram hands the same update out again (polling restart).
    await bots.stop(bot_app)
    emulator.redeliver(update, bot=bot_app.bot.id)
    again = await bots.start()
    await again.intake.wait_handled(update["update_id"], 10)
    assert len(chat.messages(newcomer)) == after_first
    answers = [a for a in emulator.callback_answers if a.query_id == update["callback_query"]["id"]]
    assert len(answers) == 1
    assert await db.count(Person, Person.telegram_id == newcomer.id) == 1
    assert (
        await db.count(
            Membership,
            Membership.person_id
            == (await db.scalar(select(Person.id).where(Person.telegram_id == newcomer.id))),
        )
        == 1
    )
    assert await db.count(ProcessedUpdate, ProcessedUpdate.update_id == update["update_id"]) == 1


async def test_command_redelivered_after_a_restart_is_answered_once(
    chat, world, emulator, bots, bot_app
) -> None:
    reply = await chat.send(world.member_a, "/help")
    assert "/log" in reply.text
    update_id = max(emulator.bot(bot_app.bot.id).all_updates)
    update = emulator.bot(bot_app.bot.id).all_updates[update_id]
    count = len(chat.messages(world.member_a))
    await bots.stop(bot_app)
    emulator.redeliver(update, bot=bot_app.bot.id)
    again = await bots.start()
    await again.intake.wait_handled(update_id, 10)
    assert len(chat.messages(world.member_a)) == count


async def test_english_speaker_gets_english(chat, world, session) -> None:
    code = await make_code(session, world)
    reply = await chat.send(chat.user("Alice", language_code="en"), f"/start {code}")
    assert "personal information" in reply.text


async def test_member_using_a_secretary_command_is_told_it_is_for_secretaries(chat, world) -> None:
    reply = await chat.send(world.member_a, "/pending")
    assert "书记" in reply.text


async def test_unknown_command_is_explained(chat, world) -> None:
    reply = await chat.send(world.member_a, "/frobnicate")
    assert "/frobnicate" in reply.text and "/help" in reply.text


async def test_person_with_two_roles_gets_both_regression_one_row_read(chat, world, session) -> None:
    # Regression: the person is loaded with their memberships in one joined query; reading only
    # its first row would have dropped every role but one.
    session.add(Membership(person_id=world.member_a.id, org_id=world.committee.id, role=Role.STAFF))
    await session.commit()
    reply = await chat.send(world.member_a, "/help")
    assert "/log" in reply.text and "/branches" in reply.text


async def test_help_in_the_middle_of_a_form_leaves_the_form_regression(chat, world, db) -> None:
    reply = await chat.send(world.member_a, "/log")
    assert reply.buttons  # the wizard asks for the service action
    assert await db.count(ConversationState) == 1
    await chat.send(world.member_a, "/help")
    assert await db.count(ConversationState) == 0


# ---- each role sees its own commands ----


async def join_as(chat, session, world, org, role: Role, name: str, language_code: str = "zh"):
    actor = await world.actor(session, world.admin)
    inv = await invites.create_invite(session, actor, org.id, role, uses=1, days=7, now=NOW)
    await session.commit()
    user = chat.user(name, language_code=language_code)
    offer = await chat.send(user, f"/start {inv.code}")
    joined = await chat.press(user, offer, offer.message.buttons[0]["text"])
    return user, joined


def commands(emulator, user) -> list[str]:
    return [c["command"] for c in emulator.menu(user)]


@pytest.mark.parametrize("language_code", ["zh", "en"])
async def test_committee_staff_outside_a_branch_get_no_member_commands(
    chat, world, session, emulator, language_code
) -> None:
    user, joined = await join_as(chat, session, world, world.committee, Role.STAFF, "新干事", language_code)
    menu = commands(emulator, user)
    assert {"log", "my", "commit", "commitments", "services"}.isdisjoint(menu)
    assert {"branches", "notify", "report", "pending", "help", "cancel"} <= set(menu)
    welcome = joined.sent[-1].text
    assert "/log" not in welcome and "/branches" in welcome
    help_ = (await chat.send(user, "/help")).text
    assert "/log" not in help_ and "/my" not in help_ and "/commit" not in help_
    assert "书记命令" not in help_ and "Secretary" not in help_
    assert "/branches" in help_ and "/pending" in help_ and "/checklist" in help_


async def test_a_member_keeps_the_default_menu_and_a_secretary_gets_both(
    chat, world, session, emulator, bot_app
) -> None:
    await set_default_menus(bot_app.bot)  # what the runtime does at start-up
    member, _joined = await join_as(chat, session, world, world.branch_a, Role.MEMBER, "新党员")
    assert "log" in commands(emulator, member) and "pending" not in commands(emulator, member)
    secretary, _joined = await join_as(chat, session, world, world.branch_b, Role.SECRETARY, "新书记")
    assert {"log", "my", "pending", "assess"} <= set(commands(emulator, secretary))
    assert "branches" not in commands(emulator, secretary)
    help_ = (await chat.send(secretary, "/help")).text
    assert "/log" in help_ and "书记命令" in help_ and "党工委命令" not in help_


async def test_existing_staff_help_has_no_member_or_secretary_section(chat, world) -> None:
    help_ = (await chat.send(world.staff, "/help")).text
    assert "/log" not in help_ and "书记命令" not in help_ and "党工委命令" in help_


async def test_random_text_with_nothing_in_progress_points_to_help_not_cancel(chat, world, db) -> None:
    reply = await chat.send(world.member_a, "你好，在吗")
    assert "没有理解" in reply.text and "/help" in reply.text and "/cancel" not in reply.text
    assert await db.count(ConversationState) == 0


async def test_random_text_in_a_form_that_waits_for_a_button_mentions_cancel(chat, world) -> None:
    await chat.send(world.member_a, "/log")  # the first step waits for a service action button
    reply = await chat.send(world.member_a, "你好，在吗")
    assert "/cancel" in reply.text


async def test_help_brings_the_menu_in_line_with_the_roles(chat, world, emulator) -> None:
    """Staff whose role was given outside the chat (the web, the command line) get their own
    menu the next time they ask for /help: no /log, but /branches."""
    user = chat.user_for(world.staff)
    assert "branches" not in commands(emulator, user)  # nothing of their own yet (default, or none)
    await chat.send(world.staff, "/help")
    menu = commands(emulator, user)
    assert "branches" in menu and "log" not in menu and "my" not in menu
