"""The per-chat order shared in Redis (bot/order.py): two `RedisOrder`s stand for two bot
processes; updates reach them out of order and in any mix, and run one at a time per chat, in
update_id order."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import pytest

from bot.order import LocalOrder, RedisOrder

REDIS = "redis://127.0.0.1:6379/0"  # the machine's Redis; keys under a prefix of their own


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of the test's own, its keys deleted afterwards (they would stay 30 days in
    the machine's shared Redis)."""
    from redis.asyncio import Redis

    mine = f"test:order:{uuid.uuid4().hex[:10]}"
    yield mine
    client = Redis.from_url(REDIS)
    try:
        keys = [k async for k in client.scan_iter(match=f"{mine}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def pair(prefix: str) -> AsyncIterator[tuple[RedisOrder, RedisOrder]]:
    a, b = (
        RedisOrder(REDIS, 1, prefix=prefix, lease=0.6, gap_wait=5.0, look_again=0.2, first_window=0)
        for _ in "ab"
    )
    yield a, b
    for o in (a, b):
        await o.close()


class Log:
    """What ran, and that no two updates of one chat ran at once."""

    def __init__(self) -> None:
        self.ran: list[tuple[int, int]] = []
        self.inside: set[int] = set()
        self.overlaps = 0

    async def handle(self, order: RedisOrder, chat: int, update_id: int) -> None:
        async with order.hold(chat, update_id):
            if chat in self.inside:
                self.overlaps += 1
            self.inside.add(chat)
            await asyncio.sleep(random.random() * 0.005)  # the handler's work, interleaving others
            self.ran.append((chat, update_id))
            self.inside.discard(chat)
            order.handled(update_id)


async def test_a_later_update_that_arrives_first_waits_for_the_earlier(pair) -> None:
    a, b = pair
    log = Log()
    await log.handle(a, 7, 100)  # the arrival mark starts at the first update seen
    later = asyncio.create_task(log.handle(b, 7, 102))
    await b.wait_waits("gap", 5)  # 101 has not arrived
    other = asyncio.create_task(log.handle(a, 8, 103))  # another chat is not held up by 7's order
    await log.handle(a, 7, 101)
    await asyncio.gather(later, other)
    assert [u for c, u in log.ran if c == 7] == [100, 101, 102]
    assert a.gaps_given_up == b.gaps_given_up == 0


async def test_two_processes_many_chats_in_any_arrival_order(pair) -> None:
    a, b = pair
    rng = random.Random(11)
    chats = [rng.randrange(1, 15) for _ in range(300)]
    log = Log()
    await log.handle(a, 0, 1)
    # Up to 40 in flight at once, like Telegram's max_connections: each window arrives shuffled.
    first = 2
    while first < 2 + len(chats):
        window = list(range(first, min(first + 40, 2 + len(chats))))
        rng.shuffle(window)
        tasks = []
        for uid in window:
            tasks.append(asyncio.create_task(log.handle(rng.choice(pair), chats[uid - 2], uid)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        first += 40
    assert log.overlaps == 0
    for chat in set(chats):
        mine = [u for c, u in log.ran if c == chat]
        assert mine == sorted(mine) and len(mine) == chats.count(chat)
    assert a.gaps_given_up + b.gaps_given_up == 0
    assert a.waits["gap"] + b.waits["gap"] > 0 and a.waits["behind"] + b.waits["behind"] > 0


async def test_a_dead_holders_lock_ends_with_its_lease_and_the_redelivery_runs(pair) -> None:
    a, b = pair
    log = Log()
    await log.handle(a, 5, 10)
    entered = asyncio.Event()

    async def dies_inside() -> None:
        async with a.hold(5, 11):
            entered.set()
            await asyncio.Event().wait()  # never finishes

    dying = asyncio.create_task(dies_inside())
    await asyncio.wait_for(entered.wait(), 5)
    # The process dies: no release, no more lease renewals (the lease is 0.6 s here).
    await a.close()
    try:
        later = asyncio.create_task(log.handle(b, 5, 12))
        await asyncio.wait_for(log.handle(b, 5, 11), 10)  # Telegram sends 11 again, to b
        await asyncio.wait_for(later, 10)
    finally:
        dying.cancel()
        await asyncio.gather(dying, return_exceptions=True)
    assert [u for _, u in log.ran] == [10, 11, 12]
    assert b.waits["busy"] > 0  # it did wait for the lease


async def test_an_update_not_handled_keeps_its_place_until_it_comes_again(pair) -> None:
    a, b = pair
    log = Log()
    await log.handle(a, 3, 20)
    async with a.hold(3, 21):
        pass  # the database was away: 503, not handled
    later = asyncio.create_task(log.handle(b, 3, 22))
    await b.wait_waits("behind", 5)
    assert not later.done()
    await log.handle(a, 3, 21)  # redelivered
    await asyncio.wait_for(later, 5)
    assert [u for _, u in log.ran] == [20, 21, 22]


async def test_a_gap_that_never_fills_holds_updates_up_for_gap_wait_only(prefix: str) -> None:
    order = RedisOrder(REDIS, 1, prefix=prefix, gap_wait=0.3, first_window=0)
    try:
        log = Log()
        await log.handle(order, 1, 40)
        await asyncio.wait_for(log.handle(order, 2, 42), 5)  # 41 never comes
        await log.handle(order, 2, 43)  # the mark moved on: no second wait
        assert order.gaps_given_up == 1 and order.waits["gap"] >= 1
    finally:
        await order.close()


async def test_the_first_updates_of_a_bot_wait_for_earlier_ones_in_flight(prefix: str) -> None:
    """With no arrival mark yet, the first update to arrive may not be the lowest in flight."""
    order = RedisOrder(REDIS, 1, prefix=prefix, gap_wait=1.0)
    try:
        log = Log()
        later = asyncio.create_task(log.handle(order, 9, 51))
        await order.wait_waits("gap", 5)
        await log.handle(order, 9, 50)  # in flight with 51, arrives after it
        await later
        assert [u for _, u in log.ran] == [50, 51]
    finally:
        await order.close()


async def test_local_order_is_one_at_a_time_per_chat() -> None:
    order = LocalOrder()
    ran: list[int] = []

    async def one(uid: int) -> None:
        async with order.hold(1, uid):
            ran.append(uid)
            await asyncio.sleep(0)
            ran.append(uid)

    await asyncio.gather(*(one(i) for i in range(5)))
    assert ran == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
