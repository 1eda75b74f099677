"""Signing in and staying safe: passwords (rate-limited), one-time links (expired, reused),
session expiry, CSRF on every form, secure headers and cookie flags."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from storage.models import AuditEntry, EntryStatus, Membership, Role, ServiceEntry
from tests.admin.conftest import PASSWORD, csrf, csrf_of, link_for, sign_in

pytestmark = pytest.mark.usefixtures("cheap_hashing")


async def _login(client, username: str, password: str, next_: str = "/"):
    token = await csrf(client, "/login")
    return await client.post(
        "/login", data={"csrf": token, "username": username, "password": password, "next": next_}
    )


async def test_password_sign_in_opens_the_requested_page(client, session, world, staff_password) -> None:
    r = await client.get("/members?q=张")
    assert r.status_code == 302 and r.headers["location"] == "/login?next=%2Fmembers%3Fq%3D%E5%BC%A0"
    r = await _login(client, "wang", PASSWORD, next_="/members?q=张")
    assert r.status_code == 303 and r.headers["location"] == "/members?q=%E5%BC%A0"
    cookie = r.headers["set-cookie"]
    assert (
        "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "secure" not in cookie.lower()
    )
    assert "max-age=28800" in cookie.lower()
    assert (await client.get("/")).status_code == 200
    row = await session.scalar(select(AuditEntry).where(AuditEntry.action == "web.sign_in"))
    assert row is not None and row.detail == {"method": "password"} and row.via == "web"


async def test_wrong_password_and_unknown_user_are_refused_alike(client, world, staff_password) -> None:
    for user, pw in (("wang", "not the password"), ("nobody", PASSWORD)):
        r = await _login(client, user, pw)
        assert r.status_code == 401 and "用户名或密码不正确" in r.text
    assert (await client.get("/")).status_code == 302


async def test_sign_in_attempts_are_slowed_down_not_locked(client, world, staff_password, clock) -> None:
    for _ in range(5):
        assert (await _login(client, "wang", "guess guess guess")).status_code == 401
    r = await _login(client, "wang", PASSWORD)  # even the right password now waits
    assert r.status_code == 429 and "请等待 1 秒" in r.text and r.headers["retry-after"] == "1"
    assert (await client.get("/")).status_code == 302
    clock.advance(timedelta(seconds=1))
    assert (await _login(client, "wang", "guess guess guess")).status_code == 401
    r = await _login(client, "wang", PASSWORD)  # the next wait has doubled
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    clock.advance(timedelta(seconds=2))
    r = await _login(client, "wang", PASSWORD)  # slowed down, never locked out
    assert r.status_code == 303
    assert (await client.get("/")).status_code == 200


async def test_next_never_leaves_the_site(new_client, world, staff_password) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "\\\\evil.example"):
        async with new_client() as client:
            r = await _login(client, "wang", PASSWORD, next_=target)
            assert r.status_code == 303 and r.headers["location"] == "/"


async def test_a_link_shows_whose_it_is_and_signs_in_once(client, new_client, sessionmaker, world) -> None:
    token = await link_for(sessionmaker, world.secretary_a)
    page = await client.get(f"/login/link/{token}")
    assert page.status_code == 200 and "李书记" in page.text
    again = await client.get(f"/login/link/{token}")  # looking does not use it up
    assert again.status_code == 200
    r = await client.post(f"/login/link/{token}", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303
    assert (await client.get("/")).status_code == 200
    async with new_client() as other:
        reused = await other.get(f"/login/link/{token}")
        assert reused.status_code == 410 and "已经用过" in reused.text
        r = await other.post(f"/login/link/{token}", data={"csrf": await csrf(other, "/login")})
        assert r.status_code == 410
        assert (await other.get("/")).status_code == 302


async def test_an_expired_link_is_refused(client, sessionmaker, world, clock) -> None:
    token = await link_for(sessionmaker, world.staff)
    clock.advance(timedelta(minutes=10, seconds=1))
    page = await client.get(f"/login/link/{token}")
    assert page.status_code == 410 and "已过期" in page.text
    r = await client.post(f"/login/link/{token}", data={"csrf": await csrf(client, "/login")})
    assert r.status_code == 410
    assert (await client.get("/")).status_code == 302


async def test_an_unknown_link_is_404(client, world) -> None:
    assert (await client.get("/login/link/made-up-token")).status_code == 404


async def test_a_link_of_someone_demoted_meanwhile_is_refused(client, session, sessionmaker, world) -> None:
    token = await link_for(sessionmaker, world.secretary_a)
    page = await client.get(f"/login/link/{token}")
    await session.execute(
        update(Membership).where(Membership.person_id == world.secretary_a.id).values(role=Role.MEMBER)
    )
    await session.commit()
    r = await client.post(f"/login/link/{token}", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 403
    assert (await client.get("/")).status_code == 302


async def test_sessions_end_after_eight_hours_even_when_used(client, sessionmaker, world, clock) -> None:
    await sign_in(client, sessionmaker, world.staff)
    for _ in range(16):  # busy all day: a request every 29 minutes (the idle limit is 30)
        clock.advance(timedelta(minutes=29))
        assert (await client.get("/")).status_code == 200
    clock.advance(timedelta(minutes=16))  # 8 h 00 min after signing in
    r = await client.get("/")
    assert r.status_code == 302 and r.headers["location"].startswith("/login")


async def test_sessions_end_after_thirty_idle_minutes(client, sessionmaker, world, clock) -> None:
    await sign_in(client, sessionmaker, world.staff)
    clock.advance(timedelta(minutes=29))
    assert (await client.get("/")).status_code == 200
    clock.advance(timedelta(minutes=30))
    r = await client.get("/")
    assert r.status_code == 302 and r.headers["location"].startswith("/login")


async def test_sign_out(client, sessionmaker, world) -> None:
    await sign_in(client, sessionmaker, world.staff)
    r = await client.post("/logout", data={"csrf": await csrf(client)})
    assert r.status_code == 303
    assert (await client.get("/")).status_code == 302


async def test_signing_in_starts_a_new_session(client, sessionmaker, world) -> None:
    before = await csrf(client, "/login")
    await sign_in(client, sessionmaker, world.staff)
    after = await csrf(client)
    assert before != after


@pytest.fixture
async def pending(session, world) -> int:
    from datetime import date

    e = ServiceEntry(
        person_id=world.member_a.id,
        org_id=world.branch_a.id,
        day=date(2026, 11, 20),
        minutes=60,
        action="volunteer",
        description="义诊",
    )
    session.add(e)
    await session.commit()
    return e.id


async def _status(session, entry_id: int) -> EntryStatus:
    session.expire_all()
    status = await session.scalar(select(ServiceEntry.status).where(ServiceEntry.id == entry_id))
    await session.commit()  # SQLite: our read holds the write lock until the transaction ends
    return status


@pytest.mark.parametrize("token", [None, "", "forged-token-value-1234567890"])
async def test_forms_without_the_sessions_token_are_refused(
    client, session, sessionmaker, world, pending, token
) -> None:
    await sign_in(client, sessionmaker, world.secretary_a)
    data = {"ids": str(pending), "decision": "approve"}
    if token is not None:
        data["csrf"] = token
    r = await client.post("/entries/review", data=data)
    assert r.status_code == 403 and "表单已失效" in r.text
    assert await _status(session, pending) is EntryStatus.PENDING


async def test_a_token_from_another_session_is_refused(
    client, new_client, session, sessionmaker, world, pending
) -> None:
    await sign_in(client, sessionmaker, world.secretary_a)
    async with new_client() as attacker:
        foreign = await csrf(attacker, "/login")
    r = await client.post(
        "/entries/review", data={"ids": str(pending), "decision": "approve", "csrf": foreign}
    )
    assert r.status_code == 403
    assert await _status(session, pending) is EntryStatus.PENDING


async def test_a_post_from_another_origin_is_refused(client, session, sessionmaker, world, pending) -> None:
    await sign_in(client, sessionmaker, world.secretary_a)
    token = await csrf(client)
    ids = str(pending)
    r = await client.post(
        "/entries/review",
        data={"ids": ids, "decision": "approve", "csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert await _status(session, pending) is EntryStatus.PENDING
    ok = await client.post(
        "/entries/review",
        data={"ids": ids, "decision": "approve", "csrf": token},
        headers={"Origin": "http://admin.test"},
    )
    assert ok.status_code == 303
    assert await _status(session, pending) is EntryStatus.APPROVED


@pytest.mark.parametrize("path", ["/login", "/", "/nowhere", "/static/admin.css", "/charts/hours.svg"])
async def test_secure_headers_everywhere(client, sessionmaker, world, path) -> None:
    await sign_in(client, sessionmaker, world.staff)
    r = await client.get(path)
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "http" not in csp
    if path in ("/", "/login"):
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["cache-control"] == "no-store"


async def test_pages_load_nothing_from_elsewhere(client, sessionmaker, world) -> None:
    await sign_in(client, sessionmaker, world.staff)
    for path in ("/", "/login", "/notices"):
        html = (await client.get(path)).text
        assert "http://" not in html and "https://" not in html and "//cdn" not in html


async def test_cookies_are_secure_behind_https(sessionmaker, clean_db, web_settings, world) -> None:
    import httpx

    from admin.web import create_app

    settings = web_settings.model_copy(update={"admin_public_url": "https://admin.example.org"})
    app = create_app(sessionmaker, settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://admin.example.org"
    ) as c:
        r = await c.get("/login")
        assert "secure" in r.headers["set-cookie"].lower()


async def test_language_switch(client, sessionmaker, world) -> None:
    await sign_in(client, sessionmaker, world.staff)
    assert "工作概览" in (await client.get("/")).text
    r = await client.post("/lang", data={"csrf": await csrf(client), "lang": "en", "back": "/orgs"})
    assert r.status_code == 303 and r.headers["location"] == "/orgs"
    page = (await client.get("/")).text
    assert "Dashboard" in page and "工作概览" not in page
