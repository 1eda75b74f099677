"""Evidence photos: fetched once into the local store when logged, shown to the reviewer with
/pending (by file id, labelled with the entry), fetched later if Telegram failed, erased with
the person."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import ServiceEntry
from tests.e2e.forge import forged_button
from tests.e2e.test_log import PNG


async def log_with_photo(chat, person, description: str = "陪同独居老人就医") -> None:
    reply = await chat.send(person, "/log")
    reply = await chat.press(person, reply, "党员与您同行")
    reply = await chat.press(person, reply, "昨天")
    reply = await chat.press(person, reply, "2 小时")
    reply = await chat.press(person, reply, "跳过")
    reply = await chat.send(person, description)
    reply = await chat.send_photo(person, PNG)
    done = await chat.press(person, reply, "✅ 提交")
    assert "待书记审核" in done.text


async def test_a_photo_is_kept_once_and_shown_with_pending(chat, db, world, emulator, evidence) -> None:
    calls = emulator.stats.requests["getFile"]
    await log_with_photo(chat, world.member_a)
    [row] = await db.all(select(ServiceEntry))
    assert row.evidence_file_id and row.evidence_path
    assert row.evidence_path.startswith(f"{world.member_a.id}/")
    assert evidence.read(row.evidence_path) == (PNG, "image/png")  # the bytes the member sent
    assert emulator.stats.requests["getFile"] == calls + 1

    listing = (await chat.send(world.secretary_a, "/pending")).sent[0]
    assert f"#{row.id} 张三" in listing.text and "📷" in listing.text
    assert [b["text"] for b in listing.buttons][:3] == [
        f"✅ 通过 #{row.id}",
        f"❌ 退回 #{row.id}",
        f"📷 照片 #{row.id}",
    ]
    shown = await chat.press(world.secretary_a, listing, f"📷 照片 #{row.id}")
    [photo] = shown.sent
    assert photo.photo is not None and photo.photo.file_id == row.evidence_file_id  # not uploaded again
    assert (photo.caption or "").startswith(f"#{row.id} 张三")
    assert emulator.stats.requests["getFile"] == calls + 1  # kept already: not fetched again
    # Someone outside the branch cannot have it sent to them.
    forged = await forged_button(chat, world.secretary_c, f"srp:{row.id}")
    refused = await chat.press(world.secretary_c, forged, "forged")
    assert refused.alert and not refused.sent


async def test_a_photo_telegram_would_not_give_is_fetched_by_pending(
    chat, db, world, emulator, evidence, bots
) -> None:
    # The gate tries a 500 three times before the handler sees it: fail all three.
    bots.expect_error("getFile", 500)
    emulator.faults.inject_5xx(count=3, method="getFile")
    calls = emulator.stats.requests["getFile"]
    await log_with_photo(chat, world.member_a)
    [row] = await db.all(select(ServiceEntry))
    assert emulator.stats.requests["getFile"] == calls + 3 and emulator.stats.injected_5xx >= 3
    assert row.evidence_file_id and row.evidence_path is None  # the fault happened: nothing kept

    await chat.send(world.secretary_a, "/pending")
    [row] = await db.all(select(ServiceEntry))
    assert row.evidence_path and evidence.read(row.evidence_path) == (PNG, "image/png")


async def test_erasure_deletes_the_persons_photos(chat, db, world, evidence) -> None:
    await log_with_photo(chat, world.member_a)
    await log_with_photo(chat, world.member_a2, "敬老院探访")
    rows = await db.all(select(ServiceEntry).order_by(ServiceEntry.id))
    mine, theirs = rows[0].evidence_path, rows[1].evidence_path
    assert evidence.path(mine).is_file() and evidence.path(theirs).is_file()

    reply = await chat.send(world.member_a, "/privacy")
    reply = await chat.press(world.member_a, reply, "🗑 删除我的数据")
    reply = await chat.press(world.member_a, reply, "⚠️ 确认删除")
    assert "已删除" in reply.text
    assert not evidence.path(mine).exists() and not evidence.path(mine).parent.exists()
    assert evidence.path(theirs).is_file()  # someone else's stay
    rows = await db.all(select(ServiceEntry).order_by(ServiceEntry.id))
    assert (rows[0].evidence_file_id, rows[0].evidence_path) == (None, None)
