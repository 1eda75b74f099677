"""End to end through the real bot (real Dispatcher, real long polling) with its people on
DingTalk: the bot talks to the bridge's Bot API, the bridge to the DingTalk stand-in through the
real `dingtalk-stream` client. Nothing in handlers/ knows about DingTalk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from io import BytesIO
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.delivery import DeliveryWorker
from bridge.dingtalk.invites import qr_png
from bridge.dingtalk.markdown import escape
from bridge.dingtalk.openapi import DingTalkApi
from bridge.dingtalk.relay import DingTalkBridge, stable_id
from bridge.dingtalk.standin import Card, DingTalkStandIn, DtUser, Sent, button_texts
from config.clock import FrozenClock
from storage import invites
from storage.models import Delivery, EntryStatus, Invite, Membership, Person, Role, ServiceEntry
from tests.bridge.test_relay import png
from tests.e2e.conftest import BotRunner
from tests.e2e.harness import NOW, TOKEN, poll_until


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def bridge(
    standin: DingTalkStandIn, clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[DingTalkBridge]:
    api = DingTalkApi(standin.app_key, standin.app_secret, endpoint=standin.endpoint, oapi=standin.endpoint)
    async with DingTalkBridge(api, sessionmaker, bot_token=TOKEN, bot_username="branchbot_test_bot") as b:
        b._stream.RECONNECT_BASE_DELAY_SECONDS = 0.05  # type: ignore[union-attr]
        b._stream.RECONNECT_JITTER_SECONDS = 0.05  # type: ignore[union-attr]
        await standin.wait_for(lambda: standin.connected)
        yield b


@pytest.fixture
async def running_bot(
    bridge: DingTalkBridge, clean_db: AsyncEngine, db_url: str, clock: FrozenClock, tmp_path: Path
) -> AsyncIterator[BotRunner]:
    runner = BotRunner(bridge.front, clean_db, db_url, clock, evidence_dir=tmp_path / "evidence")
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop_all()
    assert bridge.front.violations == []  # every call the bot made was one Telegram accepts
    assert bridge.relay_errors == []


async def latest_card(st: DingTalkStandIn, user: DtUser, after: int = 0, button: str | None = None) -> Card:
    """The newest card in the person's chat after `after` (with the button `button`, if given)."""

    def found() -> Card | None:
        cards = [
            i
            for i in st.inbox(user)
            if isinstance(i, Card) and i.seq > after and (button is None or button in button_texts(i))
        ]
        return cards[-1] if cards else None

    return await st.wait_for(found, timeout=10)


async def test_a_dingtalk_member_joins_logs_service_and_the_secretary_approves_from_a_card(
    standin: DingTalkStandIn, bridge: DingTalkBridge, running_bot: BotRunner, world, session
) -> None:
    # The secretary is on DingTalk too: her record carries the id the bridge gives her.
    secretary = standin.add_user("李书记", user_id="sec0001")
    await session.execute(
        update(Person)
        .where(Person.id == world.secretary_a.id)
        .values(telegram_id=stable_id(secretary.user_id))
    )
    actor = await world.actor(session, world.secretary_a)
    invite = await invites.create_invite(
        session, actor, world.branch_a.id, Role.MEMBER, uses=5, days=7, now=NOW
    )
    await session.commit()

    # Joining: `/start CODE` typed in the robot chat; the privacy notice comes as a card.
    member = standin.add_user("新党员")
    await standin.send_text(member, f"/start {invite.code}")
    notice = await latest_card(standin, member, button="✅ 同意并加入")
    assert world.branch_a.name in notice.data["markdown"]
    assert button_texts(notice) == ["✅ 同意并加入", "不同意"]
    await standin.press_text(member, notice, "✅ 同意并加入")
    await standin.wait_for(
        lambda: (
            "已加入" in notice.data["markdown"]
            or any(isinstance(i, Sent) and "已加入" in i.param.get("text", "") for i in standin.inbox(member))
        ),
        timeout=10,
    )
    person = (
        await session.execute(select(Person).where(Person.telegram_id == stable_id(member.user_id)))
    ).scalar_one()
    assert person.name == "新党员" and person.consent_at is not None
    person_id = person.id
    await session.rollback()  # end the read: the bot writes next (SQLite has one writer)

    # Logging service: the quick form, then the action picked with the card's button.
    await standin.send_text(member, "/log 2 今天 清扫楼道")
    form = await latest_card(standin, member, after=notice.seq, button="党员志愿服务行动")
    await standin.press_text(member, form, "党员志愿服务行动")
    await standin.wait_for(lambda: "待书记审核" in form.data["markdown"], timeout=10)
    entry = (
        await session.execute(select(ServiceEntry).where(ServiceEntry.person_id == person_id))
    ).scalar_one()
    assert entry.status is EntryStatus.PENDING and entry.minutes == 120
    entry_id = entry.id
    await session.rollback()

    # The secretary approves from the /pending card.
    await standin.send_text(secretary, "/pending")
    listing = await latest_card(standin, secretary, button=f"✅ 通过 #{entry_id}")
    assert "新党员" in listing.data["markdown"] and escape(f"#{entry_id}") in listing.data["markdown"]
    await standin.press_text(secretary, listing, f"✅ 通过 #{entry_id}")
    await standin.wait_for(lambda: "已通过" in listing.data["markdown"], timeout=10)
    approved = await session.get(ServiceEntry, entry_id)
    assert approved is not None and approved.status is EntryStatus.APPROVED


async def test_a_notice_reaches_dingtalk_members_with_the_read_button_and_the_receipt_counts(
    standin: DingTalkStandIn, bridge: DingTalkBridge, running_bot: BotRunner, world, session, sessionmaker
) -> None:
    secretary, reader, other = (standin.add_user(n) for n in ("李书记", "张三", "李四"))
    for person, user in ((world.secretary_a, secretary), (world.member_a, reader), (world.member_a2, other)):
        await session.execute(
            update(Person).where(Person.id == person.id).values(telegram_id=stable_id(user.user_id))
        )
    await session.commit()
    # The bridge knows a DingTalk person once they have written to the robot (README: what is left).
    for user in (reader, other):
        await standin.send_text(user, "/my")
        await standin.wait_for(lambda u=user: standin.inbox(u), timeout=10)

    await standin.send_text(secretary, "/notify")
    await standin.wait_for(lambda: standin.inbox(secretary), timeout=10)
    await standin.send_text(secretary, "周五下午3点开展主题党日活动")
    confirm = await latest_card(standin, secretary, button="📤 立即发送")
    await standin.press_text(secretary, confirm, "📤 立即发送")
    await standin.wait_for(lambda: confirm.updates >= 1, timeout=10)  # the notice is queued
    app = running_bot.running[0][0]
    worker = DeliveryWorker(app.bot, app.sessionmaker, app.clock, "dingtalk-e2e", status_interval=0.05)
    await asyncio.wait_for(worker.drain(), timeout=30)

    # Each member has the notice once, as a card with the 已阅 button.
    cards = {}
    for user in (reader, other):
        got = await standin.wait_for(
            lambda u=user: [
                i for i in standin.inbox(u) if isinstance(i, Card) and "主题党日" in i.data["markdown"]
            ],
            timeout=10,
        )
        assert len(got) == 1 and button_texts(got[0]) == ["✅ 已阅"]
        cards[user.user_id] = got[0]
    await standin.press_text(reader, cards[reader.user_id], "✅ 已阅")
    await standin.wait_for(lambda: not standin.pending(), timeout=10)

    # The receipt is the reader's update, /notices the secretary's: two chats, taken in either
    # order. Ask once the receipt is stored (regression: on PostgreSQL /notices was once answered
    # first and showed 0/2).
    async def receipts() -> int:
        async with sessionmaker() as s:  # a fresh snapshot each look
            return len((await s.scalars(select(Delivery).where(Delivery.acknowledged_at.is_not(None)))).all())

    assert await poll_until(lambda: receipts(), timeout=10) == 1
    await standin.send_text(secretary, "/notices")
    listing = await latest_card(standin, secretary, after=confirm.seq)
    await standin.wait_for(lambda: "已阅 1/2（50%）" in listing.data["markdown"], timeout=10)


async def card_saying(st: DingTalkStandIn, user: DtUser, *words: str) -> Card:
    """The newest card in the person's chat whose text (as it is now) holds every word."""

    def found() -> Card | None:
        cards = [
            i for i in st.inbox(user) if isinstance(i, Card) and all(w in i.data["markdown"] for w in words)
        ]
        return cards[-1] if cards else None

    return await st.wait_for(found, timeout=10)


async def on_dingtalk(session, standin: DingTalkStandIn, *pairs) -> list[DtUser]:
    """DingTalk users for these people of the world: their records carry the bridge's ids."""
    users = []
    for person, nick in pairs:
        user = standin.add_user(nick)
        await session.execute(
            update(Person).where(Person.id == person.id).values(telegram_id=stable_id(user.user_id))
        )
        users.append(user)
    await session.commit()
    return users


async def test_the_log_wizard_with_buttons_a_photo_and_a_stream_drop_on_dingtalk(
    standin: DingTalkStandIn, bridge: DingTalkBridge, running_bot: BotRunner, world, session
) -> None:
    [member] = await on_dingtalk(session, standin, (world.member_a, "张三"))
    person_id = world.member_a.id
    photo = png("green")

    await standin.send_text(member, "/log")
    step = await card_saying(standin, member, "第 1/6 步")
    await standin.press_text(member, step, "党员与您同行")
    step = await card_saying(standin, member, "第 2/6 步")
    await standin.press_text(member, step, "昨天")
    step = await card_saying(standin, member, "第 3/6 步")
    await standin.press_text(member, step, "2 小时")
    await card_saying(standin, member, "第 4/6 步")
    # The stream drops mid-conversation: what the person types meanwhile waits at DingTalk and
    # arrives once, after the SDK reconnects.
    await standin.drop_stream()
    await standin.send_text(member, "城东社区服务站")
    await standin.wait_for(lambda: standin.connections_opened == 2 and not standin.pending(), timeout=10)
    await card_saying(standin, member, "第 5/6 步")
    await standin.send_text(member, "陪同独居老人就医")
    step = await card_saying(standin, member, "第 6/6 步")
    assert "跳过" in button_texts(step)
    # The photo goes DingTalk -> robot message download -> the front's file -> the bot's getFile.
    await standin.send_picture(member, photo)
    check = await card_saying(standin, member, "请核对", "已附 1 张")
    assert "城东社区服务站" in check.data["markdown"] and "2026-11-27" in check.data["markdown"]
    await standin.press_text(member, check, "✅ 提交")
    await standin.wait_for(lambda: "待书记审核" in check.data["markdown"], timeout=10)

    entry = (
        await session.execute(select(ServiceEntry).where(ServiceEntry.person_id == person_id))
    ).scalar_one()
    assert (entry.action, entry.minutes, entry.place, entry.description) == (
        "walk_with_you",
        120,
        "城东社区服务站",
        "陪同独居老人就医",
    )
    assert entry.evidence_file_id is not None
    assert bridge.front.files.get(entry.evidence_file_id).data == photo  # the bytes the person sent


async def test_report_sends_the_workbook_to_a_dingtalk_secretary(
    standin: DingTalkStandIn, bridge: DingTalkBridge, running_bot: BotRunner, world, session
) -> None:
    [secretary] = await on_dingtalk(session, standin, (world.secretary_a, "李书记"))
    await standin.send_text(secretary, "/report")
    menu = await latest_card(standin, secretary, button="本月（11 月）")
    await standin.press_text(secretary, menu, "本月（11 月）")

    def workbook() -> Sent | None:
        return next(
            (i for i in standin.inbox(secretary) if isinstance(i, Sent) and i.msg_key == "sampleFile"), None
        )

    sent = await standin.wait_for(workbook, timeout=20)
    assert sent.param["fileName"].endswith(".xlsx") and sent.param["fileType"] == "xlsx"
    kind, file_name, data = standin.media[sent.param["mediaId"]]
    assert (kind, file_name) == ("file", sent.param["fileName"])
    wb = load_workbook(BytesIO(data))
    assert wb.sheetnames == ["汇总", "党员明细", "清单自评"]
    ws = wb["汇总"]
    values = {ws.cell(r, 1).value: ws.cell(r, 2).value for r in range(2, ws.max_row + 1)}
    assert values["党支部"] == world.branch_a.name
    summary = await card_saying(standin, secretary, "2026-11-01 至 2026-11-30")
    assert "📤 报送党工委" in button_texts(summary)


async def test_the_secretarys_invite_becomes_a_card_that_forwarded_colleagues_join_with(
    standin: DingTalkStandIn, bridge: DingTalkBridge, running_bot: BotRunner, world, session, sessionmaker
) -> None:
    [secretary] = await on_dingtalk(session, standin, (world.secretary_a, "李书记"))
    await standin.send_text(secretary, "/invite")

    # The t.me link is nowhere: a QR of `/start CODE` and a forwardable card whose button types it.
    card = await card_saying(standin, secretary, "/start")
    async with sessionmaker() as s:
        [invite] = (await s.scalars(select(Invite).where(Invite.org_id == world.branch_a.id))).all()
        code, uses_before = invite.code, invite.uses_left
    assert f"在钉钉里给「支部助手」发送 /start {escape(code)}" in card.data["markdown"]
    assert world.branch_a.name in card.data["markdown"]
    assert button_texts(card) == [f"发送 /start {code}"] and card.forwardable
    [image] = [i for i in standin.inbox(secretary) if isinstance(i, Sent) and i.msg_key == "sampleImageMsg"]
    _kind, _name, png_bytes = standin.media[image.param["photoURL"]]
    assert png_bytes == qr_png(f"/start {code}", f"钉钉：给「支部助手」发送\n/start {code}")
    everything = [i.param for i in standin.inbox(secretary) if isinstance(i, Sent)] + [card.data]
    assert "t.me" not in repr(everything)

    # A colleague the robot knows presses the forwarded card: the bot gets `/start CODE` from them.
    known, stranger = standin.add_user("王五"), standin.add_user("赵六")
    await standin.send_text(known, "你好")
    await standin.wait_for(lambda: standin.inbox(known), timeout=10)
    for colleague in (known, stranger):
        standin.forward(secretary, card, colleague)
    await standin.press_text(known, card, f"发送 /start {code}")
    notice = await latest_card(standin, known, button="✅ 同意并加入")
    assert world.branch_a.name in notice.data["markdown"]
    await standin.press_text(known, notice, "✅ 同意并加入")
    await standin.wait_for(lambda: "已加入" in notice.data["markdown"], timeout=10)

    # One who never wrote to the robot: DingTalk gives their id, not their name, so the robot
    # asks them to send the line; they do, and join under their own name.
    await standin.press_text(stranger, card, f"发送 /start {code}")
    ask = await standin.wait_for(
        lambda: [i for i in standin.inbox(stranger) if isinstance(i, Sent)], timeout=10
    )
    assert f"/start {escape(code)}" in ask[0].param["text"]
    await standin.send_text(stranger, f"/start {code}")
    notice = await latest_card(standin, stranger, button="✅ 同意并加入")
    await standin.press_text(stranger, notice, "✅ 同意并加入")
    await standin.wait_for(lambda: "已加入" in notice.data["markdown"], timeout=10)

    # The rows: both are members of the branch, under their DingTalk names; two uses are gone.
    async with sessionmaker() as s:
        joined = (
            await s.execute(
                select(Person.name, Person.telegram_id, Membership.role)
                .join(Membership, Membership.person_id == Person.id)
                .where(Membership.org_id == world.branch_a.id, Person.name.in_(["王五", "赵六"]))
                .order_by(Person.name)
            )
        ).all()
        left = await s.scalar(select(Invite.uses_left).where(Invite.code == code))
    assert sorted(joined) == sorted(
        [("王五", stable_id(known.user_id), Role.MEMBER), ("赵六", stable_id(stranger.user_id), Role.MEMBER)]
    )
    assert left == uses_before - 2
    # The secretary's own card is untouched by their presses.
    assert button_texts(card) == [f"发送 /start {code}"]
