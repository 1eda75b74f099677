"""Joining through invites (consent first, one use at a time, personal roster links), a person's
own settings and reachability, and the roster of a branch."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from storage.errors import Forbidden, Invalid, Refused
from storage.models import AuditEntry, Invite, Membership, Person, Role, ServiceEntry
from storage.people import (
    NAME_MAX,
    clean_name,
    is_member_of,
    join,
    list_members,
    mark_blocked,
    mark_reachable,
    person_by_telegram,
    resolve_invite,
    set_locale,
    set_nudges_paused,
    touch_last_active,
)

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
TG = 777000111


async def invite(s, org, role=Role.MEMBER, uses=1, days=7, person=None, code=None) -> Invite:
    inv = Invite(
        code=code or f"code{org.id}x{role.value}x{uses}x{person.id if person else 0}xxxxxxxx",
        org_id=org.id,
        role=role,
        expires_at=NOW + timedelta(days=days),
        uses_left=uses,
        person_id=person.id if person else None,
    )
    s.add(inv)
    await s.commit()
    return inv


async def count(s, model) -> int:
    return await s.scalar(select(func.count()).select_from(model))


async def uses_left(s, inv: Invite) -> int:
    return await s.scalar(
        select(Invite.uses_left).where(Invite.id == inv.id).execution_options(populate_existing=True)
    )


async def roster_row(s, org, name="赵七", note=None) -> Person:
    p = Person(name=name, roster_note=note)
    s.add(p)
    await s.flush()
    s.add(Membership(person_id=p.id, org_id=org.id, role=Role.MEMBER))
    await s.commit()
    return p


# ---- resolving --------------------------------------------------------------------------------


async def test_resolve_shows_the_offer_and_stores_nothing(session, world) -> None:
    inv = await invite(session, world.branch_a)
    people, audit_rows = await count(session, Person), await count(session, AuditEntry)
    offer = await resolve_invite(session, inv.code, NOW)
    assert (offer.org_id, offer.org_name, offer.role, offer.personal) == (
        world.branch_a.id,
        world.branch_a.name,
        Role.MEMBER,
        False,
    )
    assert (await count(session, Person), await count(session, AuditEntry)) == (people, audit_rows)
    assert await uses_left(session, inv) == 1


@pytest.mark.parametrize("code", ["nosuchcodeatallxxxxx", "short", "bad chars here!!!!!!", "", "x" * 65])
async def test_unknown_codes(session, world, code: str) -> None:
    with pytest.raises(Refused) as e:
        await resolve_invite(session, code, NOW)
    assert e.value.key == "invite.unknown"


async def test_expired_invite(session, world) -> None:
    inv = await invite(session, world.branch_a, days=1)
    with pytest.raises(Refused) as e:
        await resolve_invite(session, inv.code, NOW + timedelta(days=1))
    assert e.value.key == "invite.expired"
    with pytest.raises(Refused) as e:
        await join(session, inv.code, TG, "新人", "zh", consent=True, now=NOW + timedelta(days=2))
    assert e.value.key == "invite.expired"
    assert await person_by_telegram(session, TG) is None


async def test_used_up_invite(session, world) -> None:
    inv = await invite(session, world.branch_a, uses=0)
    with pytest.raises(Refused) as e:
        await resolve_invite(session, inv.code, NOW)
    assert e.value.key == "invite.used_up"
    with pytest.raises(Refused) as e:
        await join(session, inv.code, TG, "新人", "zh", consent=True, now=NOW)
    assert e.value.key == "invite.used_up"


# ---- joining ----------------------------------------------------------------------------------


async def test_join_without_consent_stores_nothing(session, world) -> None:
    inv = await invite(session, world.branch_a)
    people, members = await count(session, Person), await count(session, Membership)
    with pytest.raises(Refused) as e:
        await join(session, inv.code, TG, "新人", "zh", consent=False, now=NOW)
    assert e.value.key == "privacy.consent_required"
    await session.commit()  # even if the caller commits, nothing was written
    assert (await count(session, Person), await count(session, Membership)) == (people, members)
    assert await uses_left(session, inv) == 1


async def test_join_creates_the_person_with_consent_and_takes_one_use(session, world) -> None:
    inv = await invite(session, world.branch_a, uses=3)
    p = (await join(session, inv.code, TG, "  新 人  ", "en-US", consent=True, now=NOW)).person
    await session.commit()
    assert (p.telegram_id, p.name, p.locale, p.consent_at, p.last_active_at) == (TG, "新 人", "en", NOW, NOW)
    assert [(m.org_id, m.role) for m in p.memberships] == [(world.branch_a.id, Role.MEMBER)]
    assert await uses_left(session, inv) == 2


async def test_duplicate_join_is_idempotent(session, world) -> None:
    inv = await invite(session, world.branch_a, uses=2)
    first = await join(session, inv.code, TG, "新人", "zh", consent=True, now=NOW)
    await session.commit()
    again = await join(session, inv.code, TG, "新人", "zh", consent=True, now=NOW)
    await session.commit()
    assert (first.changed, again.changed) == (True, False)
    assert (again.person.id, again.org_id, again.org_name, again.role) == (
        first.person.id,
        world.branch_a.id,
        world.branch_a.name,
        Role.MEMBER,
    )
    assert await is_member_of(session, first.person.id, world.branch_a.id)
    assert not await is_member_of(session, first.person.id, world.branch_b.id)
    assert await count(session, Membership) == 10 + 1  # the world's ten, plus one
    assert await uses_left(session, inv) == 1  # the second tap consumed nothing


async def test_a_member_tapping_a_used_up_link_again_is_welcomed_not_refused(session, world) -> None:
    inv = await invite(session, world.branch_a, uses=1)
    first = (await join(session, inv.code, TG, "新人", "zh", consent=True, now=NOW)).person
    await session.commit()
    assert (await join(session, inv.code, TG, "新人", "zh", consent=True, now=NOW)).person.id == first.id


async def test_an_existing_person_joins_a_second_org(session, world) -> None:
    inv = await invite(session, world.branch_b)
    p = (
        await join(session, inv.code, world.member_a.telegram_id, "张三", "zh", consent=True, now=NOW)
    ).person
    await session.commit()
    assert p.id == world.member_a.id
    assert {m.org_id for m in p.memberships} == {world.branch_a.id, world.branch_b.id}
    assert await uses_left(session, inv) == 0


async def test_a_secretary_invite_raises_a_members_role(session, world) -> None:
    inv = await invite(session, world.branch_a, role=Role.SECRETARY)
    p = (
        await join(session, inv.code, world.member_a.telegram_id, "张三", "zh", consent=True, now=NOW)
    ).person
    await session.commit()
    assert [(m.org_id, m.role) for m in p.memberships] == [(world.branch_a.id, Role.SECRETARY)]
    assert await uses_left(session, inv) == 0


async def test_a_member_invite_never_lowers_a_secretary(session, world) -> None:
    inv = await invite(session, world.branch_a)
    got = await join(session, inv.code, world.secretary_a.telegram_id, "李书记", "zh", consent=True, now=NOW)
    assert (got.role, got.changed) == (Role.SECRETARY, False)
    assert [m.role for m in got.person.memberships] == [Role.SECRETARY]
    assert await uses_left(session, inv) == 1


async def test_personal_invite_ties_to_the_roster_row(session, world) -> None:
    row = await roster_row(session, world.branch_a, "赵七", "会计")
    inv = await invite(session, world.branch_a, person=row)
    offer = await resolve_invite(session, inv.code, NOW)
    assert offer.personal
    people = await count(session, Person)
    p = (await join(session, inv.code, TG, "Zhao Telegram", "zh", consent=True, now=NOW)).person
    await session.commit()
    assert p.id == row.id
    assert (p.telegram_id, p.name, p.roster_note, p.consent_at) == (TG, "赵七", "会计", NOW)
    assert await count(session, Person) == people  # no second person
    assert [m.org_id for m in p.memberships] == [world.branch_a.id]
    assert await uses_left(session, inv) == 0
    # The same account opening it again is welcomed; anyone else is refused.
    assert (await join(session, inv.code, TG, "x", "zh", consent=True, now=NOW)).person.id == row.id
    with pytest.raises(Refused) as e:
        await join(session, inv.code, TG + 1, "冒名者", "zh", consent=True, now=NOW)
    assert e.value.key == "invite.used_up"


async def test_personal_invite_opened_by_an_existing_account_folds_the_roster_row_in(session, world) -> None:
    row = await roster_row(session, world.branch_a, "王五")
    session.add(
        ServiceEntry(
            person_id=row.id,
            org_id=world.branch_a.id,
            day=date(2026, 11, 1),
            minutes=60,
            action="volunteer",
            description="代登记",
        )
    )
    inv = await invite(session, world.branch_a, person=row)
    p = (
        await join(session, inv.code, world.member_b.telegram_id, "王五", "zh", consent=True, now=NOW)
    ).person
    await session.commit()
    assert p.id == world.member_b.id
    assert {m.org_id for m in p.memberships} == {world.branch_a.id, world.branch_b.id}
    assert await session.scalar(select(Person).where(Person.id == row.id)) is None
    assert await session.scalar(select(ServiceEntry.person_id)) == world.member_b.id


async def test_stale_read_cannot_take_a_use_that_is_gone(session, world) -> None:
    """The use is taken with UPDATE ... WHERE uses_left > 0: a stale read of the invite is harmless."""
    inv = await invite(session, world.branch_a, uses=1)
    assert inv.uses_left == 1  # loaded in this session
    # Someone else takes the last use behind this session's back (no ORM sync).
    await session.execute(
        update(Invite)
        .where(Invite.id == inv.id)
        .values(uses_left=0)
        .execution_options(synchronize_session=False)
    )
    with pytest.raises(Refused) as e:
        await join(session, inv.code, TG, "新人", "zh", consent=True, now=NOW)
    assert e.value.key == "invite.used_up"
    assert await person_by_telegram(session, TG) is None


async def test_race_for_the_last_use_only_one_joins(session, world, sessionmaker) -> None:
    inv = await invite(session, world.branch_a, uses=1)
    await session.commit()

    async def attempt(tg: int) -> bool:
        async with sessionmaker() as s:
            try:
                await join(s, inv.code, tg, f"人{tg}", "zh", consent=True, now=NOW)
                await s.commit()
                return True
            except Refused as e:
                assert e.key == "invite.used_up"
                await s.rollback()
                return False

    results = await asyncio.wait_for(asyncio.gather(*(attempt(TG + i) for i in range(6))), timeout=60)
    assert sum(results) == 1
    assert await uses_left(session, inv) == 0
    joined = await session.scalar(
        select(func.count()).select_from(Membership).where(Membership.org_id == world.branch_a.id)
    )
    assert joined == 3 + 1


def test_clean_name() -> None:
    assert clean_name("  张\n三\x00 ") == "张 三"
    assert len(clean_name("长" * 300)) == NAME_MAX


@given(st.text(max_size=300))
def test_clean_name_always_fits_and_has_no_control_characters(raw: str) -> None:
    name = clean_name(raw)
    assert len(name) <= NAME_MAX and name == name.strip()
    assert "\n" not in name and "\x00" not in name


async def test_a_name_with_nothing_left_is_invalid(session, world) -> None:
    inv = await invite(session, world.branch_a)
    with pytest.raises(Invalid) as e:
        await join(session, inv.code, TG, " \x00 ", "zh", consent=True, now=NOW)
    assert e.value.key == "people.bad_name"
    assert await uses_left(session, inv) == 1  # refused before the use was taken


async def test_a_roster_row_keeps_its_name_whatever_telegram_calls_the_person(session, world) -> None:
    row = await roster_row(session, world.branch_a, "赵七")
    inv = await invite(session, world.branch_a, person=row)
    p = (await join(session, inv.code, TG, "\u200b", "zh", consent=True, now=NOW)).person
    assert (p.id, p.name) == (row.id, "赵七")


@pytest.mark.parametrize("tg", [0, -5])
async def test_a_bad_telegram_id_is_invalid(session, world, tg: int) -> None:
    inv = await invite(session, world.branch_a)
    with pytest.raises(Invalid):
        await join(session, inv.code, tg, "新人", "zh", consent=True, now=NOW)


# ---- settings and reachability ---------------------------------------------------------------


async def test_set_locale_and_nudges(session, world) -> None:
    p = world.member_a
    await set_locale(session, p, "en")
    await set_nudges_paused(session, p, True)
    await session.commit()
    fresh = await session.scalar(
        select(Person).where(Person.id == p.id).execution_options(populate_existing=True)
    )
    assert (fresh.locale, fresh.nudges_paused) == ("en", True)
    with pytest.raises(Invalid) as e:
        await set_locale(session, p, "fr")
    assert e.value.key == "people.bad_locale"


async def test_touch_last_active_writes_at_most_every_ten_minutes(session, world) -> None:
    pid = world.member_a.id
    assert await touch_last_active(session, pid, NOW)
    assert not await touch_last_active(session, pid, NOW + timedelta(minutes=5))
    assert await touch_last_active(session, pid, NOW + timedelta(minutes=11))
    got = await session.scalar(select(Person.last_active_at).where(Person.id == pid))
    assert got == NOW + timedelta(minutes=11)


async def test_blocked_and_reachable(session, world) -> None:
    tg = world.member_a.telegram_id
    assert await mark_blocked(session, tg, NOW)
    assert not await mark_blocked(session, tg, NOW)  # already blocked: first time kept
    p = await session.scalar(
        select(Person).where(Person.id == world.member_a.id).execution_options(populate_existing=True)
    )
    assert p.blocked_at == NOW and not p.reachable
    assert await mark_reachable(session, tg)
    p = await session.scalar(
        select(Person).where(Person.id == world.member_a.id).execution_options(populate_existing=True)
    )
    assert p.blocked_at is None and p.reachable
    assert not await mark_blocked(session, 1, NOW)  # nobody


# ---- list_members -----------------------------------------------------------------------------


async def test_list_members_shows_the_roster_of_a_branch(session, world) -> None:
    row = await roster_row(session, world.branch_a, "赵七", "会计")
    await mark_blocked(session, world.member_a2.telegram_id, NOW)
    session.add(
        ServiceEntry(
            person_id=world.member_a.id,
            org_id=world.branch_a.id,
            day=date(2026, 11, 1),
            minutes=60,
            action="volunteer",
            description="清扫",
            created_at=NOW - timedelta(days=3),
        )
    )
    await session.execute(
        update(Person).where(Person.id == world.member_a.id).values(last_active_at=NOW - timedelta(days=5))
    )
    await session.commit()
    actor = await world.actor(session, world.secretary_a)
    rows = {r.person_id: r for r in await list_members(session, actor, world.branch_a.id)}
    assert set(rows) == {world.secretary_a.id, world.member_a.id, world.member_a2.id, row.id}
    a = rows[world.member_a.id]
    assert (a.role, a.on_telegram, a.reachable, a.blocked) == (Role.MEMBER, True, True, False)
    assert a.last_activity == NOW - timedelta(days=3)  # the later of entry and last message
    assert rows[world.member_a2.id].blocked and not rows[world.member_a2.id].reachable
    r = rows[row.id]
    assert (r.name, r.note, r.on_telegram, r.reachable, r.last_activity) == (
        "赵七",
        "会计",
        False,
        False,
        None,
    )
    assert rows[world.secretary_a.id].role is Role.SECRETARY
    # Read in chat: not audited; the member list holds no one from another branch.
    assert await count(session, AuditEntry) == 0


async def test_list_members_from_the_admin_web_is_audited(session, world) -> None:
    actor = await world.actor(session, world.admin, via="web")
    rows = await list_members(session, actor, world.branch_c.id)
    assert {r.person_id for r in rows} == {world.secretary_c.id, world.member_c.id}
    entry = await session.scalar(select(AuditEntry))
    assert (entry.action, entry.actor_id, entry.org_id, entry.via) == (
        "members.view",
        world.admin.id,
        world.branch_c.id,
        "web",
    )


@pytest.mark.parametrize(
    ("who", "org", "allowed"),
    [
        ("member_a", "branch_a", False),
        ("secretary_a", "branch_a", True),
        ("secretary_a", "branch_b", False),
        ("staff", "branch_b", True),
        ("staff", "branch_c", False),
        ("other_staff", "branch_c", True),
        ("admin", "branch_c", True),
    ],
)
async def test_who_may_list_members(session, world, who, org, allowed) -> None:
    actor = await world.actor(session, getattr(world, who))
    if allowed:
        assert await list_members(session, actor, getattr(world, org).id)
    else:
        with pytest.raises(Forbidden):
            await list_members(session, actor, getattr(world, org).id)
