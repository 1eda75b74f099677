"""/checklist: browse the pack's checklists, each item explained, with the focus for the branch's type."""

from __future__ import annotations

from content.pack import get_pack


async def test_choose_and_read_a_checklist(chat, world) -> None:
    reply = await chat.send(world.member_a, "/checklist")
    assert reply.buttons == ["“六有”目标", "“五化”目标", "“六抓六服务”"]
    # branch_a is a trade association: the notice's focus for that type is shown.
    assert "行业协会商会" in reply.text and "反映行业诉求" in reply.text

    view = await chat.press(world.member_a, reply, "“六有”目标")
    text = view.text
    pack = get_pack("qh-2015")
    six = pack.checklist("six_haves")
    for item in six.items:
        assert item.title.zh in text
    assert six.items[0].explanation.zh[:20] in text
    assert "反映行业诉求" in text
    assert view.buttons == ["« 返回清单列表"]

    back = await chat.press(world.member_a, view, "« 返回清单列表")
    assert "请选择要查看的清单" in back.text and len(back.buttons) == 3


async def test_the_focus_follows_the_organization_type(chat, world) -> None:
    reply = await chat.send(world.member_b, "/checklist")  # an academic society
    assert "学术类社会组织" in reply.text and "科技创新" in reply.text
    reply = await chat.send(world.member_c, "/checklist")  # a foundation
    assert "基金会" in reply.text and "社会公益服务" in reply.text


async def test_english(chat, world, session) -> None:
    world.member_b.locale = "en"
    session.add(world.member_b)
    await session.commit()
    reply = await chat.send(world.member_b, "/checklist")
    assert "Academic societies" in reply.text
    view = await chat.press(world.member_b, reply, 'The "five standards"')
    assert "Standardized venue" in view.text and "Typical evidence" in view.text
    assert len(view.text) < 4096


async def test_a_button_for_a_checklist_no_longer_in_the_pack_is_stale(chat, world, bot_app) -> None:
    from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

    chat.user_for(world.member_a)
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="旧清单", callback_data="ck:gone")]]
    )
    await bot_app.bot.send_message(world.member_a.telegram_id, "旧消息", reply_markup=markup)
    old = await chat.wait_message(world.member_a, "旧消息")
    stale = await chat.press(world.member_a, old, "旧清单")
    assert "失效" in (stale.alert or "")


async def test_someone_who_has_not_joined_is_told_how_to_join(chat, world) -> None:
    reply = await chat.send(chat.user("路人"), "/checklist")
    assert "邀请链接" in reply.text


async def test_a_double_tap_on_a_checklist_is_harmless(chat, world, emulator, bots) -> None:
    bots.expect_error("editMessageText", 400, "message is not modified")  # the second tap's edit
    reply = await chat.send(world.member_a, "/checklist")
    user = chat.user_for(world.member_a)
    data = reply.message.buttons[0]["callback_data"]
    one = await emulator.press(user, reply.message, data=data)
    two = await emulator.press(user, reply.message, data=data)  # the same edit, asked twice
    await chat.deliver(one)
    await chat.deliver(two)
    answers = {a.query_id: a for a in emulator.callback_answers}
    assert not answers[two["callback_query"]["id"]].show_alert  # no apology, no alert
    assert "有坚强有力的领导班子" in (reply.message.text or "")
    assert len(chat.messages(world.member_a)) == 1  # nothing extra was sent
