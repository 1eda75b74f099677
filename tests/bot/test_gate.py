"""The gate every Bot API call passes (bot/gate): 429s pause everyone and the call is made again,
5xx are retried only where that cannot double a message, replies and the delivery worker share
Telegram's limits and a reply goes first (also when a wave of bulk sends fills the bot's window,
in one process and across processes), and with Redis or PostgreSQL several processes share one
set of limits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter, TelegramServerError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.delivery import DeliveryWorker
from bot.gate import Gate, GateState, LocalState, gate_of, install
from bot.gate.dbstate import DbState
from bot.gate.shared import RedisState
from config.clock import Clock
from emulator import Emulator
from storage import outbox
from tests.bot.outbox_world import TOKEN, copies_per_chat, make_tg_bot
from tests.dbutil import postgres_only

REDIS = "redis://127.0.0.1:6379/0"  # the machine's Redis (CI has it too)
SHARED = [
    pytest.param("redis", id="redis"),
    pytest.param("db", id="postgresql", marks=postgres_only("the gate's state is shared through PostgreSQL")),
]


def shared_states(kind: str, db_url: str, bot_id: int, n: int) -> list[GateState]:
    """`n` processes' states of one bot, sharing limits under this test's own keys."""
    prefix = f"test-gate:{uuid.uuid4().hex}"
    if kind == "redis":
        return [RedisState(REDIS, bot_id, prefix=prefix) for _ in range(n)]
    return [DbState(db_url, bot_id, prefix=prefix) for _ in range(n)]


@pytest.fixture
async def tg(emu: Emulator) -> AsyncIterator[Bot]:
    b = make_tg_bot(emu)
    install(b, Gate(LocalState(), retry_base=0.05))
    yield b
    await b.session.close()


async def test_a_reply_refused_with_429_is_sent_once_after_retry_after(emu, tg) -> None:
    u, v = emu.add_user("u"), emu.add_user("v")
    emu.faults.inject_429(count=1, retry_after=1, chat_id=u.id)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    first = asyncio.create_task(tg.send_message(u.id, "your answer"))
    await asyncio.wait_for(gate_of(tg).limited.wait(), 5)  # the 429 came back to the gate
    other = await tg.send_message(v.id, "someone else's")  # held by the same retry_after
    await first
    assert loop.time() - t0 >= 1.0
    assert [m.text for m in emu.chat(u)] == ["your answer"] and other.text == "someone else's"
    assert emu.stats.early_retries == 0  # nothing went out before retry_after had passed
    assert gate_of(tg).rate_limited == 1


async def test_without_the_gate_a_429_loses_the_reply(emu) -> None:
    """What the gate fixes: a plain bot's reply refused with 429 is an exception, not a message."""
    bare = make_tg_bot(emu)
    try:
        u = emu.add_user("u")
        emu.faults.inject_429(count=1, retry_after=1)
        with pytest.raises(TelegramRetryAfter):
            await bare.send_message(u.id, "lost")
        assert emu.chat(u) == []
    finally:
        await bare.session.close()


async def test_server_errors_are_retried_only_where_no_message_can_double(emu, tg) -> None:
    u = emu.add_user("u")
    sent = await tg.send_message(u.id, "v1")
    # An edit sends nothing new: retried through a 500 and a front end's 502 page.
    emu.faults.inject_5xx(count=1, status=500, method="editMessageText")
    emu.faults.inject_5xx(count=1, status=502, method="editMessageText", html=True)
    await tg.edit_message_text("v2", chat_id=u.id, message_id=sent.message_id)
    assert emu.chat(u)[0].text == "v2"
    # A 502 is Telegram's front end: the message was not taken, so it is sent again, once.
    emu.faults.inject_5xx(count=1, status=502, method="sendMessage")
    await tg.send_message(u.id, "after a 502")
    # A 500 may come after the message went out (it did here): not sent again.
    emu.faults.inject_5xx(count=1, status=500, method="sendMessage", after_send=True)
    with pytest.raises(TelegramServerError):
        await tg.send_message(u.id, "after a 500")
    assert [m.text for m in emu.chat(u)] == ["v2", "after a 502", "after a 500"]
    assert gate_of(tg).retried == 3


async def test_an_answer_refused_as_too_old_says_whether_its_text_was_shown(emu, tg) -> None:
    u = emu.add_user("u")
    sent = await tg.send_message(
        u.id,
        "pick",
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="a", callback_data="a")]]
        ),
    )
    msg = emu.chat(u)[0]
    assert msg.message_id == sent.message_id

    async def press() -> str:
        return (await emu.press(u, msg, data="a"))["callback_query"]["id"]

    # Answered already (a handler stops the spinner before its work): the spinner-only answer is
    # nothing lost (True); an alert was not shown (False), so the caller can say it otherwise.
    qid = await press()
    assert await tg.answer_callback_query(qid) is True
    assert await tg.answer_callback_query(qid) is True
    assert await tg.answer_callback_query(qid, text="not shown", show_alert=True) is False
    # Regression guard: a 500 after Telegram took the alert, then "too old" on the retry: it was
    # shown, so True (False would make the caller write it in the chat a second time).
    qid = await press()
    emu.faults.inject_5xx(count=1, status=500, method="answerCallbackQuery", after_send=True)
    assert await tg.answer_callback_query(qid, text="shown", show_alert=True) is True
    assert [a.text for a in emu.callback_answers if a.query_id == qid] == ["shown"]


async def test_replies_and_a_broadcast_share_the_limits_and_replies_go_first(
    session, sessionmaker, emu, tg
) -> None:
    emu.limits.enable()  # Telegram's: 30/s per bot, 1/s per chat, 20/min per group
    users = [emu.add_user(f"m{i}") for i in range(150)]
    await outbox.enqueue_many(
        session,
        [
            outbox.OutMessage("text", u.id, f"n{i}", {"method": "sendMessage", "text": "通知"})
            for i, u in enumerate(users)
        ],
        now=Clock().now(),
    )
    await session.commit()
    askers = [emu.add_user(f"asker{i}") for i in range(8)]
    w = DeliveryWorker(tg, sessionmaker, Clock(), "w1")
    loop = asyncio.get_running_loop()
    waits: list[float] = []

    async def reply(chat_id: int) -> None:
        t0 = loop.time()
        await tg.send_message(chat_id, "帮助")
        waits.append(loop.time() - t0)

    broadcast = asyncio.create_task(w.drain(horizon=10))
    await emu.wait_for(lambda: emu.stats.sent() >= 60, 20)  # the wave is at full speed
    for a in askers:
        await reply(a.id)
        await reply(a.id)  # a second answer at once: within the chat's burst
    await asyncio.wait_for(broadcast, 60)
    assert copies_per_chat(emu, {u.id for u in users + askers}) == {
        **{u.id: 1 for u in users},
        **{a.id: 2 for a in askers},
    }
    assert emu.stats.limit_429_total == 0  # nobody broke a limit Telegram enforces
    assert emu.stats.max_in_window(1.0) <= 30
    assert max(waits) < 1.0, waits


async def test_a_burst_of_replies_to_one_chat_keeps_its_limit(emu, tg) -> None:
    emu.limits.enable()
    u = emu.add_user("u")
    for i in range(6):
        await tg.send_message(u.id, f"r{i}")
    assert len(emu.chat(u)) == 6 and emu.stats.limit_429_total == 0


@pytest.mark.parametrize("kind", SHARED)
async def test_two_processes_share_the_limits(kind, emu, clean_db, db_url) -> None:
    emu.limits.enable()
    users = [emu.add_user(f"u{i}") for i in range(90)]
    bots = [make_tg_bot(emu), make_tg_bot(emu)]  # two processes of one bot
    states = shared_states(kind, db_url, bots[0].id, 2)
    for b, s in zip(bots, states, strict=True):
        install(b, Gate(s))
    try:
        halves = [users[:45], users[45:]]
        await asyncio.gather(
            *(
                asyncio.gather(*(b.send_message(u.id, "x") for u in half))
                for b, half in zip(bots, halves, strict=True)
            )
        )
        assert emu.stats.sent() == 90 and emu.stats.limit_429_total == 0
        assert emu.stats.max_in_window(1.0) <= 30
        # A 429 one process sees holds the other too.
        await states[0].pause(2)
        assert 1.5 < await states[1].pause_left() <= 2.1
    finally:
        for b, s in zip(bots, states, strict=True):
            await b.session.close()
            await s.close()


async def _reply_waits_during_a_wave(
    states: list[GateState], bulk_tasks: int, on_wire: float = 1.0
) -> list[float]:
    """A wave of bulk sends from every state (`bulk_tasks` at once in each, far more than the
    bot's window lets through), and meanwhile one reply after another: how long each waited.

    A send holds its place for the time it is on the wire (the wave's answers come slowly);
    every bulk send goes to a new chat, so only the bot's window limits the wave."""
    loop = asyncio.get_running_loop()
    chats = iter(range(10_000_000, 20_000_000))
    admitted: list[float] = []
    stop = asyncio.Event()
    warm = asyncio.Event()

    async def bulk_sender(state: GateState) -> None:
        while not stop.is_set():
            chat = next(chats)
            await state.admit(chat, bulk=True)
            admitted.append(loop.time())
            if len(admitted) >= 80:
                warm.set()
            await asyncio.sleep(on_wire)  # waiting for Telegram's answer
            state.answered(chat)

    wave = [asyncio.create_task(bulk_sender(s)) for s in states for _ in range(bulk_tasks)]
    waits: list[float] = []
    try:
        # The wave fills the bot's window first: its sends have queued up for a few seconds.
        await asyncio.wait_for(warm.wait(), 30)
        for i in range(6):
            state, asker = states[i % len(states)], 900 + i  # someone who just wrote to the bot
            t0 = loop.time()
            await asyncio.wait_for(state.admit(asker, bulk=False), 30)
            waits.append(loop.time() - t0)
            state.answered(asker)
    finally:
        stop.set()
        for t in wave:
            t.cancel()
        await asyncio.gather(*wave, return_exceptions=True)
    return waits


async def test_a_reply_goes_first_while_a_wave_fills_the_window() -> None:
    waits = await _reply_waits_during_a_wave([LocalState()], bulk_tasks=60)
    assert max(waits) < 1.0, waits


@pytest.mark.parametrize("kind", SHARED)
async def test_a_reply_goes_first_while_a_wave_from_two_processes_fills_the_window(
    kind, clean_db, db_url
) -> None:
    states = shared_states(kind, db_url, 424242, 2)
    try:
        waits = await _reply_waits_during_a_wave(states, bulk_tasks=30, on_wire=0.3)
    finally:
        for s in states:
            await s.close()
    assert max(waits) < 1.0, waits


@pytest.mark.parametrize(
    ("database_url", "redis_url", "kind"),
    [
        ("sqlite+aiosqlite:///./x.db", None, LocalState),  # SQLite: one process
        ("postgresql+asyncpg://u@db/branchbot", None, DbState),
        ("postgresql+asyncpg://u@db/branchbot", REDIS, RedisState),
        ("sqlite+aiosqlite:///./x.db", REDIS, RedisState),
    ],
)
async def test_the_gates_state_is_shared_where_the_bot_can_run_in_several_processes(
    database_url, redis_url, kind
) -> None:
    from bot.app import make_gate_state
    from config.settings import Settings

    settings = Settings(bot_token=TOKEN, database_url=database_url, redis_url=redis_url)
    state = make_gate_state(settings, 424242)
    try:
        assert type(state) is kind
    finally:
        await state.close()  # nothing was connected


async def test_without_its_database_the_shared_state_paces_in_this_process() -> None:
    """PostgreSQL unreachable (an outage): replies still go, paced by this process alone."""
    state = DbState("postgresql+asyncpg://postgres@127.0.0.1:9/nowhere", 424242)  # nothing listens
    try:
        assert await state.pause_left() == 0
        for _ in range(3):
            await asyncio.wait_for(state.admit(901, bulk=False), 10)
            state.answered(901)
        await state.pause(1)
        assert 0.5 < await state.pause_left() <= 1.1  # a 429 still holds this process
    finally:
        await state.close()


def test_shared_windows_name_a_chat_by_a_keyed_hash_not_its_id() -> None:
    """A person's chat id is their Telegram id: the shared windows (Redis keys, gate_marks rows)
    outlive an erasure by up to a minute, so they must not hold it (regression: the erasure test
    on PostgreSQL found "chat:<telegram id>" in gate_marks)."""
    from bot.gate.shared import SharedState

    tid = 5_123_456_789
    one, two, other = SharedState(secret=b"token"), SharedState(secret=b"token"), SharedState(secret=b"x")
    names = [r.name for r in one.rules(tid, bulk=True)] + [r.name for r in one.rules(-tid, bulk=True)]
    assert not [n for n in names if str(tid) in n]
    # Every process of the bot (same token) names the chat alike; another key, another name.
    assert one.rules(tid, bulk=True) == two.rules(tid, bulk=True)
    assert one.chat_key(tid) != other.chat_key(tid)
    assert one.chat_key(tid) != one.chat_key(-tid)


async def test_every_state_paces_by_the_limits_it_is_given() -> None:
    """One set of limits reaches every state's windows: the shared windows, the local pacers,
    and the database state's fallback for an outage."""
    from bot.gate import Limits
    from bot.gate.shared import SharedState

    limits = Limits(rate=10, per_chat_interval=0.5, group_per_minute=7, headroom=0.0, chat_burst=2)
    shared = SharedState(limits)
    windows = [(r.limit, r.seconds) for r in shared.rules(-1, bulk=True)]
    assert windows == [(10, 1.0), (2, 1.0), (1, 0.5), (7, 60.0)]  # all, chat, one, group
    db = DbState("postgresql+asyncpg://postgres@127.0.0.1:9/nowhere", 424242, limits)  # nothing connects
    try:
        for state in (LocalState(limits), db._alone):
            assert (state.chats.interval, state.chats.burst, state.chats.group_limit) == (0.5, 2, 7)
            assert state.pacer.window is not None and state.pacer.window.limit == 10
        assert db._local.interval == 0.5
    finally:
        await db.close()
