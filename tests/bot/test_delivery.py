"""The delivery worker against the emulator: everyone reachable gets one copy, blocked people
are marked, 429s pause every send, 5xx are retried, a 400 fails one row, pacing keeps to the
limits and comes close to them (no 429, at least 0.8 of the rate), the sender's status message
ends with the right counts, and two workers on PostgreSQL send each message once."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiogram import Bot
from sqlalchemy import select

from bot.delivery import DeliveryWorker, build_method
from bot.gate.pacing import AnswerWindow, ChatPacer, Window
from config.clock import Clock, FrozenClock
from content.i18n import texts
from emulator import Emulator
from storage import notices, outbox
from storage.access import load_actor
from storage.db import make_engine, make_sessionmaker
from storage.models import Delivery, DeliveryStatus, Notice, NoticeStatus, Person
from tests.bot.outbox_world import (
    NOW,
    FlakySessions,
    copies_per_chat,
    delivery_counts,
    make_branch,
    make_tg_bot,
    send_branch_notice,
)
from tests.dbutil import postgres_only


@pytest.fixture
async def tg(emu: Emulator) -> AsyncIterator[Bot]:
    b = make_tg_bot(emu)
    yield b
    await b.session.close()


def worker(tg: Bot, sessionmaker, clock=None, wid: str = "w1", **kw) -> DeliveryWorker:
    kw.setdefault("retry_base", 0.05)
    kw.setdefault("db_backoff", 0.05)
    return DeliveryWorker(tg, sessionmaker, clock or Clock(), wid, **kw)


async def when(emu: Emulator, predicate, action) -> None:
    """Run `action` as soon as `predicate()` holds (a fault injected mid-broadcast)."""
    await emu.wait_for(predicate, timeout=30)
    action()


async def test_notice_to_300_with_blocked_and_429_bursts_reaches_everyone_once(
    session, sessionmaker, emu, tg
) -> None:
    br = await make_branch(session, emu, 300, blocked_every=10)
    status = await tg.send_message(br.secretary_user.id, "…")
    notice = await send_branch_notice(session, br, status=(br.secretary_user.id, status.message_id))
    emu.limits.enable(global_per_sec=300)
    bursts = [
        asyncio.create_task(when(emu, lambda n=n: emu.stats.sent() >= n, lambda: emu.faults.inject_429(3, 1)))
        for n in (60, 180)
    ]
    w = worker(tg, sessionmaker, global_rate=300, status_interval=0.3)
    await asyncio.wait_for(w.drain(horizon=10), timeout=60)
    await asyncio.gather(*bursts)

    copies = copies_per_chat(emu, br.reachable | br.blocked)
    assert {c for c, n in copies.items() if n != 1} == br.blocked  # reachable: exactly one each
    assert all(copies[c] == 0 for c in br.blocked)
    assert await delivery_counts(session) == {DeliveryStatus.SENT: 270, DeliveryStatus.BLOCKED: 30}
    marked = set(await session.scalars(select(Person.telegram_id).where(Person.blocked_at.is_not(None))))
    assert marked == br.blocked
    assert await session.scalar(select(Notice.status).where(Notice.id == notice.id)) is NoticeStatus.DONE
    assert emu.stats.injected_429 == 6
    # Our own pacing caused no 429 ("wait" ones answer sends already on the wire when a 429 came).
    assert {k: n for k, n in emu.stats.limit_429.items() if k != "wait"} == {}
    assert w.stats.rate_limited == 6 + emu.stats.limit_429["wait"]
    final = emu.chat(br.secretary_user)[-1]
    assert final.message_id == status.message_id
    assert final.text == texts("zh")("notices.status.done", total=300, sent=270, failed=0, blocked=30)


def _text(key: str, chat_id: int, **kw) -> outbox.OutMessage:
    payload = {"method": "sendMessage", "text": key, "parse_mode": "HTML"}
    return outbox.OutMessage(kind="text", chat_id=chat_id, dedupe_key=key, payload=payload, **kw)


async def _enqueue(session, messages: list[outbox.OutMessage], now=None) -> None:
    await outbox.enqueue_many(session, messages, now=now or Clock().now())
    await session.commit()


async def _rows(session) -> dict[str, Delivery]:
    session.expire_all()
    return {d.dedupe_key: d for d in await session.scalars(select(Delivery))}


async def test_pacing_at_telegrams_limits_causes_no_429(session, sessionmaker, emu, tg) -> None:
    users = [emu.add_user(f"u{i}") for i in range(45)]
    await _enqueue(session, [_text(f"m{i}", u.id) for i, u in enumerate(users)])
    emu.limits.enable()  # Telegram's: 30/s overall, 1/s per chat
    w = worker(tg, sessionmaker)
    await asyncio.wait_for(w.drain(), timeout=30)
    assert emu.stats.sent() == 45
    assert emu.stats.limit_429_total == 0 and emu.stats.early_retries == 0
    assert emu.stats.max_in_window(1.0) <= 30
    # ...and no slower than it must be: from the first send to the last (Telegram's clock, 44
    # intervals), at least 0.8 of the allowed 30/s. A worker sending 2 a second fails here.
    assert emu.stats.rate() >= 0.8 * 30, f"{emu.stats.rate():.1f} messages/s"


async def test_one_chat_gets_at_most_one_message_a_second(session, sessionmaker, emu, tg) -> None:
    u = emu.add_user("u")
    await _enqueue(session, [_text(f"m{i}", u.id) for i in range(3)])
    w = worker(tg, sessionmaker)
    await asyncio.wait_for(w.drain(), timeout=30)
    times = [s.at for s in emu.stats.sends]
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # At most one a second, and not much less: the next goes within 1.25 s (the pacer's few
    # percent of headroom plus a round trip), not whenever a poll happens to come round.
    assert all(1.0 <= g < 1.25 for g in gaps), gaps
    assert [m.text for m in emu.chat(u)] == ["m0", "m1", "m2"]  # in the order enqueued


def test_a_window_allows_limit_events_in_any_interval() -> None:
    w = Window(3, 1.0)
    for t in (0.0, 0.1, 0.2):
        assert w.ready_at(t) == t
        w.note(t)
    assert w.ready_at(0.5) == 1.0  # the fourth waits until the first leaves the window
    assert w.ready_at(1.0) == 1.0
    w.note(1.0)
    assert w.ready_at(1.05) == 1.1


def test_the_global_window_counts_each_send_from_its_answer() -> None:
    w = AnswerWindow(2, 1.0)
    assert w.ready_at(0.0) == 0.0
    w.start()
    w.start()
    assert w.ready_at(0.1) == math.inf  # both on the wire: only an answer frees a place
    w.answered(0.3)
    assert w.ready_at(0.4) == pytest.approx(1.3)  # a second after that answer, not after the send
    w.answered(0.5)
    assert w.ready_at(1.3) == 1.3
    w.start()
    assert w.ready_at(1.3) == pytest.approx(1.5)


def test_group_chats_keep_twenty_a_minute_and_private_chats_one_a_second() -> None:
    pacer = ChatPacer(1.0, 20, headroom=0.0)
    t = 0.0
    for _ in range(20):
        t = pacer.ready_at(-100, t)
        pacer.note(-100, t)
    assert t == pytest.approx(19.0)  # one a second...
    assert pacer.ready_at(-100, t) == pytest.approx(60.0)  # ...but the 21st waits for the minute
    assert pacer.ready_at(7, t) == t  # another chat is not held up
    pacer.note(7, t)
    assert pacer.ready_at(7, t) == pytest.approx(t + 1.0)
    pacer.forget_idle(100.0)
    assert len(pacer) == 0


async def test_retry_after_holds_every_send_until_it_has_passed(session, sessionmaker, emu, tg) -> None:
    users = [emu.add_user(f"u{i}") for i in range(6)]
    await _enqueue(session, [_text(f"m{i}", u.id) for i, u in enumerate(users)])
    emu.faults.inject_429(count=1, retry_after=1)  # the first send is refused
    w = worker(tg, sessionmaker)
    await asyncio.wait_for(w.drain(horizon=10), timeout=30)
    assert copies_per_chat(emu, {u.id for u in users}) == {u.id: 1 for u in users}
    assert emu.stats.early_retries == 0  # nothing went out before retry_after had passed
    assert w.stats.rate_limited == 1
    row = (await _rows(session))["m0"]
    assert row.status is DeliveryStatus.SENT and row.attempts == 0  # a 429 is not the message's fault


async def test_server_errors_are_retried_with_backoff(session, sessionmaker, emu, tg) -> None:
    users = [emu.add_user(f"u{i}") for i in range(2)]
    await _enqueue(session, [_text("m0", users[0].id), _text("m1", users[1].id)])
    emu.faults.inject_5xx(count=1, status=500, chat_id=users[0].id)
    emu.faults.inject_5xx(count=1, status=502, chat_id=users[0].id, html=True)  # a front end's page
    w = worker(tg, sessionmaker, per_chat_interval=0.05)
    await asyncio.wait_for(w.drain(horizon=10), timeout=30)
    rows = await _rows(session)
    # The 500 counts as an attempt; the front end's 502 (Telegram unreachable) does not.
    assert rows["m0"].status is DeliveryStatus.SENT and rows["m0"].attempts == 1
    assert rows["m1"].status is DeliveryStatus.SENT and rows["m1"].attempts == 0
    assert copies_per_chat(emu, {u.id for u in users}) == {u.id: 1 for u in users}


async def test_a_server_error_every_time_ends_as_failed(session, sessionmaker, emu, tg) -> None:
    u = emu.add_user("u")
    await _enqueue(session, [_text("m0", u.id)])
    emu.faults.inject_5xx(count=None, chat_id=u.id)
    w = worker(tg, sessionmaker, retry_base=0.01, per_chat_interval=0.05)
    await asyncio.wait_for(w.drain(horizon=10), timeout=30)
    row = (await _rows(session))["m0"]
    assert row.status is DeliveryStatus.FAILED and row.attempts == outbox.MAX_ATTEMPTS
    assert emu.stats.injected_5xx == outbox.MAX_ATTEMPTS


async def test_a_refused_message_fails_alone_and_the_rest_goes_on(session, sessionmaker, emu, tg) -> None:
    u = emu.add_user("u")
    bad = {"method": "sendMessage", "text": "<b>unclosed", "parse_mode": "HTML"}
    await _enqueue(
        session,
        [
            _text("unknown-chat", 999_999),  # 400 chat not found
            outbox.OutMessage("text", u.id, "bad-html", bad),  # 400 can't parse entities
            outbox.OutMessage("text", u.id, "no-text", {"method": "sendMessage"}),  # not even sent
            outbox.OutMessage("text", u.id, "odd", {"method": "sendSticker", "sticker": "x"}),
            _text("fine", u.id),
        ],
    )
    w = worker(tg, sessionmaker)
    await asyncio.wait_for(w.drain(), timeout=30)
    rows = await _rows(session)
    assert {k: r.status for k, r in rows.items()} == {
        "unknown-chat": DeliveryStatus.FAILED,
        "bad-html": DeliveryStatus.FAILED,
        "no-text": DeliveryStatus.FAILED,
        "odd": DeliveryStatus.FAILED,
        "fine": DeliveryStatus.SENT,
    }
    assert "chat not found" in rows["unknown-chat"].error
    assert emu.stats.requests["sendMessage"] == 3 and emu.stats.requests.get("sendSticker", 0) == 0
    assert [m.text for m in emu.chat(u)] == ["fine"]


async def test_photos_and_documents_go_out_with_their_captions(session, sessionmaker, emu, tg) -> None:
    u = emu.add_user("u")
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d4944415478da63f8cfc0f01f0005000201e2b2d1f40000000049454e44ae426082"
    )
    photo = emu.files.add(png, "photo")
    doc = emu.files.add(b"%PDF-1.4", "document", file_name="通知.pdf")
    markup = {"inline_keyboard": [[{"text": "已阅", "callback_data": "ack:1"}]]}
    await _enqueue(
        session,
        [
            outbox.OutMessage(
                "notice",
                u.id,
                "p",
                {"method": "sendPhoto", "photo": photo.file_id, "caption": "<b>图</b>", "parse_mode": "HTML"},
            ),
            outbox.OutMessage(
                "notice",
                u.id,
                "d",
                {
                    "method": "sendDocument",
                    "document": doc.file_id,
                    "caption": "附件",
                    "reply_markup": markup,
                },
            ),
        ],
    )
    w = worker(tg, sessionmaker, per_chat_interval=0.05)
    await asyncio.wait_for(w.drain(), timeout=30)
    got = emu.chat(u)
    assert [(m.photo is not None, m.document is not None, m.caption) for m in got] == [
        (True, False, "图"),
        (False, True, "附件"),
    ]
    assert got[1].buttons == [{"text": "已阅", "callback_data": "ack:1"}]
    rows = await _rows(session)
    assert rows["p"].telegram_message_id == got[0].message_id


def test_payloads_become_the_methods_they_name() -> None:
    m = build_method(5, {"method": "sendPhoto", "photo": "AgAC", "caption": "x"})
    assert type(m).__name__ == "SendPhoto" and m.chat_id == 5 and m.caption == "x"
    assert type(build_method(5, {"text": "hi"})).__name__ == "SendMessage"


async def test_a_row_whose_lease_is_nearly_over_waits_for_the_next_claim(
    session, sessionmaker, emu, tg
) -> None:
    u = emu.add_user("u")
    await _enqueue(session, [_text(f"m{i}", u.id) for i in range(6)])
    # One chat paced at 0.2 s, leases of 1 s: the later rows would go out with too little lease left.
    w = worker(tg, sessionmaker, per_chat_interval=0.2, lease_seconds=1.0)
    await asyncio.wait_for(w.drain(horizon=5), timeout=30)
    assert w.stats.lease_dropped >= 1
    assert [m.text for m in emu.chat(u)] == [f"m{i}" for i in range(6)]  # each once, in order
    assert {r.status for r in (await _rows(session)).values()} == {DeliveryStatus.SENT}


async def test_the_worker_outlives_a_database_outage(session, sessionmaker, emu, tg) -> None:
    users = [emu.add_user(f"u{i}") for i in range(5)]
    await _enqueue(session, [_text(f"m{i}", u.id) for i, u in enumerate(users)])
    flaky = FlakySessions(sessionmaker, fail_calls={1, 2, 3, 5, 6, 7, 8})
    w = worker(tg, flaky)
    await asyncio.wait_for(w.drain(horizon=5), timeout=30)
    assert w.stats.db_errors >= 3
    assert copies_per_chat(emu, {u.id for u in users}) == {u.id: 1 for u in users}
    assert {r.status for r in (await _rows(session)).values()} == {DeliveryStatus.SENT}


async def test_status_edits_are_throttled_and_end_with_the_counts(session, sessionmaker, emu, tg) -> None:
    br = await make_branch(session, emu, 40, blocked_every=8)
    status = await tg.send_message(br.secretary_user.id, "…")
    await send_branch_notice(session, br, status=(br.secretary_user.id, status.message_id))
    w = worker(tg, sessionmaker, global_rate=20, status_interval=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(w.drain(), timeout=30)
    elapsed = loop.time() - started
    edits = emu.stats.requests["editMessageText"]
    assert 1 <= edits <= elapsed / 0.5 + 2
    final = emu.chat(br.secretary_user)[-1]
    assert final.text == texts("zh")("notices.status.done", total=40, sent=35, failed=0, blocked=5)


async def test_a_notice_without_a_status_message_is_still_finished(session, sessionmaker, emu, tg) -> None:
    br = await make_branch(session, emu, 3)
    notice = await send_branch_notice(session, br)
    w = worker(tg, sessionmaker)
    await asyncio.wait_for(w.drain(), timeout=30)
    assert await session.scalar(select(Notice.status).where(Notice.id == notice.id)) is NoticeStatus.DONE
    assert emu.stats.requests.get("editMessageText", 0) == 0


async def test_status_in_the_senders_language(session, sessionmaker, emu, tg) -> None:
    br = await make_branch(session, emu, 2)
    br.secretary.locale = "en"
    await session.commit()
    status = await tg.send_message(br.secretary_user.id, "…")
    await send_branch_notice(session, br, status=(br.secretary_user.id, status.message_id))
    await asyncio.wait_for(worker(tg, sessionmaker).drain(), timeout=30)
    assert emu.chat(br.secretary_user)[-1].text == texts("en")(
        "notices.status.done", total=2, sent=2, failed=0, blocked=0
    )


async def test_with_a_frozen_clock_only_due_rows_go_out(session, sessionmaker, emu, tg) -> None:
    u = emu.add_user("u")
    await _enqueue(
        session, [_text("now", u.id), _text("later", u.id, not_before=NOW + timedelta(hours=1))], now=NOW
    )
    clock = FrozenClock(NOW)
    await asyncio.wait_for(worker(tg, sessionmaker, clock).drain(), timeout=30)
    assert [m.text for m in emu.chat(u)] == ["now"]
    clock.advance(timedelta(hours=1))
    await asyncio.wait_for(worker(tg, sessionmaker, clock).drain(), timeout=30)
    assert [m.text for m in emu.chat(u)] == ["now", "later"]
    rows = await _rows(session)
    assert rows["later"].sent_at == NOW + timedelta(hours=1)


async def test_stopping_gives_back_the_rows_not_sent(session, sessionmaker, emu, tg) -> None:
    users = [emu.add_user(f"u{i}") for i in range(40)]
    await _enqueue(session, [_text(f"m{i}", u.id) for i, u in enumerate(users)])
    w = worker(tg, sessionmaker, global_rate=20, batch=40)
    stop = asyncio.Event()
    run = asyncio.create_task(w.run(stop))
    await emu.wait_for(lambda: emu.stats.sent() >= 5, timeout=10)
    stop.set()
    await asyncio.wait_for(run, timeout=30)
    rows = (await _rows(session)).values()
    sent = [r for r in rows if r.status is DeliveryStatus.SENT]
    assert len(sent) == emu.stats.sent() < 40
    assert all(r.claimed_by is None for r in rows)  # the rest is free for the next worker at once


async def test_wake_sends_a_new_row_without_waiting_for_the_poll(session, sessionmaker, emu, tg) -> None:
    u = emu.add_user("u")
    w = worker(tg, sessionmaker, idle_seconds=30)
    stop = asyncio.Event()
    run = asyncio.create_task(w.run(stop))
    await _enqueue(session, [_text("m", u.id)])
    w.wake()
    await emu.next_message(u, timeout=5)
    stop.set()
    await asyncio.wait_for(run, timeout=10)


@postgres_only("two workers claim rows concurrently; SQLite has one writer")
async def test_two_workers_send_each_message_once_on_postgresql(session, db_url, emu, tg) -> None:
    users = [emu.add_user(f"u{i}") for i in range(120)]
    await _enqueue(session, [_text(f"m{i}", u.id) for i, u in enumerate(users)])
    engines = [make_engine(db_url) for _ in range(2)]
    try:
        workers = [
            worker(tg, make_sessionmaker(e), wid=f"w{i}", global_rate=100, batch=10)
            for i, e in enumerate(engines)
        ]
        await asyncio.wait_for(asyncio.gather(*(w.drain() for w in workers)), timeout=60)
    finally:
        for e in engines:
            await e.dispose()
    assert copies_per_chat(emu, {u.id for u in users}) == {u.id: 1 for u in users}
    assert all(w.stats.sent > 0 for w in workers)
    assert sum(w.stats.sent for w in workers) == 120


async def test_nudges_about_a_notice_leave_its_status_message_alone(session, sessionmaker, emu, tg) -> None:
    br = await make_branch(session, emu, 2)
    status = await tg.send_message(br.secretary_user.id, "…")
    notice = await send_branch_notice(session, br, status=(br.secretary_user.id, status.message_id))
    await asyncio.wait_for(worker(tg, sessionmaker, per_chat_interval=0.05).drain(), timeout=30)
    edits = emu.stats.requests["editMessageText"]
    actor = await load_actor(session, br.secretary.id)
    assert await notices.nudge(session, actor, notice.id, now=Clock().now()) == 2
    await session.commit()
    await asyncio.wait_for(worker(tg, sessionmaker, per_chat_interval=0.05).drain(), timeout=30)
    assert copies_per_chat(emu, br.reachable) == dict.fromkeys(br.reachable, 2)  # notice and nudge
    assert emu.stats.requests["editMessageText"] == edits
