"""Fixtures for the admin web's route tests: the app over the test database with a frozen clock,
an HTTP client talking to it in-process, and signing in as any person of the world."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.clock import FrozenClock
from config.settings import Settings
from storage import web_auth
from storage.access import load_actor
from storage.audit import system_actor
from storage.models import Person

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
BASE = "http://admin.test"
PASSWORD = "correct horse battery staple"  # staff_password's
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = _CSRF.search(html)
    assert m, "no CSRF field on the page"
    return m.group(1)


@dataclass
class Wakes:
    """Counts the app's calls to outbox_notify."""

    count: int = 0
    calls: list[datetime] = field(default_factory=list)

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its cheapest for a test module that sets and checks passwords (`pytestmark =
    pytest.mark.usefixtures("cheap_hashing")`): the real parameters cost ~0.15 s a hash, and the
    rules under test do not depend on them."""
    monkeypatch.setattr(web_auth, "HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    monkeypatch.setattr(web_auth, "_dummy", {})


@pytest.fixture
async def staff_password(session, world, cheap_hashing) -> str:
    """Staff 王干事 can sign in as "wang" with PASSWORD (cheaply hashed); returns the username."""
    await web_auth.set_password(session, system_actor(), world.staff.id, "wang", PASSWORD)
    await session.commit()
    return "wang"


@pytest.fixture
def web_settings() -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        admin_secret="test-secret-" + "x" * 32,
        bot_username="branchbot_test_bot",
        admin_host="127.0.0.1",
        admin_port=8080,
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


@pytest.fixture
async def app(clean_db, sessionmaker: async_sessionmaker[AsyncSession], web_settings, clock, wakes):
    from admin.web import create_app

    return create_app(sessionmaker, web_settings, clock=clock, outbox_notify=wakes)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


@pytest.fixture
def new_client(app):
    """Another browser: a client with its own cookies."""

    def make() -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)

    return make


async def link_for(
    sessionmaker: async_sessionmaker[AsyncSession], person: Person, now: datetime = NOW
) -> str:
    async with sessionmaker() as s:
        token = await web_auth.create_sign_in_link(s, await load_actor(s, person.id), now)
        await s.commit()
    return token


async def sign_in(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], person: Person
) -> None:
    """Sign in through a one-time link, as a secretary would after /web."""
    token = await link_for(sessionmaker, person)
    page = await client.get(f"/login/link/{token}")
    assert page.status_code == 200, page.text
    r = await client.post(f"/login/link/{token}", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text


async def read(sessionmaker: async_sessionmaker[AsyncSession], stmt: Any) -> Any:
    """One value from the database, in a transaction of its own (on SQLite an open read would hold
    the write lock the app is waiting for)."""
    async with sessionmaker() as s:
        return await s.scalar(stmt)


async def read_all(sessionmaker: async_sessionmaker[AsyncSession], stmt: Any) -> list[Any]:
    async with sessionmaker() as s:
        return list(await s.scalars(stmt))


async def csrf(client: httpx.AsyncClient, path: str = "/") -> str:
    r = await client.get(path)
    assert r.status_code == 200, (path, r.status_code)
    return csrf_of(r.text)


@dataclass
class Objects:
    """One of each kind of record the web shows, in branch A (inside) and branch C (outside)."""

    entry: dict[str, int]
    notice: dict[str, int]
    rule: dict[str, int]
    commitment: dict[str, int]
    person: dict[str, int]
    org: dict[str, int]


async def make_objects(session: AsyncSession, world) -> Objects:
    from datetime import date, timedelta

    from storage import notices, reminders
    from storage.models import Audience, Commitment, CommitmentStatus, EntryStatus, ServiceEntry

    out: dict[str, dict[str, int]] = {
        k: {} for k in ("entry", "notice", "rule", "commitment", "person", "org")
    }
    for side, branch, member, secretary in (
        ("a", world.branch_a, world.member_a, world.secretary_a),
        ("c", world.branch_c, world.member_c, world.secretary_c),
    ):
        e = ServiceEntry(
            person_id=member.id,
            org_id=branch.id,
            day=date(2026, 11, 20),
            minutes=90,
            action="volunteer",
            place="社区",
            description="义诊",
            status=EntryStatus.PENDING,
        )
        c = Commitment(
            person_id=member.id,
            org_id=branch.id,
            text="每月服务一次",
            deadline=date(2026, 12, 31),
            status=CommitmentStatus.REPORTED,
            fulfilment_text="已完成",
        )
        session.add_all([e, c])
        await session.flush()
        actor = await world.actor(session, secretary)
        n = await notices.create_notice(
            session, actor, branch.id, Audience.BRANCH_MEMBERS, "周五开会", now=NOW
        )
        await notices.send_notice(session, actor, n.id, now=NOW)
        rules = await reminders.ensure_default_rules(session, branch, now=NOW - timedelta(days=1))
        out["entry"][side] = e.id
        out["commitment"][side] = c.id
        out["notice"][side] = n.id
        out["rule"][side] = rules[0].id
        out["person"][side] = member.id
        out["org"][side] = branch.id
    await session.commit()
    return Objects(**out)
