"""Roster import: all rows or none, a roster row and a personal link per person, and the
printable sheet of links."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from storage.errors import Forbidden, Refused
from storage.models import AuditEntry, Invite, Membership, Person, Role
from storage.people import RosterRejected, import_roster, invite_sheet, join, preview_roster

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def csv_file(rows: list[list[str]], encoding: str = "utf-8-sig") -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode(encoding)


def xlsx_file(rows: list[list[str]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


ROSTER = [["姓名", "角色", "备注"], ["赵七", "党员", ""], ["钱八", "", "会计"], ["钱八", "", "出纳"]]


async def counts(s) -> tuple[int, int, int, int]:
    return tuple(  # type: ignore[return-value]
        [
            await s.scalar(select(func.count()).select_from(m))
            for m in (Person, Membership, Invite, AuditEntry)
        ]
    )


async def test_secretary_imports_a_roster(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    got = await import_roster(session, actor, world.branch_a.id, xlsx_file(ROSTER), "名册.xlsx", now=NOW)
    await session.commit()
    assert [(i.name, i.role, i.note) for i in got] == [
        ("赵七", Role.MEMBER, None),
        ("钱八", Role.MEMBER, "会计"),
        ("钱八", Role.MEMBER, "出纳"),
    ]
    for i in got:
        p = await session.get(Person, i.person_id)
        assert p is not None
        assert (p.telegram_id, p.consent_at, p.roster_note) == (None, None, i.note)
        assert [(m.org_id, m.role) for m in p.memberships] == [(world.branch_a.id, Role.MEMBER)]
        inv = await session.scalar(select(Invite).where(Invite.person_id == p.id))
        assert inv is not None
        assert (inv.code, inv.uses_left, inv.org_id, inv.expires_at) == (
            i.code,
            1,
            world.branch_a.id,
            NOW + timedelta(days=30),
        )
    entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "roster.import"))
    assert entry is not None and entry.detail == {"rows": 3, "days": 30}
    assert (entry.actor_id, entry.org_id) == (world.secretary_a.id, world.branch_a.id)


async def test_one_bad_row_and_nothing_is_imported(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    before = await counts(session)
    rows = [*ROSTER, ['=HYPERLINK("http://evil")', "党员", ""], ["孙九", "团员", ""]]
    with pytest.raises(RosterRejected) as e:
        await import_roster(session, actor, world.branch_a.id, csv_file(rows), "r.csv", now=NOW)
    assert e.value.key == "roster.rejected" and e.value.params == {"count": 2}
    assert [(p.line, p.key) for p in e.value.preview.sorted_problems()] == [
        (5, "roster.formula"),
        (6, "roster.unknown_role"),
    ]
    assert await counts(session) == before


async def test_preview_writes_nothing(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    before = await counts(session)
    preview = await preview_roster(session, actor, world.branch_a.id, csv_file(ROSTER), "r.csv")
    assert preview.ok and len(preview.rows) == 3
    assert await counts(session) == before


async def test_importing_the_same_file_twice_lists_nobody_twice(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    await import_roster(session, actor, world.branch_a.id, csv_file(ROSTER), "r.csv", now=NOW)
    # Someone already on the branch from the world, too:
    data = csv_file([["姓名"], ["张三"]])
    with pytest.raises(RosterRejected) as e:
        await import_roster(session, actor, world.branch_a.id, data, "r.csv", now=NOW)
    assert [p.key for p in e.value.preview.problems] == ["roster.already_listed"]
    with pytest.raises(RosterRejected) as e:
        await import_roster(session, actor, world.branch_a.id, csv_file(ROSTER), "r.csv", now=NOW)
    assert [p.line for p in e.value.preview.problems] == [2, 3, 4]


async def test_a_secretary_may_not_import_secretaries_but_staff_may(session, world) -> None:
    data = csv_file([["姓名", "角色"], ["新书记", "书记"]])
    sec = await world.actor(session, world.secretary_a)
    with pytest.raises(RosterRejected) as e:
        await import_roster(session, sec, world.branch_a.id, data, "r.csv", now=NOW)
    assert [p.key for p in e.value.preview.problems] == ["roster.role_not_allowed"]
    staff = await world.actor(session, world.staff)
    got = await import_roster(session, staff, world.branch_a.id, data, "r.csv", now=NOW)
    assert [i.role for i in got] == [Role.SECRETARY]


@pytest.mark.parametrize(
    ("who", "org", "error"),
    [
        ("member_a", "branch_a", Forbidden),
        ("secretary_a", "branch_b", Forbidden),
        ("staff", "branch_c", Forbidden),
        ("admin", "committee", Refused),  # only into a branch
    ],
)
async def test_who_may_import_where(session, world, who, org, error) -> None:
    actor = await world.actor(session, getattr(world, who))
    before = await counts(session)
    with pytest.raises(error) as e:
        await import_roster(session, actor, getattr(world, org).id, csv_file(ROSTER), "r.csv", now=NOW)
    if error is Refused:
        assert e.value.key == "roster.needs_branch"
    assert await counts(session) == before


async def test_a_broken_file_is_refused_before_anything_is_written(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    before = await counts(session)
    with pytest.raises(Refused) as e:
        await import_roster(session, actor, world.branch_a.id, b"PK\x03\x04garbage", "r.xlsx", now=NOW)
    assert e.value.key == "roster.broken_xlsx"
    assert await counts(session) == before


async def test_the_personal_link_ties_the_roster_row_when_opened(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    (imported,) = await import_roster(
        session, actor, world.branch_a.id, csv_file(ROSTER[:2]), "r.csv", now=NOW
    )
    await session.commit()
    p = (await join(session, imported.code, 555123, "Telegram 名字", "zh", consent=True, now=NOW)).person
    assert (p.id, p.name, p.telegram_id, p.consent_at) == (imported.person_id, "赵七", 555123, NOW)


async def test_invite_sheet_lists_every_personal_link(session, world) -> None:
    actor = await world.actor(session, world.secretary_a)
    got = await import_roster(session, actor, world.branch_a.id, csv_file(ROSTER), "r.csv", now=NOW)
    ws = load_workbook(io.BytesIO(invite_sheet(got, "demo_bot"))).active
    assert ws is not None
    assert [c.value for c in ws[1]] == ["姓名", "角色", "备注", "专属邀请链接", "扫码加入"]
    body = [[c.value for c in row][:4] for row in ws.iter_rows(min_row=2)]
    assert body == [[i.name, "党员", i.note, f"https://t.me/demo_bot?start={i.code}"] for i in got]
    assert len(ws._images) == 3
    plain = load_workbook(io.BytesIO(invite_sheet(got, "demo_bot", locale="en", qr=False))).active
    assert plain is not None and len(plain._images) == 0
    assert plain["A1"].value == "Name" and plain["B2"].value == "Member"
