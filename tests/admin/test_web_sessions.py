"""Sessions that can end (server-side rows; the cookie holds a random id) and a sign-in limiter
that counts before it verifies, keys by user and by the address a trusted proxy reports, and
slows repeated failures down."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from admin.web.app import COOKIE
from admin.web.security import SignInLimiter, client_address
from config.settings import Settings
from storage import web_auth
from storage.audit import system_actor
from storage.models import AdminSession, AuditEntry, Membership, Role
from tests.admin.conftest import PASSWORD, csrf, read, sign_in

pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
def argon2_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the real Argon2 verifications."""
    calls: list[int] = []
    real = web_auth._verify

    def counted(stored: str | None, password: str) -> bool:
        calls.append(1)
        return real(stored, password)

    monkeypatch.setattr(web_auth, "_verify", counted)
    return calls


async def _login(client, username: str, password: str, token: str, headers: dict[str, str] | None = None):
    return await client.post(
        "/login", data={"csrf": token, "username": username, "password": password}, headers=headers or {}
    )


def _copy(client, new_client):
    """Another browser holding a copy of `client`'s cookie (as a thief would)."""
    other = new_client()
    for cookie in client.cookies.jar:
        other.cookies.set(cookie.name, cookie.value, domain=cookie.domain, path=cookie.path)
    return other


async def _sessions(sessionmaker) -> int:
    return await read(sessionmaker, select(func.count()).select_from(AdminSession))


# ---- sessions ------------------------------------------------------------------------------


async def test_the_cookie_holds_a_random_id_and_the_table_only_its_hash(client, sessionmaker, world) -> None:
    await sign_in(client, sessionmaker, world.staff)
    payload = client.cookies[COOKIE].split(".")[0]
    data = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    assert set(data) <= {"sid", "csrf", "lang", "flash"} and "pid" not in data
    row = await read(sessionmaker, select(AdminSession))
    assert row.person_id == world.staff.id and data["sid"] not in row.token_hash
    assert len(data["sid"]) >= 40


async def test_a_copy_of_the_cookie_dies_with_logout(client, new_client, sessionmaker, world) -> None:
    await sign_in(client, sessionmaker, world.staff)
    async with _copy(client, new_client) as thief:
        assert (await thief.get("/")).status_code == 200  # the copy works while the session lives
        r = await client.post("/logout", data={"csrf": await csrf(client)})
        assert r.status_code == 303
        stolen = await thief.get("/")
        assert stolen.status_code == 302 and stolen.headers["location"].startswith("/login")
    assert await _sessions(sessionmaker) == 0


async def test_a_new_password_ends_every_session(
    new_client, session, sessionmaker, world, staff_password
) -> None:
    browsers = [new_client(), new_client()]
    for b in browsers:
        token = await csrf(b, "/login")
        assert (await _login(b, "wang", PASSWORD, token)).status_code == 303
        assert (await b.get("/")).status_code == 200
    assert await _sessions(sessionmaker) == 2
    await web_auth.set_password(session, system_actor(), world.staff.id, "wang", "a new password 2026")
    await session.commit()
    for b in browsers:
        assert (await b.get("/")).status_code == 302
        await b.aclose()
    assert await _sessions(sessionmaker) == 0


async def test_sign_out_everywhere(client, new_client, sessionmaker, world) -> None:
    await sign_in(client, sessionmaker, world.secretary_a)
    async with new_client() as phone:
        await sign_in(phone, sessionmaker, world.secretary_a)
        async with new_client() as someone_else:
            await sign_in(someone_else, sessionmaker, world.staff)
            r = await phone.post("/logout/everywhere", data={"csrf": await csrf(phone)})
            assert r.status_code == 303 and r.headers["location"] == "/login"
            assert "已在所有设备上退出（共 2 个登录）" in (await phone.get("/login")).text
            assert (await client.get("/")).status_code == 302
            assert (await phone.get("/")).status_code == 302
            assert (await someone_else.get("/")).status_code == 200  # only the person's own
    row = await read(sessionmaker, select(AuditEntry).where(AuditEntry.action == "web.sign_out_everywhere"))
    assert row.actor_id == world.secretary_a.id and row.detail == {"sessions": 2}


async def test_a_role_taken_away_ends_the_session_for_good(client, session, sessionmaker, world) -> None:
    await sign_in(client, sessionmaker, world.secretary_a)
    demote = update(Membership).where(Membership.person_id == world.secretary_a.id)
    await session.execute(demote.values(role=Role.MEMBER))
    await session.commit()
    assert (await client.get("/")).status_code == 302
    assert await _sessions(sessionmaker) == 0
    await session.execute(demote.values(role=Role.SECRETARY))  # the role back: the session stays ended
    await session.commit()
    assert (await client.get("/")).status_code == 302


async def test_erasure_ends_the_sessions(client, session, sessionmaker, world, clock) -> None:
    from storage.privacy import erase_person

    await sign_in(client, sessionmaker, world.secretary_a)
    await erase_person(session, system_actor(), world.secretary_a.id, clock.now())
    await session.commit()
    assert await _sessions(sessionmaker) == 0
    assert (await client.get("/")).status_code == 302


async def test_idle_time_is_measured_from_the_last_request(client, sessionmaker, world, clock) -> None:
    await sign_in(client, sessionmaker, world.staff)
    for _ in range(3):
        clock.advance(timedelta(minutes=20))
        assert (await client.get("/")).status_code == 200
    clock.advance(timedelta(minutes=31))
    assert (await client.get("/")).status_code == 302
    assert await _sessions(sessionmaker) == 0  # the expired row went too


async def test_lifetimes_are_settings(sessionmaker, clean_db, web_settings, world, clock, new_client) -> None:
    import httpx

    from admin.web import create_app

    settings = web_settings.model_copy(update={"admin_session_idle_minutes": 5, "admin_session_hours": 1})
    app = create_app(sessionmaker, settings, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin.test") as c:
        await sign_in(c, sessionmaker, world.staff)
        assert "max-age=3600" in (await c.get("/")).headers.get("set-cookie", "max-age=3600").lower()
        clock.advance(timedelta(minutes=6))
        assert (await c.get("/")).status_code == 302


# ---- the sign-in limiter -------------------------------------------------------------------


async def test_200_concurrent_wrong_passwords_get_at_most_5_argon2_checks(
    client, world, staff_password, argon2_checks
) -> None:
    token = await csrf(client, "/login")
    results = await asyncio.gather(*(_login(client, "wang", f"guess {i}", token) for i in range(200)))
    codes = [r.status_code for r in results]
    print(
        f"\nsign-in limiter, one user: 200 concurrent wrong passwords -> {codes.count(401)} checked "
        f"(401), {codes.count(429)} refused (429), {len(argon2_checks)} real Argon2 checks"
    )
    assert len(argon2_checks) <= 5
    assert codes.count(401) == len(argon2_checks) and codes.count(429) == 200 - len(argon2_checks)


async def test_200_concurrent_attempts_on_many_users_get_at_most_20_from_one_address(
    client, world, argon2_checks
) -> None:
    token = await csrf(client, "/login")
    results = await asyncio.gather(*(_login(client, f"user{i}", "guess", token) for i in range(200)))
    codes = [r.status_code for r in results]
    print(
        f"\nsign-in limiter, one address: 200 concurrent attempts on 200 users -> "
        f"{codes.count(429)} refused, {len(argon2_checks)} real Argon2 checks"
    )
    assert len(argon2_checks) <= 20 and codes.count(429) >= 180


async def test_forwarded_for_counts_only_from_a_trusted_proxy(
    sessionmaker, clean_db, web_settings, world, clock, argon2_checks
) -> None:
    import httpx

    from admin.web import create_app

    async def attempts(settings: Settings) -> list[int]:
        app = create_app(sessionmaker, settings, clock=clock)
        transport = httpx.ASGITransport(app=app, client=("10.0.0.2", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as c:
            token = await csrf(c, "/login")
            # Each attempt claims another client address and tries another username.
            return [
                (
                    await _login(c, f"user{i}", "guess", token, {"X-Forwarded-For": f"203.0.113.{i}"})
                ).status_code
                for i in range(30)
            ]

    # Not from a trusted proxy: the header is the caller's invention, the peer's address counts.
    spoofed = await attempts(web_settings)
    assert spoofed.count(429) == 10 and spoofed[:20] == [401] * 20
    # From the configured proxy: each client address is counted on its own.
    behind = await attempts(web_settings.model_copy(update={"admin_trusted_proxies": "10.0.0.0/24"}))
    assert behind == [401] * 30


def test_client_address_walks_forwarded_for_from_the_right() -> None:
    from ipaddress import ip_network

    proxies = [ip_network("10.0.0.0/24")]
    assert client_address("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.9", proxies) == "198.51.100.7"
    assert client_address("192.0.2.1", "1.2.3.4", proxies) == "192.0.2.1"  # not a proxy of ours
    assert client_address("10.0.0.2", None, proxies) == "10.0.0.2"
    assert client_address("10.0.0.2", "not-an-ip", proxies) == "10.0.0.2"
    assert client_address("10.0.0.2", "1.2.3.4", []) == "10.0.0.2"


def test_a_stranger_cannot_lock_an_account() -> None:
    """A hundred failures in a row cost the owner at most `max_delay`, then they get in."""
    now = [1000.0]
    lim = SignInLimiter(clock=lambda: now[0], max_delay=60)
    waits = []
    for i in range(100):
        r = lim.reserve(f"198.51.100.{i}", "wang")
        while isinstance(r, float):
            waits.append(r)
            now[0] += r
            r = lim.reserve(f"198.51.100.{i}", "wang")
    assert max(waits) <= 60
    owner = lim.reserve("192.0.2.10", "wang")
    if isinstance(owner, float):
        assert owner <= 60
        now[0] += owner
        owner = lim.reserve("192.0.2.10", "wang")
    assert not isinstance(owner, float)
