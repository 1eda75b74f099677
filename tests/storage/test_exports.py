"""Volunteer service record exports: the columns the record rules ask for, real dates and numbers
in .xlsx, UTF-8 with BOM in .csv, formulas neutralized, scoped, audited."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook
from sqlalchemy import select

from content.pack import get_pack
from storage.errors import Forbidden, Refused
from storage.exports import export_service_records, neutralize, safe_text
from storage.models import AuditEntry, EntryStatus, ServiceEntry

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

HEADERS = [
    "志愿者姓名",
    "服务日期",
    "服务地点",
    "服务内容",
    "服务时长（小时）",
    "活动名称",
    "组织单位",
    "负责人",
    "所属支部",
    "状态",
]
FROM, TO = date(2026, 1, 1), date(2026, 12, 31)


async def fill(s, w) -> None:
    def entry(person, org, day, minutes, status=EntryStatus.APPROVED, **kw) -> ServiceEntry:
        kw.setdefault("place", "东关社区")
        kw.setdefault("description", "打扫卫生")
        return ServiceEntry(
            person_id=person.id,
            org_id=org.id,
            day=day,
            minutes=minutes,
            status=status,
            action="volunteer",
            **kw,
        )

    s.add_all(
        [
            entry(
                w.member_a, w.branch_a, date(2026, 3, 5), 150, organizer="餐饮协会", person_in_charge="李书记"
            ),
            entry(
                w.member_a2,
                w.branch_a,
                date(2026, 3, 1),
                60,
                description='=HYPERLINK("http://x","点我")',
                place="+86 138",
            ),
            entry(
                w.member_a2,
                w.branch_a,
                date(2026, 3, 2),
                30,
                status=EntryStatus.PENDING,
                description="@SUM(1)",
            ),
            entry(w.member_b, w.branch_b, date(2026, 4, 1), 45, description="-2+3"),
            entry(w.member_c, w.branch_c, date(2026, 5, 1), 90, description="\t=1+1"),
            entry(w.member_a, w.branch_a, date(2025, 12, 31), 60),  # outside the range
        ]
    )
    await s.commit()


def read_xlsx(data: bytes):
    ws = load_workbook(io.BytesIO(data)).active
    assert ws is not None
    return ws


async def test_xlsx_has_real_dates_numbers_a_frozen_bold_header_and_no_formulas(session, world) -> None:
    await fill(session, world)
    actor = await world.actor(session, world.secretary_a)
    ws = read_xlsx(await export_service_records(session, actor, world.branch_a.id, FROM, TO, pack=PACK))
    assert [c.value for c in ws[1]] == HEADERS
    assert all(c.font.b for c in ws[1])
    assert ws.freeze_panes == "A2"
    assert ws.column_dimensions["D"].width >= 30
    rows = list(ws.iter_rows(min_row=2))
    assert len(rows) == 2  # approved only, branch A only, in range
    first, second = rows
    assert first[1].is_date and first[1].value.date() == date(2026, 3, 1)
    assert second[1].value.date() == date(2026, 3, 5)
    assert first[4].data_type == "n" and second[4].value == 2.5
    assert [c.value for c in second] == [
        "张三",
        second[1].value,
        "东关社区",
        "打扫卫生",
        2.5,
        "党员志愿服务行动",
        "餐饮协会",
        "李书记",
        world.branch_a.name,
        "已审核",
    ]
    # The formula is shown, never run; the organizing unit falls back to the branch.
    assert first[3].value == '\'=HYPERLINK("http://x","点我")' and first[3].data_type == "s"
    assert first[2].value == "'+86 138"
    assert first[6].value == world.branch_a.name and first[7].value is None
    for row in ws.iter_rows():
        for c in row:
            assert c.data_type != "f"


async def test_all_statuses_on_request(session, world) -> None:
    await fill(session, world)
    actor = await world.actor(session, world.secretary_a)
    ws = read_xlsx(
        await export_service_records(session, actor, world.branch_a.id, FROM, TO, include_all=True, pack=PACK)
    )
    statuses = [r[9].value for r in ws.iter_rows(min_row=2)]
    assert sorted(statuses) == ["已审核", "已审核", "待审核"]
    pending = next(r for r in ws.iter_rows(min_row=2) if r[9].value == "待审核")
    assert pending[3].value == "'@SUM(1)"


async def test_csv_is_utf8_with_bom_and_neutralized(session, world) -> None:
    await fill(session, world)
    actor = await world.actor(session, world.staff)
    data = await export_service_records(session, actor, world.committee.id, FROM, TO, "csv", pack=PACK)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0] == HEADERS
    body = rows[1:]
    assert [r[1] for r in body] == ["2026-03-01", "2026-03-05", "2026-04-01"]  # staff: both branches
    assert [r[4] for r in body] == ["1.0", "2.5", "0.75"]
    assert body[0][3].startswith("'=") and body[2][3] == "'-2+3"
    for r in body:
        for cell in r:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


async def test_admin_exports_everything_below_the_org_asked_for(session, world) -> None:
    await fill(session, world)
    actor = await world.actor(session, world.admin, via="web")
    data = await export_service_records(session, actor, world.province.id, FROM, TO, "csv", pack=PACK)
    body = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))[1:]
    assert len(body) == 4
    assert body[-1][3] == "'\t=1+1"  # a tab some programs strip first is neutralized too
    row = await session.scalar(select(AuditEntry).where(AuditEntry.action == "records.export"))
    assert row is not None
    assert (row.actor_id, row.org_id, row.via) == (world.admin.id, world.province.id, "web")
    assert row.detail == {"format": "csv", "rows": 4, "from": "2026-01-01", "to": "2026-12-31", "all": False}


@pytest.mark.parametrize(
    ("who", "org", "allowed"),
    [
        ("member_a", "branch_a", False),
        ("secretary_a", "branch_a", True),
        ("secretary_a", "branch_b", False),
        ("secretary_a", "committee", False),
        ("staff", "committee", True),
        ("staff", "branch_c", False),
        ("staff", "province", False),
        ("admin", "branch_c", True),
    ],
)
async def test_who_may_export_what(session, world, who, org, allowed) -> None:
    actor = await world.actor(session, getattr(world, who))
    if allowed:
        assert await export_service_records(
            session, actor, getattr(world, org).id, FROM, TO, "csv", pack=PACK
        )
    else:
        with pytest.raises(Forbidden):
            await export_service_records(session, actor, getattr(world, org).id, FROM, TO, "csv", pack=PACK)
        assert await session.scalar(select(AuditEntry)) is None


async def test_bad_range_and_format(session, world) -> None:
    actor = await world.actor(session, world.admin)
    with pytest.raises(Refused) as e:
        await export_service_records(session, actor, world.branch_a.id, TO, FROM, pack=PACK)
    assert e.value.key == "records.bad_range"
    with pytest.raises(Refused) as e:
        await export_service_records(session, actor, world.branch_a.id, FROM, TO, "pdf", pack=PACK)
    assert e.value.key == "records.bad_format"


async def test_english_headers_on_request(session, world) -> None:
    actor = await world.actor(session, world.admin)
    ws = read_xlsx(
        await export_service_records(session, actor, world.branch_a.id, FROM, TO, locale="en", pack=PACK)
    )
    assert ws["A1"].value == "Volunteer name"


@given(st.text(max_size=30))
def test_neutralized_text_never_starts_like_a_formula(value: str) -> None:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    out = safe_text(value)
    assert not out.startswith(("=", "+", "-", "@", "\t", "\r"))
    if not ILLEGAL_CHARACTERS_RE.search(value):
        assert out in (value, "'" + value)  # nothing else changes


def test_a_control_character_cannot_hide_a_formula() -> None:
    assert safe_text("\x01=1+1") == "'=1+1"
    assert neutralize("普通文字") == "普通文字"


async def test_the_person_in_charge_falls_back_to_who_approved(session, world) -> None:
    session.add(
        ServiceEntry(
            person_id=world.member_a.id,
            org_id=world.branch_a.id,
            day=date(2026, 4, 2),
            minutes=60,
            status=EntryStatus.APPROVED,
            action="volunteer",
            place="东关社区",
            description="打扫卫生",
            reviewer_id=world.secretary_a.id,
        )
    )
    await session.commit()
    actor = await world.actor(session, world.secretary_a)
    ws = read_xlsx(await export_service_records(session, actor, world.branch_a.id, FROM, TO, pack=PACK))
    (row,) = list(ws.iter_rows(min_row=2, values_only=True))
    assert row[7] == world.secretary_a.name


async def test_action_titles_come_from_the_pack_passed_in(session, world) -> None:
    # The store uses the pack its caller passes (the configured CONTENT_PACK), never a default.
    await fill(session, world)
    actor = await world.actor(session, world.secretary_a)
    renamed = PACK.model_copy(
        update={
            "actions": [
                a.model_copy(update={"title": a.title.model_copy(update={"zh": "另一套内容包的行动"})})
                if a.id == "volunteer"
                else a
                for a in PACK.actions
            ]
        }
    )
    ws = read_xlsx(await export_service_records(session, actor, world.branch_a.id, FROM, TO, pack=renamed))
    assert {row[5].value for row in ws.iter_rows(min_row=2)} == {"另一套内容包的行动"}
