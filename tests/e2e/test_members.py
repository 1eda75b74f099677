"""/members (roster), /invite (link and QR code), /web (one-time sign-in link), and who may use them."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import timedelta

from sqlalchemy import select

from handlers.members import qr_png
from storage.models import Invite, Membership, Person, Role, WebSignIn
from tests.e2e.forge import forged_button
from tests.e2e.harness import NOW, Chat


async def test_secretary_sees_the_roster_with_activity_and_reachability(chat, world, session) -> None:
    blocked = await session.get(Person, world.member_a2.id)
    blocked.blocked_at = NOW - timedelta(days=3)
    waiting = Person(name="王六", telegram_id=None, roster_note="第二党小组")
    session.add(waiting)
    await session.flush()
    session.add(Membership(person_id=waiting.id, org_id=world.branch_a.id, role=Role.MEMBER))
    active = await session.get(Person, world.member_a.id)
    active.last_active_at = NOW - timedelta(days=1)
    await session.commit()

    reply = await chat.send(world.secretary_a, "/members")
    text = reply.text
    assert world.branch_a.name in text and "共 4 人" in text
    assert "可以联系 2 人" in text and "停用了机器人 1 人" in text and "尚未加入 1 人" in text
    assert "张三（党员）· 最近活动 2026-11-27 · ✅ 可联系" in text
    assert "李四（党员）· 最近活动 无 · ⛔ 已停用机器人" in text
    assert "王六（党员）· 最近活动 无 · ⏳ 尚未加入 · 备注：第二党小组" in text
    assert "李书记（书记）" in text
    assert "王五" not in text  # branch B's


async def test_staff_pick_a_branch_of_their_subtree(chat, world) -> None:
    reply = await chat.send(world.staff, "/members")
    assert reply.buttons == [world.branch_a.name, world.branch_b.name]
    roster = await chat.press(world.staff, reply, world.branch_b.name)
    assert "王五" in roster.text and "陈书记" in roster.text and "张三" not in roster.text


async def test_a_branch_outside_the_scope_is_refused(chat, world) -> None:
    await chat.send(world.other_staff, "/members")
    for data in (
        f"spk:members:{world.branch_a.id}",
        f"spk:invite:{world.branch_a.id}",
        f"siv:{world.branch_a.id}:member",
    ):
        pressed = await chat.press(
            world.other_staff, await forged_button(chat, world.other_staff, data), "forged"
        )
        assert pressed.alert and "没有权限" in pressed.alert, data
    assert "王五" not in "".join(m.text or "" for m in chat.messages(world.other_staff))


async def test_secretary_invite_is_a_shared_link_and_the_same_link_as_a_qr_code(chat, db, world) -> None:
    reply = await chat.send(world.secretary_a, "/invite")
    message = reply.message
    assert message.photo is not None
    link = re.search(r"https://t\.me/branchbot_test_bot\?start=([A-Za-z0-9_-]+)", message.caption or "")
    assert link is not None and world.branch_a.name in message.caption
    inv = await db.one(select(Invite))
    assert (inv.code, inv.org_id, inv.role, inv.uses_left) == (link[1], world.branch_a.id, Role.MEMBER, 200)
    assert inv.expires_at == NOW + timedelta(days=30) and inv.created_by_id == world.secretary_a.id
    # The picture is the QR code of exactly that link, with the branch's name under it.
    assert message.photo.data == qr_png(link[0], world.branch_a.name)
    assert_code_with_label(message.photo.data, link[0], world.branch_a.name)

    newcomer = chat.user("扫码者")
    joined = await chat.send(newcomer, f"/start {inv.code}")
    assert world.branch_a.name in joined.text and "个人信息" in joined.text


def assert_code_with_label(png: bytes, link: str, label: str) -> None:
    from fontTools.ttLib import TTFont
    from PIL import Image

    from storage.fonts import cjk_font_path

    plain = Image.open(io.BytesIO(qr_png(link)))
    shown = Image.open(io.BytesIO(png)).convert("L")
    assert shown.width == plain.width and shown.height > plain.height
    # The code itself (all but the lower half of its quiet zone) is pixel for pixel the plain one.
    keep = (0, 0, plain.width, plain.height - 20)
    assert shown.crop(keep).tobytes() == plain.convert("L").crop(keep).tobytes()
    # Below it, ink: the name was drawn...
    band = shown.crop((0, plain.height - 20, shown.width, shown.height))
    assert band.getextrema()[0] < 128
    # ...with a font that has every one of its characters (no boxes).
    cmap = TTFont(str(cjk_font_path()), fontNumber=0).getBestCmap()
    assert all(ord(ch) in cmap for ch in label)


async def test_staff_invite_a_secretary_for_one_person(chat, db, world) -> None:
    reply = await chat.send(world.staff, "/invite")
    picked = await chat.press(world.staff, reply, world.branch_b.name)
    assert picked.buttons == ["党员（可多人使用的链接）", "书记（仅限一人使用）"]
    made = await chat.press(world.staff, picked, "书记（仅限一人使用）")
    assert made.message.photo is not None and "只能由 1 人使用" in (made.message.caption or "")
    inv = await db.one(select(Invite))
    assert (inv.org_id, inv.role, inv.uses_left) == (world.branch_b.id, Role.SECRETARY, 1)


async def test_web_sends_a_one_time_sign_in_link(chat, db, world) -> None:
    reply = await chat.send(world.secretary_a, "/web")
    m = re.search(r"http://127\.0\.0\.1:8080/login/link/([A-Za-z0-9_-]+)", reply.text)
    assert m is not None and "10 分钟" in reply.text
    row = await db.one(select(WebSignIn))
    assert row.person_id == world.secretary_a.id and row.used_at is None
    assert row.token_hash == hashlib.sha256(m[1].encode()).hexdigest()
    assert row.expires_at == NOW + timedelta(minutes=10)


async def test_web_link_uses_the_public_admin_address_when_set(emulator, bots, bot_app, db, world) -> None:
    await bots.stop(bot_app)
    app = await bots.start(admin_public_url="https://admin.example.org/")
    reply = await Chat(emulator, app).send(world.staff, "/web")
    assert "https://admin.example.org/login/link/" in reply.text
    assert await db.count(WebSignIn) == 1


SECRETARY_COMMANDS = (
    "/pending",
    "/notify",
    "/members",
    "/invite",
    "/assess",
    "/report",
    "/reminders",
    "/web",
)


async def test_members_are_told_these_commands_are_for_secretaries(chat, db, world) -> None:
    for command in SECRETARY_COMMANDS:
        reply = await chat.send(world.member_a, command)
        assert f"{command} 仅供支部书记和党工委工作人员使用" in reply.text, command
    reply = await chat.send(world.secretary_a, "/branches")
    assert "/branches 仅供党工委工作人员使用" in reply.text
    assert await db.count(Invite) == 0 and await db.count(WebSignIn) == 0


async def test_people_who_have_not_joined_are_told_how_to_join(chat, db, world) -> None:
    stranger = chat.user("路人")
    for command in (*SECRETARY_COMMANDS, "/branches"):
        reply = await chat.send(stranger, command)
        assert "邀请链接" in reply.text, command
    assert await db.count(Person, Person.telegram_id == stranger.id) == 0
