"""The admin commands of the `branchbot` command line, end to end: `bot.cli.main([...])` against
the test database, with its own engine from the settings, as an operator would run it."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from bot.cli import main
from config.settings import get_settings
from storage.models import AuditEntry, EntryStatus, Invite, Org, Person, ServiceEntry
from storage.roster import MAX_BYTES

Run = Callable[..., Awaitable[int]]


@pytest.fixture
async def cli(db_url: str, clean_db, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Run]:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("BOT_USERNAME", "test_branch_bot")
    monkeypatch.setenv("DEFAULT_LOCALE", "zh")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()

    async def run(*argv: str) -> int:
        # The command runs its own event loop (asyncio.run), so it gets a thread of its own.
        return await asyncio.to_thread(main, list(argv))

    yield run
    monkeypatch.undo()
    get_settings.cache_clear()


async def count(s, model, *where) -> int:
    n = await s.scalar(select(func.count()).select_from(model).where(*where))
    await s.commit()  # end the read: on SQLite an open transaction would hold up the command
    return n


def no_traceback(err: str) -> None:
    assert "Traceback" not in err


async def test_org_add_and_list(cli: Run, session, capsys) -> None:
    assert await cli("org", "add", "青海省社会组织党工委", "--kind", "province") == 0
    assert await cli("org", "add", "西宁市党工委", "--kind", "committee", "--parent", "1") == 0
    assert (
        await cli("org", "add", "餐饮协会党支部", "--kind", "branch", "--parent", "2", "--category", "trade")
        == 0
    )
    out = capsys.readouterr().out
    assert "已添加组织 #3「餐饮协会党支部」（党支部）" in out
    assert await cli("org", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [  # the category by its name in the content pack, not its id
        "[1] 青海省社会组织党工委（省级党工委）",
        "    [2] 西宁市党工委（党工委）",
        "        [3] 餐饮协会党支部（党支部，行业协会商会）",
    ]
    branch = await session.scalar(select(Org).where(Org.id == 3))
    assert branch.path == "/1/2/3/"
    rows = list(await session.scalars(select(AuditEntry)))
    await session.commit()
    assert {(r.action, r.via, r.actor_id) for r in rows} == {("org.add", "cli", None)}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["org", "add", "孤立支部", "--kind", "branch"], "党支部必须隶属于一个党工委"),
        (["org", "add", "某支部", "--kind", "branch", "--parent", "99"], "没有编号为 99 的上级组织"),
        (["org", "add", "某支部", "--kind", "branch", "--parent", "3"], "党支部下面不能再设组织"),
        (
            ["org", "add", "某支部", "--kind", "branch", "--parent", "2", "--category", "chess"],
            "没有“chess”这个组织类型",
        ),
        (
            ["org", "add", "某支部", "--kind", "branch", "--parent", "2", "--timezone", "Mars/X"],
            "无法识别时区",
        ),
    ],
)
async def test_org_add_mistakes_exit_1_with_one_clear_line(
    cli: Run, session, world, capsys, argv, message
) -> None:
    capsys.readouterr()
    before = await count(session, Org)
    assert await cli(*argv) == 1
    err = capsys.readouterr().err
    assert message in err
    no_traceback(err)
    assert await count(session, Org) == before


async def test_org_list_on_an_empty_database(cli: Run, capsys) -> None:
    assert await cli("org", "list") == 0
    assert "还没有任何组织" in capsys.readouterr().out


async def test_invite_create_prints_the_code_and_the_deep_link(cli: Run, session, world, capsys) -> None:
    org = world.branch_a.id
    assert (
        await cli("invite", "create", "--org", str(org), "--role", "member", "--uses", "20", "--days", "10")
        == 0
    )
    out = capsys.readouterr().out
    inv = await session.scalar(select(Invite))
    await session.commit()
    assert inv is not None and inv.uses_left == 20 and inv.org_id == org
    assert f"邀请码：{inv.code}" in out
    assert f"https://t.me/test_branch_bot?start={inv.code}" in out
    # The expiry in the configured time zone (Asia/Shanghai), named; not in UTC.
    local = inv.expires_at.astimezone(get_settings().tz).strftime("%Y-%m-%d %H:%M")
    assert f"有效期至 {local} (Asia/Shanghai)" in out and "UTC" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--role", "member", "--uses", "0"], "可使用次数需在 1 到 1000 之间"),
        (["--role", "member", "--days", "400"], "有效天数需在 1 到 365 之间"),
        (["--role", "staff"], "党工委工作人员只能邀请加入党工委"),
    ],
)
async def test_invite_mistakes(cli: Run, session, world, capsys, argv, message) -> None:
    assert await cli("invite", "create", "--org", str(world.branch_a.id), *argv) == 1
    err = capsys.readouterr().err
    assert message in err
    no_traceback(err)
    assert await count(session, Invite) == 0


async def test_invite_to_an_unknown_org(cli: Run, session, world, capsys) -> None:
    assert await cli("invite", "create", "--org", "999", "--role", "member") == 1
    assert "未找到相关记录" in capsys.readouterr().err


def write_csv(path: Path, rows: list[list[str]], encoding: str = "gb18030") -> Path:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


async def test_member_import_with_a_sheet(cli: Run, session, world, capsys, tmp_path: Path) -> None:
    f = write_csv(
        tmp_path / "名册.csv", [["姓名", "角色", "备注"], ["赵七", "党员", ""], ["钱八", "书记", ""]]
    )
    sheet = tmp_path / "links.xlsx"
    assert await cli("member", "import", str(f), "--org", str(world.branch_b.id), "--sheet", str(sheet)) == 0
    out = capsys.readouterr().out
    assert "已导入 2 人" in out and str(sheet) in out
    people = list(
        await session.scalars(select(Person).where(Person.telegram_id.is_(None)).order_by(Person.id))
    )
    codes = {i.person_id: i.code for i in await session.scalars(select(Invite))}
    await session.commit()
    assert [p.name for p in people] == ["赵七", "钱八"]
    ws = load_workbook(sheet).active
    assert ws is not None
    assert [(r[0].value, r[1].value, r[3].value) for r in ws.iter_rows(min_row=2)] == [
        (p.name, role, f"https://t.me/test_branch_bot?start={codes[p.id]}")
        for p, role in zip(people, ["党员", "书记"], strict=True)
    ]


async def test_member_import_without_a_sheet_prints_each_link(
    cli: Run, session, world, capsys, tmp_path: Path
) -> None:
    f = write_csv(
        tmp_path / "名册.csv", [["姓名", "角色", "备注"], ["赵七", "党员", ""], ["钱八", "书记", ""]]
    )
    assert await cli("member", "import", str(f), "--org", str(world.branch_b.id)) == 0
    out = capsys.readouterr().out.splitlines()
    people = list(
        await session.scalars(select(Person).where(Person.telegram_id.is_(None)).order_by(Person.id))
    )
    codes = {i.person_id: i.code for i in await session.scalars(select(Invite))}
    await session.commit()
    links = [line for line in out if "https://t.me/" in line]
    assert links == [
        f"{p.name}\t{role}\thttps://t.me/test_branch_bot?start={codes[p.id]}"
        for p, role in zip(people, ["党员", "书记"], strict=True)
    ]
    assert any("--sheet" in line for line in out)  # says how to get the printable sheet instead
    assert "已导入 2 人" in out[-1] and "(Asia/Shanghai)" in out[-1]


async def test_member_import_with_a_bad_row_prints_the_preview_and_imports_nothing(
    cli: Run, session, world, capsys, tmp_path: Path
) -> None:
    wb = Workbook()
    ws = wb.active
    for row in (["姓名", "角色"], ["赵七", "党员"], ["=1+1", "党员"], ["孙九", "团员"]):
        ws.append(row)
    f = tmp_path / "r.xlsx"
    wb.save(f)
    before = await count(session, Person)
    assert await cli("member", "import", str(f), "--org", str(world.branch_a.id)) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "第 3 行：“姓名”一栏以 =、+、-、@ 开头，看起来像公式，请改为纯文字。",
        "第 4 行：无法识别角色“团员”，请填写“党员”或“书记”（也可留空，默认为党员）。",
    ]
    assert "名册中有 2 处问题，未导入任何人员" in captured.err
    no_traceback(captured.err)
    assert await count(session, Person) == before
    assert await count(session, AuditEntry) == 0


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "无法打开文件"),
        ("big.csv", b"x" * (MAX_BYTES + 1), "文件太大了，最大 5 MB"),
        ("broken.xlsx", b"PK\x03\x04broken", "无法读取这个 .xlsx 文件"),
        ("empty.csv", b"", "文件是空的"),
        ("old.xls", b"\xd0\xcf\x11\xe0", "只支持 .xlsx 或 .csv"),
    ],
)
async def test_member_import_bad_files(
    cli: Run, session, world, capsys, tmp_path: Path, name, content, message
) -> None:
    f = tmp_path / name
    if content is not None:
        f.write_bytes(content)
    assert await cli("member", "import", str(f), "--org", str(world.branch_a.id)) == 1
    err = capsys.readouterr().err
    assert message in err
    no_traceback(err)


async def test_export_xlsx_and_csv(cli: Run, session, world, capsys, tmp_path: Path) -> None:
    session.add(
        ServiceEntry(
            person_id=world.member_a.id,
            org_id=world.branch_a.id,
            day=date(2026, 3, 5),
            minutes=90,
            action="integrity",
            place="社区",
            description="=危险",
            status=EntryStatus.APPROVED,
        )
    )
    await session.commit()
    org = str(world.committee.id)
    out = tmp_path / "records.xlsx"
    assert (
        await cli("export", "--org", org, "--from", "2026-01-01", "--to", "2026-12-31", "--out", str(out))
        == 0
    )
    assert "已导出 1 条志愿服务记录" in capsys.readouterr().out
    ws = load_workbook(out).active
    assert ws is not None
    row = [c for c in ws[2]]
    assert row[0].value == "张三" and row[1].is_date and row[4].value == 1.5 and row[3].value == "'=危险"
    assert row[5].value == "诚信服务计划"
    assert (
        await cli("export", "--org", org, "--from", "2026-01-01", "--to", "2026-12-31", "--format", "csv")
        == 0
    )
    default = tmp_path / f"service-records-{org}-2026-01-01-2026-12-31.csv"
    assert default.read_bytes().startswith(b"\xef\xbb\xbf")
    rows = list(await session.scalars(select(AuditEntry).where(AuditEntry.action == "records.export")))
    await session.commit()
    assert [(r.via, r.actor_id, r.detail["format"]) for r in rows] == [
        ("cli", None, "xlsx"),
        ("cli", None, "csv"),
    ]


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        (("2026-13-01", "2026-12-31"), "无法识别日期“2026-13-01”"),
        (("2026-01-01", "tomorrow"), "无法识别日期“tomorrow”"),
        (("2026-12-31", "2026-01-01"), "起始日期不能晚于结束日期"),
    ],
)
async def test_export_mistakes(cli: Run, session, world, capsys, tmp_path: Path, dates, message) -> None:
    assert await cli("export", "--org", str(world.branch_a.id), "--from", dates[0], "--to", dates[1]) == 1
    err = capsys.readouterr().err
    assert message in err
    no_traceback(err)
    assert not await asyncio.to_thread(lambda: list(tmp_path.glob("service-records-*")))


async def test_usage_mistakes_are_argparse_errors_not_tracebacks(cli: Run, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        await cli("invite", "create", "--role", "member")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--org" in err
    no_traceback(err)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("org", "add", "名\x00字", "--kind", "branch"), "控制字符"),
        (("org", "add", "支部", "--kind", "branch", "--parent", "٣"), "输入有误"),
        (("invite", "create", "--org", "1" * 23, "--role", "member"), "输入有误"),
        (("invite", "create", "--org", "1", "--role", "member", "--uses", "²"), "输入有误"),
        (("admin", "link", "--person", "99999999999"), "输入有误"),
        (("admin", "user", "add", "wang\x1b", "--person", "1", "--password-stdin"), "控制字符"),
    ],
)
async def test_bad_arguments_are_one_clear_line_and_change_nothing(
    cli: Run, session, capsys, argv, says
) -> None:
    with pytest.raises(SystemExit) as e:
        await cli(*argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    no_traceback(err)
    assert says in err.strip().splitlines()[-1]
    assert await count(session, Org) == 0 and await count(session, Invite) == 0


async def test_an_export_date_past_the_calendar_is_refused(cli: Run, session, capsys) -> None:
    assert await cli("org", "add", "青海省社会组织党工委", "--kind", "province") == 0
    assert await cli("export", "--org", "1", "--from", "2026-01-01", "--to", "9999-12-31") == 1
    err = capsys.readouterr().err
    no_traceback(err)
    assert "9999-12-31" in err
