"""Admin web sign-in: one-time links (hash stored, 10 minutes, single use) and Argon2 passwords."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from storage import web_auth
from storage.audit import system_actor
from storage.errors import Forbidden, Invalid, Refused
from storage.models import AuditEntry, Membership, Role, WebSignIn

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real parameters cost ~0.15 s a hash; the rules under test do not depend on them.
    monkeypatch.setattr(web_auth, "HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    monkeypatch.setattr(web_auth, "_dummy", {})


async def test_link_stores_only_a_hash_and_signs_in_once(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    token = await web_auth.create_sign_in_link(session, actor, NOW)
    row = await session.scalar(select(WebSignIn))
    assert row is not None and token not in row.token_hash and row.token_hash == web_auth.token_hash(token)
    assert row.expires_at == NOW + timedelta(minutes=10)
    assert (await web_auth.peek_sign_in_link(session, token, NOW)).id == world.secretary_a.id
    signed_in = await web_auth.redeem_sign_in_link(session, token, NOW + timedelta(minutes=1))
    assert signed_in.person_id == world.secretary_a.id and signed_in.via == "web"
    with pytest.raises(Refused) as e:
        await web_auth.redeem_sign_in_link(session, token, NOW + timedelta(minutes=2))
    assert e.value.key == "web.link_used"


async def test_link_expires_after_ten_minutes(session, world) -> None:
    token = await web_auth.create_sign_in_link(session, await world.actor(session, world.staff), NOW)
    with pytest.raises(Refused) as e:
        await web_auth.redeem_sign_in_link(session, token, NOW + timedelta(minutes=10))
    assert e.value.key == "web.link_expired"
    assert (await session.scalar(select(WebSignIn.used_at))) is None


async def test_unknown_link_is_refused(session, world) -> None:
    for token in ("nope", "", "x" * 500):
        with pytest.raises(Refused) as e:
            await web_auth.redeem_sign_in_link(session, token, NOW)
        assert e.value.key == "web.link_unknown"


async def test_members_get_no_link(session, world) -> None:
    with pytest.raises(Forbidden):
        await web_auth.create_sign_in_link(session, await world.actor(session, world.member_a), NOW)
    assert await session.scalar(select(func.count()).select_from(WebSignIn)) == 0


async def test_link_of_someone_demoted_since_is_refused(session, world) -> None:
    token = await web_auth.create_sign_in_link(session, await world.actor(session, world.secretary_a), NOW)
    m = await session.scalar(select(Membership).where(Membership.person_id == world.secretary_a.id))
    assert m is not None
    m.role = Role.MEMBER
    await session.flush()
    with pytest.raises(Forbidden):
        await web_auth.redeem_sign_in_link(session, token, NOW)


async def test_password_sign_in_for_staff_and_audit(session, world) -> None:
    await web_auth.set_password(session, system_actor(), world.staff.id, "Wang.GS", "correct horse battery")
    assert world.staff.username == "wang.gs" and world.staff.password_hash.startswith("$argon2id$")
    assert await web_auth.check_password(session, "wang.gs", "wrong password!", NOW) is None
    actor = await web_auth.check_password(session, " WANG.gs ", "correct horse battery", NOW)
    assert actor is not None and actor.person_id == world.staff.id and actor.via == "web"
    actions = set(await session.scalars(select(AuditEntry.action)))
    assert {"web.password_set", "web.sign_in"} <= actions


async def test_unknown_username_is_just_no(session, world) -> None:
    assert await web_auth.check_password(session, "nobody", "whatever password", NOW) is None
    assert await web_auth.check_password(session, "", "", NOW) is None


async def test_password_only_for_admin_and_staff(session, world) -> None:
    with pytest.raises(Refused) as e:
        await web_auth.set_password(session, system_actor(), world.secretary_a.id, "lisj", "long enough pw")
    assert e.value.key == "web.password_role"
    with pytest.raises(Forbidden):
        actor = await world.actor(session, world.staff)
        await web_auth.set_password(session, actor, world.staff.id, "wang", "long enough pw")


async def test_password_rules(session, world) -> None:
    with pytest.raises(Invalid) as e:
        await web_auth.set_password(session, system_actor(), world.staff.id, "wang", "short")
    assert e.value.key == "web.weak_password"
    with pytest.raises(Invalid) as e:
        await web_auth.set_password(session, system_actor(), world.staff.id, "王", "long enough pw")
    assert e.value.key == "web.bad_username"
    await web_auth.set_password(session, system_actor(), world.staff.id, "wang", "long enough pw")
    with pytest.raises(Refused) as e:
        await web_auth.set_password(session, system_actor(), world.admin.id, "wang", "long enough pw")
    assert e.value.key == "web.username_taken"


async def test_password_of_someone_demoted_no_longer_works(session, world) -> None:
    await web_auth.set_password(session, system_actor(), world.staff.id, "wang", "long enough pw")
    m = await session.scalar(select(Membership).where(Membership.person_id == world.staff.id))
    assert m is not None
    m.role = Role.MEMBER
    await session.flush()
    assert await web_auth.check_password(session, "wang", "long enough pw", NOW) is None
