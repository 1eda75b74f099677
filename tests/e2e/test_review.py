"""/pending: approve, reject with a reason, approve all shown; the member is told through the outbox."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from content.pack import get_pack
from handlers.review import pack_ids
from storage import service_log
from storage.models import Delivery, EntryStatus, Person, ProcessedUpdate, ServiceEntry
from tests.e2e.forge import forged_button
from tests.e2e.harness import NOW

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

TODAY = date(2026, 11, 28)


async def log(
    session, world, person, minutes=90, day=TODAY - timedelta(days=2), description="社区义诊"
) -> int:
    actor = await world.actor(session, person)
    entry = service_log.new_entry(day=day, minutes=minutes, action="volunteer", description=description)
    row = await service_log.log_service(
        session, actor, entry, source=None, today=TODAY, window_days=90, pack=PACK
    )
    await session.commit()
    return row.id


async def entry(db, entry_id: int) -> ServiceEntry:
    return await db.one(select(ServiceEntry).where(ServiceEntry.id == entry_id))


async def test_pending_lists_the_branchs_entries_and_approving_one_tells_the_member(
    chat, db, world, session
) -> None:
    first = await log(session, world, world.member_a, minutes=150)
    second = await log(session, world, world.member_a2, description="敬老院探访")
    await log(session, world, world.member_b)  # another branch: not secretary A's

    reply = await chat.send(world.secretary_a, "/pending")
    listing = reply.sent[0]
    assert "共 2 条待审，全部列在下面" in listing.text
    assert "张三" in listing.text and "2.5 小时" in listing.text and "社区义诊" in listing.text
    assert "李四" in listing.text and "敬老院探访" in listing.text and "王五" not in listing.text
    # Each entry is labelled by its id, on its line and on its buttons.
    assert f"#{first} 张三" in listing.text and f"#{second} 李四" in listing.text
    assert [b["text"] for b in listing.buttons] == [
        f"✅ 通过 #{first}",
        f"❌ 退回 #{first}",
        f"✅ 通过 #{second}",
        f"❌ 退回 #{second}",
        "✅ 以上全部通过（2 条）",
    ]

    pressed = await chat.press(world.secretary_a, listing, f"✅ 通过 #{first}")
    assert pressed.alert and "已通过" in pressed.alert
    row = await entry(db, first)
    assert row.status is EntryStatus.APPROVED and row.reviewer_id == world.secretary_a.id
    assert row.reviewed_at == NOW
    assert (await entry(db, second)).status is EntryStatus.PENDING
    told = await db.one(select(Delivery).where(Delivery.dedupe_key == f"review:{first}:approved"))
    assert told.chat_id == world.member_a.telegram_id and told.person_id == world.member_a.id
    assert "2.5 小时" in told.payload["text"] and "已通过审核" in told.payload["text"]
    # The list is redrawn in place: it says what changed, the first is done, and the second
    # keeps its label and its buttons.
    redrawn = pressed.edited[-1]
    assert redrawn.message_id == listing.message_id
    assert f"刚才：✅ 已通过 #{first}（张三，2.5 小时）" in redrawn.text
    assert f"#{first} ✅ 已通过" in redrawn.text and "共 1 条待审，全部列在下面" in redrawn.text
    assert [b["text"] for b in redrawn.buttons] == [
        f"✅ 通过 #{second}",
        f"❌ 退回 #{second}",
        "✅ 以上全部通过（1 条）",
    ]


async def test_reject_asks_for_a_reason_and_tells_the_member_why(chat, db, world, session) -> None:
    entry_id = await log(session, world, world.member_a)
    listing = (await chat.send(world.secretary_a, "/pending")).sent[0]

    asked = await chat.press(world.secretary_a, listing, f"❌ 退回 #{entry_id}")
    assert "理由" in asked.text and "张三" in asked.text
    too_long = await chat.send(world.secretary_a, "理" * 301)
    assert "300" in too_long.text and "重新" in too_long.text
    assert (await entry(db, entry_id)).status is EntryStatus.PENDING

    done = await chat.send(world.secretary_a, "服务时长与签到表不符")
    assert "已退回" in done.text
    row = await entry(db, entry_id)
    assert (row.status, row.reason) == (EntryStatus.REJECTED, "服务时长与签到表不符")
    told = await db.one(select(Delivery).where(Delivery.dedupe_key == f"review:{entry_id}:rejected"))
    assert "服务时长与签到表不符" in told.payload["text"]
    assert "都审核完了" in done.edited[-1].text and not done.edited[-1].buttons
    assert f"刚才：❌ 已退回 #{entry_id}（张三，1.5 小时）" in done.edited[-1].text
    assert f"#{entry_id} ❌ 已退回" in done.edited[-1].text


async def test_a_refused_reason_is_recorded_as_handled_and_not_answered_again(
    chat, db, world, session, emulator, bots, bot_app
) -> None:
    """Regression: the form's refusal rolled back the update's transaction, the update's claim
    with it, so a redelivery of that update (a restart before Telegram heard it was handled)
    was handled and answered again. The refused step now runs in a savepoint."""
    entry_id = await log(session, world, world.member_a)
    listing = (await chat.send(world.secretary_a, "/pending")).sent[0]
    await chat.press(world.secretary_a, listing, f"❌ 退回 #{entry_id}")
    secretary = chat.user_for(world.secretary_a)
    update = await emulator.send_text(secretary, "理" * 301, bot=bot_app.bot.id)
    await chat.deliver(update)
    assert await db.count(ProcessedUpdate, ProcessedUpdate.update_id == update["update_id"]) == 1
    said = len(chat.messages(secretary))
    assert "300" in chat.messages(secretary)[-1].text

    await bots.stop(bot_app)
    emulator.redeliver(update, bot=bot_app.bot.id)
    chat.app = await bots.start()
    await chat.app.intake.wait_handled(update["update_id"], 10)
    assert len(chat.messages(secretary)) == said
    # The form is still at its step: the next reason is taken.
    assert "已退回" in (await chat.send(world.secretary_a, "与签到表不符")).text
    assert (await entry(db, entry_id)).status is EntryStatus.REJECTED


async def test_a_refused_approve_is_recorded_as_handled(chat, db, world, session) -> None:
    entry_id = await log(session, world, world.member_a)
    old = (await chat.send(world.secretary_a, "/pending")).sent[0]
    new = (await chat.send(world.secretary_a, "/pending")).sent[0]
    await chat.press(world.secretary_a, new, f"✅ 通过 #{entry_id}")
    handled = await db.count(ProcessedUpdate)
    again = await chat.press(world.secretary_a, old, f"✅ 通过 #{entry_id}")
    assert again.alert and "审核过" in again.alert
    assert await db.count(ProcessedUpdate) == handled + 1


async def test_a_photo_instead_of_a_reason_is_explained(chat, db, world, session) -> None:
    entry_id = await log(session, world, world.member_a)
    listing = (await chat.send(world.secretary_a, "/pending")).sent[0]
    await chat.press(world.secretary_a, listing, f"❌ 退回 #{entry_id}")
    reply = await chat.send_photo(world.secretary_a, b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    assert "文字" in reply.text
    assert (await entry(db, entry_id)).status is EntryStatus.PENDING


async def test_approve_all_shown_approves_exactly_the_list(chat, db, world, session) -> None:
    ids = [await log(session, world, p) for p in (world.member_a, world.member_a2)]
    listing = (await chat.send(world.secretary_a, "/pending")).sent[0]
    later = await log(session, world, world.member_a, day=TODAY)  # arrives after the list was shown

    pressed = await chat.press(world.secretary_a, listing, "✅ 以上全部通过")
    assert pressed.alert and "2 条" in pressed.alert
    assert [(await entry(db, i)).status for i in ids] == [EntryStatus.APPROVED] * 2
    assert (await entry(db, later)).status is EntryStatus.PENDING
    keys = await db.all(select(Delivery.dedupe_key).order_by(Delivery.id))
    assert keys == [f"review:{i}:approved" for i in ids]
    assert "发送 /pending 查看其余记录" in pressed.edited[-1].text
    assert f"刚才：✅ 已通过 2 条（#{ids[0]}、#{ids[1]}）" in pressed.edited[-1].text
    assert "还有 1 条待审" in pressed.edited[-1].text  # the one that came later
    assert "最早的 0 条" not in pressed.edited[-1].text


async def test_a_button_from_an_old_list_is_refused_and_changes_nothing(chat, db, world, session) -> None:
    entry_id = await log(session, world, world.member_a)
    old = (await chat.send(world.secretary_a, "/pending")).sent[0]
    older = (await chat.send(world.secretary_a, "/pending")).sent[0]
    new = (await chat.send(world.secretary_a, "/pending")).sent[0]
    await chat.press(world.secretary_a, new, f"✅ 通过 #{entry_id}")
    again = await chat.press(world.secretary_a, old, f"✅ 通过 #{entry_id}")
    assert again.alert and "审核过" in again.alert
    assert f"#{entry_id} ✅ 已通过" in again.edited[-1].text  # the old list is brought up to date
    rejected = await chat.press(world.secretary_a, older, "✅ 以上全部通过")
    assert rejected.alert and "0 条" in rejected.alert and "之前已处理" in rejected.alert
    row = await entry(db, entry_id)
    assert row.status is EntryStatus.APPROVED
    assert await db.count(Delivery) == 1


async def test_nothing_pending_is_said_plainly(chat, world) -> None:
    reply = await chat.send(world.secretary_a, "/pending")
    assert len(reply.sent) == 1
    assert "没有等您审核" in reply.text and "没有待评诺" in reply.text
    assert reply.buttons == ["📢 公示本支部的承诺"]


async def test_staff_review_a_secretarys_own_entry_and_secretaries_do_not_see_it(
    chat, db, world, session
) -> None:
    entry_id = await log(session, world, world.secretary_a)
    assert "没有等您审核" in (await chat.send(world.secretary_a, "/pending")).text
    listing = (await chat.send(world.staff, "/pending")).sent[0]
    assert "李书记" in listing.text and world.branch_a.name in listing.text
    await chat.press(world.staff, listing, f"✅ 通过 #{entry_id}")
    assert (await entry(db, entry_id)).reviewer_id == world.staff.id


async def test_staff_outside_the_subtree_can_neither_see_nor_review(chat, db, world, session) -> None:
    entry_id = await log(session, world, world.member_a)
    reply = await chat.send(world.other_staff, "/pending")
    assert "没有等您审核" in reply.text
    for data in (f"srv:{entry_id}:1", f"sra:{pack_ids([entry_id])}"):
        pressed = await chat.press(
            world.other_staff, await forged_button(chat, world.other_staff, data), "forged"
        )
        assert pressed.alert and "没有权限" in pressed.alert
    button = await forged_button(chat, world.other_staff, f"srv:{entry_id}:0")
    refused = await chat.press(world.other_staff, button, "forged")
    assert refused.alert and "不在您的审核范围" in refused.alert
    assert (await entry(db, entry_id)).status is EntryStatus.PENDING
    assert await db.count(Delivery) == 0


async def test_a_command_in_the_middle_of_a_rejection_leaves_it(chat, db, world, session) -> None:
    entry_id = await log(session, world, world.member_a)
    listing = (await chat.send(world.secretary_a, "/pending")).sent[0]
    await chat.press(world.secretary_a, listing, f"❌ 退回 #{entry_id}")
    again = await chat.send(world.secretary_a, "/pending")
    assert "共 1 条" in again.sent[0].text
    await chat.send(world.secretary_a, "这句话不是理由")
    assert (await entry(db, entry_id)).status is EntryStatus.PENDING


def test_the_ids_of_a_full_list_fit_in_one_button() -> None:
    from handlers.review import SHOWN, ReviewAll, unpack_ids

    ids = [2**31 - 1 - i for i in range(SHOWN)]
    data = ReviewAll(ids=pack_ids(ids)).pack()
    assert len(data.encode()) <= 64
    assert unpack_ids(ReviewAll.unpack(data).ids) == ids


async def test_a_long_queue_shows_the_oldest_first(chat, world, session) -> None:
    for i in range(8):
        await log(session, world, world.member_a, minutes=30, description=f"第{i + 1}次服务")
    listing = (await chat.send(world.secretary_a, "/pending")).sent[0]
    assert "共 8 条待审，这里列出最早的 6 条" in listing.text
    assert "第1次服务" in listing.text and "第6次服务" in listing.text and "第7次服务" not in listing.text


async def test_english_speaking_secretary_gets_english(chat, world, session) -> None:
    secretary = await session.get(Person, world.secretary_a.id)
    secretary.locale = "en"
    await session.commit()
    entry_id = await log(session, world, world.member_a)
    listing = (await chat.send(world.secretary_a, "/pending")).sent[0]
    assert "awaiting review" in listing.text and "1.5 h" in listing.text
    assert [b["text"] for b in listing.buttons][:2] == [f"✅ Approve #{entry_id}", f"❌ Reject #{entry_id}"]


async def test_labels_stay_with_their_entries_across_actions_and_lists(chat, db, world, session) -> None:
    """The reported case: four pending, "✅ 通过 4" pressed; the count is right and every other
    entry keeps the label it had, in the redrawn list and in a fresh /pending."""
    ids = [await log(session, world, world.member_a, minutes=30, description=f"第{i}次") for i in range(1, 6)]
    listing = (await chat.send(world.secretary_a, "/pending")).sent[0]
    assert "共 5 条待审，全部列在下面" in listing.text
    pressed = await chat.press(world.secretary_a, listing, f"✅ 通过 #{ids[3]}")
    redrawn = pressed.edited[-1]
    assert "共 4 条待审，全部列在下面" in redrawn.text
    assert f"刚才：✅ 已通过 #{ids[3]}" in redrawn.text
    open_ids = [i for i in ids if i != ids[3]]
    labels = [f"✅ 通过 #{i}" for i in open_ids]
    assert [b["text"] for b in redrawn.buttons if b["text"].startswith("✅ 通过 #")] == labels
    fresh = (await chat.send(world.secretary_a, "/pending")).sent[0]
    assert [b["text"] for b in fresh.buttons if b["text"].startswith("✅ 通过 #")] == labels
    assert f"#{ids[4]} 张三" in fresh.text and f"#{ids[3]}" not in fresh.text


async def test_a_possible_duplicate_is_marked_with_the_other_entrys_label(chat, world, session) -> None:
    first = await log(session, world, world.member_a, minutes=120, description="社区义诊")
    second = await log(
        session, world, world.member_a, minutes=60, description="社区义诊！"
    )  # confirmed in chat
    third = await log(session, world, world.member_a2, minutes=120, description="社区义诊")  # someone else
    listing = (await chat.send(world.secretary_a, "/pending")).sent[0]
    text = listing.text
    assert f"可能重复：与 #{second}" in text and f"可能重复：与 #{first}" in text
    assert text.count("可能重复") == 2  # not the other member's entry
    assert f"#{third} 李四" in text
