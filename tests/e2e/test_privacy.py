"""/privacy: read what is kept, export it as a file, delete it after a confirmation."""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy import select

from content.pack import get_pack
from handlers.kit.commands import set_person_menu
from storage.models import AuditEntry, EntryStatus, Membership, Person, ServiceEntry
from tests.e2e.harness import NOW


def entry(person, org, description: str) -> ServiceEntry:
    return ServiceEntry(
        person_id=person.id,
        org_id=org.id,
        day=date(2026, 11, 20),
        minutes=90,
        action="volunteer",
        place="社区",
        description=description,
        status=EntryStatus.APPROVED,
    )


async def test_notice_says_what_is_kept_and_who_sees_it(chat, world) -> None:
    reply = await chat.send(world.member_a, "/privacy")
    assert "谁能看到" in reply.text and "姓名" in reply.text and "志愿服务" in reply.text
    assert reply.buttons == ["📦 导出我的数据", "🗑 删除我的数据"]


async def test_export_sends_my_data_as_a_json_file(chat, db, world, session, emulator) -> None:
    session.add_all(
        [entry(world.member_a, world.branch_a, "社区义诊"), entry(world.member_a2, world.branch_a, "别人的")]
    )
    await session.commit()
    reply = await chat.send(world.member_a, "/privacy")
    done = await chat.press(world.member_a, reply, "📦 导出我的数据")
    assert done.answer is not None
    [doc] = [m for m in done.sent if m.document is not None]
    assert doc.document.file_name == "我的数据-2026-11-28.json"
    assert "全部数据" in (doc.caption or "")
    data = json.loads(emulator.files.get(doc.document.file_id).data.decode("utf-8"))
    assert data["profile"]["name"] == "张三" and data["profile"]["telegram_id"] == world.member_a.telegram_id
    assert [e["description"] for e in data["service_entries"]] == ["社区义诊"]  # not the other member's
    assert [m["org_name"] for m in data["memberships"]] == [world.branch_a.name]
    audit = await db.all(select(AuditEntry).where(AuditEntry.action == "person.export"))
    assert [(a.actor_id, a.subject_person_id, a.via) for a in audit] == [
        (world.member_a.id, world.member_a.id, "bot")
    ]


async def test_delete_can_be_called_off(chat, db, world) -> None:
    reply = await chat.send(world.member_a, "/privacy")
    warning = await chat.press(world.member_a, reply, "🗑 删除我的数据")
    assert "无法撤销" in warning.text and warning.buttons == ["⚠️ 确认删除", "不删除"]
    done = await chat.press(world.member_a, warning, "不删除")
    assert "没有任何变化" in done.text and done.buttons == []
    person = await db.one(select(Person).where(Person.id == world.member_a.id))
    assert person.erased_at is None and person.telegram_id == world.member_a.telegram_id


async def test_delete_after_confirmation_makes_me_a_stranger(chat, db, world, session) -> None:
    session.add(entry(world.member_a, world.branch_a, "社区义诊"))
    await session.commit()
    older = await chat.send(world.member_a, "/privacy")  # a second notice, left open
    reply = await chat.send(world.member_a, "/privacy")
    warning = await chat.press(world.member_a, reply, "🗑 删除我的数据")
    done = await chat.press(world.member_a, warning, "⚠️ 确认删除")
    assert "已删除" in done.text and done.buttons == []

    person = await db.one(select(Person).where(Person.id == world.member_a.id))
    assert person.erased_at == NOW and person.telegram_id is None and person.name != "张三"
    assert await db.count(Membership, Membership.person_id == person.id) == 0
    [row] = await db.all(select(ServiceEntry).where(ServiceEntry.person_id == person.id))
    assert (row.minutes, row.description, row.place) == (90, "", "")  # figures stay, words go

    reply = await chat.send(world.member_a, "/log 2 今天 清扫")
    assert "邀请链接" in reply.text
    stale = await chat.press(world.member_a, older, "🗑 删除我的数据")
    assert "失效" in (stale.alert or "")


async def test_a_secretary_who_deletes_loses_the_secretary_menu(
    chat, world, emulator, bot_app, session
) -> None:
    user = chat.user_for(world.secretary_a)
    await set_person_menu(bot_app.bot, user.id, await world.actor(session, world.secretary_a), "zh")
    await session.commit()
    assert "pending" in {c["command"] for c in emulator.menu(user)}
    reply = await chat.send(world.secretary_a, "/privacy")
    warning = await chat.press(world.secretary_a, reply, "🗑 删除我的数据")
    await chat.press(world.secretary_a, warning, "⚠️ 确认删除")
    assert "pending" not in {c["command"] for c in emulator.menu(user)}


async def test_someone_who_has_not_joined_is_told_how_to_join(chat, world) -> None:
    reply = await chat.send(chat.user("路人"), "/privacy")
    assert "邀请链接" in reply.text


async def test_privacy_tells_the_truth_about_public_commitments(chat, world, session) -> None:
    """/commit says a commitment is published in the branch; /privacy must say the same, and it
    must be true: another member of the branch sees it in the branch's public list."""
    from storage import commitments

    reply = await chat.send(world.member_a, "/privacy")
    assert "其他党员看不到您的记录" not in reply.text  # the old blanket promise
    assert "公开承诺" in reply.text and "公示" in reply.text and "/commit" in reply.text
    assert "照片" in reply.text  # evidence photos are kept (EVIDENCE_DIR), so /privacy names them

    owner = await world.actor(session, world.member_a)
    await commitments.make_commitment(
        session, owner, commitments.new_commitment(text="每月参加一次社区义诊", deadline=date(2026, 12, 31)),
        today=NOW.date(), pack=get_pack(),
    )  # fmt: skip
    await session.commit()
    other = await world.actor(session, world.member_a2)
    seen = await commitments.publication(session, other, world.branch_a.id, NOW.date())
    assert [(i.owner, i.text) for i in seen] == [("张三", "每月参加一次社区义诊")]


# ---- erasure leaves nothing that names them ----


async def _tables_holding(sessionmaker, needles: list[str]) -> tuple[dict[str, list[str]], int]:
    """Every table (reflected from the database, not the models, so a table nobody remembered is
    searched too) and every column, as text: where does any needle occur? And how many rows were read."""
    from sqlalchemy import MetaData

    async with sessionmaker() as s:
        conn = await s.connection()
        meta = MetaData()
        await conn.run_sync(lambda c: meta.reflect(bind=c))
        found: dict[str, list[str]] = {}
        rows_read = 0
        for table in meta.sorted_tables:
            if table.name == "alembic_version":
                continue
            for row in (await conn.execute(table.select())).mappings():
                rows_read += 1
                for col, value in row.items():
                    text = json.dumps(value, ensure_ascii=False, default=str)
                    if any(n in text for n in needles):
                        found.setdefault(table.name, []).append(col)
    return found, rows_read


def _store_files(root) -> list:
    from pathlib import Path

    return [p for p in Path(root).rglob("*") if p.is_file()] if Path(root).exists() else []


async def test_erasure_leaves_neither_telegram_id_nor_name_in_any_table(
    chat, db, world, sessionmaker, evidence
) -> None:
    """A secretary who used the chat's features (a service entry with a photo, a commitment, a
    notice to the branch, an export, a web link) erases their data: no table holds their Telegram
    id or name any more, and the photo store holds nothing of theirs."""
    from tests.e2e.harness import poll_until
    from tests.e2e.test_log import PNG

    sec = world.secretary_a
    tg, name = str(sec.telegram_id), sec.name
    reply = await chat.send(sec, "/log")
    reply = await chat.press(sec, reply, "党员与您同行")
    reply = await chat.press(sec, reply, "昨天")
    reply = await chat.press(sec, reply, "2 小时")
    await chat.send(sec, "城东社区服务站")
    await chat.send(sec, "陪同独居老人就医")
    reply = await chat.send_photo(sec, PNG)
    done = await chat.press(sec, reply, "✅ 提交")
    assert "已登记" in done.text and "已附 1 张" in done.text

    async def stored() -> list:
        return _store_files(evidence.root)

    await poll_until(stored, timeout=15)  # the photo is fetched into the store after the commit
    [photo] = _store_files(evidence.root)
    assert photo.parent.name == str(sec.id)
    reply = await chat.send(sec, "/commit")
    reply = await chat.press(sec, reply, "每月参加志愿服务")
    done = await chat.press(sec, reply, "建议期限")
    assert "已亮诺" in done.text
    await chat.send(sec, "/notify")
    preview = await chat.send(sec, "本周五下午3点开展主题党日活动。")
    await chat.press(sec, preview.sent[-1], "📤 立即发送")
    reply = await chat.send(sec, "/privacy")
    await chat.press(sec, reply, "📦 导出我的数据")
    assert "/login/link/" in (await chat.send(sec, "/web")).all_text

    before, _ = await _tables_holding(sessionmaker, [tg, name])
    # The sources the chat writes do hold the Telegram id: the search below can find it.
    assert {"service_entries", "commitments", "notices", "people"} <= set(before), before

    reply = await chat.send(sec, "/privacy")
    warning = await chat.press(sec, reply, "🗑 删除我的数据")
    done = await chat.press(sec, warning, "⚠️ 确认删除")
    assert "已删除" in done.text

    after, rows_read = await _tables_holding(sessionmaker, [tg, name])
    assert after == {}, after
    assert rows_read > 20
    left = _store_files(evidence.root)
    assert not [f for f in left if f.parent.name == str(sec.id)], left
    needles = [tg.encode(), name.encode("utf-8")]
    assert not [f for f in left if any(n in f.read_bytes() or n.decode() in str(f) for n in needles)]
    print(
        f"erasure: searched {rows_read} rows in every table and {len(left)} files of the photo store "
        "for the Telegram id and the name"
    )
