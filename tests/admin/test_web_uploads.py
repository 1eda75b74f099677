"""Roster uploads: a good file previews every row and imports only when confirmed; a bad one
(wrong type, broken .xlsx, 50 MB, formulas in cells, bad rows) is refused with every problem
listed, and nothing is imported."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from storage.models import AuditEntry, Invite, Membership, Person
from tests.admin.conftest import csrf, read, sign_in

GOOD_CSV = "姓名,角色,备注\n赵六,党员,第一党小组\n孙七,,\n".encode()


def _xlsx(rows: list[list[str]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


async def _people(sessionmaker) -> int:
    return int(await read(sessionmaker, select(func.count()).select_from(Person)) or 0)


async def _upload(client, org_id: int, name: str, data: bytes, token: str | None = None):
    token = token or await csrf(client, f"/members/import?org={org_id}")
    return await client.post(
        f"/members/import?org={org_id}",
        data={"csrf": token},
        files={"file": (name, data, "application/octet-stream")},
    )


@pytest.fixture
async def secretary(client, sessionmaker, world):
    await sign_in(client, sessionmaker, world.secretary_a)
    return world.secretary_a


async def test_a_good_roster_is_previewed_then_imported_on_confirmation(
    client, sessionmaker, world, secretary
) -> None:
    before = await _people(sessionmaker)
    r = await _upload(client, world.branch_a.id, "名册.csv", GOOD_CSV)
    assert r.status_code == 200 and "赵六" in r.text and "孙七" in r.text and "检查无误" in r.text
    assert await _people(sessionmaker) == before  # a preview writes nothing
    token = re.search(r'name="token" value="([^"]+)"', r.text).group(1)
    done = await client.post("/members/import/confirm", data={"csrf": await csrf(client), "token": token})
    assert done.status_code == 200 and "已导入 2 人" in done.text
    assert await _people(sessionmaker) == before + 2
    assert (
        await read(
            sessionmaker, select(func.count()).select_from(Invite).where(Invite.person_id.is_not(None))
        )
        == 2
    )
    sheet = await client.get(f"/members/import/sheet/{token}")
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith(
        "application/vnd.openxmlformats"
    )
    ws = load_workbook(io.BytesIO(sheet.content)).active
    assert {ws.cell(2, 1).value, ws.cell(3, 1).value} == {"赵六", "孙七"}
    assert "t.me/branchbot_test_bot?start=" in str(ws.cell(2, 4).value)
    again = await client.post("/members/import/confirm", data={"csrf": await csrf(client), "token": token})
    assert again.status_code == 410
    assert await _people(sessionmaker) == before + 2
    assert (
        await read(sessionmaker, select(AuditEntry.action).where(AuditEntry.action == "roster.import"))
        == "roster.import"
    )


async def test_an_xlsx_roster_works_too(client, sessionmaker, world, secretary) -> None:
    r = await _upload(client, world.branch_a.id, "名册.xlsx", _xlsx([["姓名", "角色"], ["周八", "党员"]]))
    assert r.status_code == 200 and "周八" in r.text


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("名册.docx", b"PK\x03\x04 not a roster", "只支持 .xlsx 或 .csv"),
        ("名册.csv", b"PK\x03\x04" + b"\x00" * 64, "只支持 .xlsx 或 .csv"),
        ("名册.pdf", b"%PDF-1.7 ...", "只支持 .xlsx 或 .csv"),
        ("名册.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "只支持 .xlsx 或 .csv"),
        ("名册.xlsx", b"PK\x03\x04" + b"\x00garbage" * 50, "无法读取这个 .xlsx 文件"),
        ("名册.csv", b"", "文件是空的"),
    ],
    ids=["docx", "zip-as-csv", "pdf", "old-xls", "broken-xlsx", "empty"],
)
async def test_bad_files_are_refused_and_nothing_is_imported(
    client, sessionmaker, world, secretary, name, data, says
) -> None:
    before = await _people(sessionmaker)
    r = await _upload(client, world.branch_a.id, name, data)
    assert r.status_code == 400 and says in r.text
    assert 'name="token"' not in r.text
    assert await _people(sessionmaker) == before


async def test_a_50_mb_upload_is_refused_before_it_is_read(client, sessionmaker, world, secretary) -> None:
    before = await _people(sessionmaker)
    big = "姓名\n".encode() + b"x" * (50 * 1024 * 1024)
    r = await _upload(client, world.branch_a.id, "名册.csv", big)
    assert r.status_code == 413 and "太大" in r.text
    assert await _people(sessionmaker) == before


async def test_a_file_just_over_the_roster_limit_is_refused_clearly(
    client, sessionmaker, world, secretary
) -> None:
    data = b"\xe5\xa7\x93\xe5\x90\x8d\n" + ("张三\n".encode() * (5 * 1024 * 1024 // 7 + 10))
    r = await _upload(client, world.branch_a.id, "名册.csv", data)
    assert r.status_code == 400 and "5 MB" in r.text


@pytest.mark.parametrize("cell", ['=HYPERLINK("http://x","点我")', "+1+1", "-2+3", "@SUM(A1)"])
async def test_formulas_in_cells_are_refused(client, sessionmaker, world, secretary, cell) -> None:
    before = await _people(sessionmaker)
    for name, data in (
        ("名册.csv", f"姓名,备注\n吴九,{cell}\n".encode()),
        ("名册.xlsx", _xlsx([["姓名", "备注"], ["吴九", cell]])),
    ):
        r = await _upload(client, world.branch_a.id, name, data)
        assert r.status_code == 422 and "看起来像公式" in r.text
        assert 'name="token"' not in r.text
    assert await _people(sessionmaker) == before


async def test_every_bad_row_is_listed_and_nothing_is_imported(
    client, sessionmaker, world, secretary
) -> None:
    before = await _people(sessionmaker)
    data = "姓名,角色\n郑十,党员\n,党员\n冯一,主任\n郑十,党员\n".encode()
    r = await _upload(client, world.branch_a.id, "名册.csv", data)
    assert r.status_code == 422
    assert "名册中有 3 处问题" in r.text
    for line in ('<td class="num">3</td>', '<td class="num">4</td>', '<td class="num">5</td>'):
        assert line in r.text
    assert await _people(sessionmaker) == before
    members = select(func.count()).select_from(Membership).where(Membership.org_id == world.branch_a.id)
    assert await read(sessionmaker, members) == 3


async def test_someone_elses_upload_cannot_be_confirmed_or_downloaded(
    client, new_client, sessionmaker, world, secretary
) -> None:
    r = await _upload(client, world.branch_a.id, "名册.csv", GOOD_CSV)
    token = re.search(r'name="token" value="([^"]+)"', r.text).group(1)
    before = await _people(sessionmaker)
    async with new_client() as staff:
        await sign_in(staff, sessionmaker, world.staff)
        other = await staff.post("/members/import/confirm", data={"csrf": await csrf(staff), "token": token})
        assert other.status_code == 410
        assert (await staff.get(f"/members/import/sheet/{token}")).status_code == 404
    assert await _people(sessionmaker) == before


async def test_a_branch_outside_the_scope_cannot_be_imported_into(
    client, sessionmaker, world, secretary
) -> None:
    before = await _people(sessionmaker)
    token = await csrf(client)
    r = await _upload(client, world.branch_c.id, "名册.csv", GOOD_CSV, token=token)
    assert r.status_code == 404
    assert await _people(sessionmaker) == before


async def test_a_50_mb_upload_without_a_declared_length_is_cut_off(
    client, sessionmaker, world, secretary
) -> None:
    """Sent in chunks with no Content-Length: refused once it passes the limit, not after 50 MB."""
    before = await _people(sessionmaker)
    token = await csrf(client, f"/members/import?org={world.branch_a.id}")
    boundary = "branchbot-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{token}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="r.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    sent = 0

    async def body():
        nonlocal sent
        yield head
        chunk = b"x" * (1024 * 1024)
        for _ in range(50):
            sent += len(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    r = await client.post(
        f"/members/import?org={world.branch_a.id}",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 413
    assert sent < 50 * 1024 * 1024
    assert await _people(sessionmaker) == before
