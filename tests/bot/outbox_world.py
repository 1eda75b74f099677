"""Test data for the delivery worker and the scheduler: a branch whose people are also simulated
users of the emulator (telegram_id = the SimUser's id), so the emulator knows every chat."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from emulator import Emulator, SimUser
from storage import notices
from storage.access import load_actor
from storage.models import Delivery, DeliveryStatus, Notice, Org, OrgKind, Person, Role
from tests.factories import make_org, make_person

TOKEN = "424242:DELIVERY-test_token"
NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def make_tg_bot(emu: Emulator | str, token: str = TOKEN) -> Bot:
    base = emu if isinstance(emu, str) else emu.base_url
    return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(base)))


@dataclass
class Branch:
    org: Org
    secretary: Person
    secretary_user: SimUser
    members: list[Person]
    users: dict[int, SimUser]  # telegram id -> simulated user
    blocked: set[int]  # telegram ids of those who blocked the bot

    @property
    def reachable(self) -> set[int]:
        return {p.telegram_id for p in self.members if p.telegram_id not in self.blocked}  # type: ignore[misc]


async def make_branch(
    s: AsyncSession, emu: Emulator, n: int, *, blocked_every: int = 0, name: str = "测试党支部"
) -> Branch:
    """A branch with a secretary and `n` members; every `blocked_every`-th member blocked the bot."""
    prov = await make_org(s, "省党工委", OrgKind.PROVINCE)
    com = await make_org(s, "市党工委", OrgKind.COMMITTEE, prov)
    org = await make_org(s, name, OrgKind.BRANCH, com)
    sec_user = emu.add_user("书记")
    secretary = await make_person(s, "书记", org, Role.SECRETARY, telegram_id=sec_user.id)
    members: list[Person] = []
    users: dict[int, SimUser] = {sec_user.id: sec_user}
    blocked: set[int] = set()
    for i in range(n):
        u = emu.add_user(f"党员{i}")
        users[u.id] = u
        members.append(await make_person(s, f"党员{i}", org, telegram_id=u.id))
        if blocked_every and i % blocked_every == blocked_every - 1:
            emu.block(u, notify=False)
            blocked.add(u.id)
    await s.commit()
    return Branch(org, secretary, sec_user, members, users, blocked)


async def send_branch_notice(
    s: AsyncSession,
    branch: Branch,
    text: str = "请于本周五前报送服务清单。",
    *,
    now: datetime = NOW,
    status: tuple[int, int] | None = None,
) -> Notice:
    """A notice from the secretary to the branch, in the outbox and committed."""
    actor = await load_actor(s, branch.secretary.id)
    notice = await notices.create_notice(s, actor, branch.org.id, "branch_members", text, now=now)
    if status is not None:
        await notices.set_status_message(s, actor, notice.id, *status)
    await notices.send_notice(s, actor, notice.id, now=now)
    await s.commit()
    return notice


async def delivery_counts(s: AsyncSession) -> Counter[DeliveryStatus]:
    rows = await s.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
    return Counter({DeliveryStatus(st): int(n) for st, n in rows})


def copies_per_chat(emu: Emulator, chats: set[int]) -> Counter[int]:
    """How many messages each of these chats received from the bot (sends only, not edits)."""
    got = emu.stats.per_chat()
    return Counter({c: got.get(c, 0) for c in chats})


class FlakySessions:
    """A sessionmaker whose n-th calls (those in `fail_calls`) fail, as when the database is away."""

    def __init__(self, sessionmaker, fail_calls: set[int]) -> None:
        self.sessionmaker = sessionmaker
        self.fail_calls = fail_calls
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls in self.fail_calls:
            raise OperationalError("BEGIN", {}, ConnectionRefusedError("database is away"))
        return self.sessionmaker()
