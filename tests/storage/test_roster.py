"""The roster file parser: real .xlsx and CSV files (UTF-8, UTF-8 with BOM, GB18030), every
kind of bad row reported with its row number, and file-level trouble refused whole."""

from __future__ import annotations

import csv
import io
import unicodedata
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from content.i18n import catalog
from storage.errors import Refused
from storage.models import Role
from storage.roster import (
    MAX_BYTES,
    MAX_ROWS,
    NAME_MAX,
    SheetRow,
    parse_roster,
    write_invite_sheet,
)


def xlsx(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def csv_bytes(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode(encoding)


GOOD = [["姓名", "角色", "备注"], ["张三", "党员", ""], ["李四", "书记", "老支书"], ["王五", "", ""]]
EXPECTED = [("张三", Role.MEMBER, None), ("李四", Role.SECRETARY, "老支书"), ("王五", Role.MEMBER, None)]


def triples(data: bytes, filename: str | None) -> list[tuple[str, Role, str | None]]:
    preview = parse_roster(data, filename)
    assert preview.ok, preview.problems
    return [(r.name, r.role, r.note) for r in preview.rows]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_csv_in_every_encoding_chinese_excel_writes(encoding: str) -> None:
    assert triples(csv_bytes(GOOD, encoding), "名册.csv") == EXPECTED


def test_gb18030_bytes_are_not_valid_utf8_so_the_fallback_is_really_exercised() -> None:
    data = csv_bytes(GOOD, "gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")


def test_xlsx_with_chinese_headers() -> None:
    assert triples(xlsx(GOOD), "名册.xlsx") == EXPECTED


def test_english_headers_and_roles_and_any_column_order() -> None:
    rows = [["Note", "Role", "Name"], ["", "member", "Zhang San"], ["old hand", "Secretary", "Li Si"]]
    assert triples(csv_bytes(rows), "roster.csv") == [
        ("Zhang San", Role.MEMBER, None),
        ("Li Si", Role.SECRETARY, "old hand"),
    ]


def test_only_a_name_column_is_needed_and_the_role_defaults_to_member() -> None:
    assert triples(csv_bytes([["姓名"], ["张三"]]), "r.csv") == [("张三", Role.MEMBER, None)]


def test_xlsx_is_recognized_without_a_file_name() -> None:
    assert triples(xlsx(GOOD), None) == EXPECTED


def test_excel_unicode_text_utf16_tab_separated_is_read() -> None:
    data = "姓名\t角色\r\n张三\t书记\r\n".encode("utf-16")
    assert triples(data, "r.txt") == [("张三", Role.SECRETARY, None)]


def test_tab_separated_text_is_read_too() -> None:
    data = "姓名\t角色\n张三\t党员\n".encode()
    assert triples(data, "r.txt") == [("张三", Role.MEMBER, None)]


def test_blank_rows_are_skipped_and_row_numbers_stay_those_of_the_sheet() -> None:
    preview = parse_roster(xlsx([["姓名"], ["张三"], [None], ["=1+1"]]), "r.xlsx")
    assert [r.line for r in preview.rows] == [2]
    assert [(p.line, p.key) for p in preview.problems] == [(4, "roster.formula")]


def test_every_bad_row_is_reported_with_its_number_and_reason() -> None:
    rows = [
        ["姓名", "角色", "备注"],
        ["张三", "党员", ""],  # 2 fine
        ["", "党员", "无名"],  # 3 no name
        ["李" * (NAME_MAX + 1), "党员", ""],  # 4 too long
        ["王五", "团员", ""],  # 5 unknown role
        ["张三", "", ""],  # 6 duplicate of row 2
        ["张三", "", "财务部"],  # 7 same name, told apart by the note: fine
        ['=HYPERLINK("http://x")', "党员", ""],  # 8 formula
        ["+86", "党员", ""],  # 9 formula
        ["-1", "党员", ""],  # 10 formula
        ["@SUM(A1)", "党员", ""],  # 11 formula
        ["赵六", "党员", "=cmd|' /C calc'!A0"],  # 12 formula in the note
        ["钱七", "党员", "x" * 201],  # 13 note too long
    ]
    preview = parse_roster(csv_bytes(rows), "r.csv")
    assert not preview.ok
    assert [(p.line, p.key) for p in preview.sorted_problems()] == [
        (3, "roster.name_missing"),
        (4, "roster.name_too_long"),
        (5, "roster.unknown_role"),
        (6, "roster.duplicate"),
        (8, "roster.formula"),
        (9, "roster.formula"),
        (10, "roster.formula"),
        (11, "roster.formula"),
        (12, "roster.formula"),
        (13, "roster.note_too_long"),
    ]
    by_line = {p.line: p for p in preview.problems}
    assert by_line[6].params == {"first": 2}
    assert by_line[5].params == {"role": "团员"}
    assert by_line[12].params == {"column": "备注"}
    assert [r.line for r in preview.rows] == [2, 7]


def test_every_problem_key_has_words_in_both_languages() -> None:
    rows = [["姓名", "角色", "备注"], ["", "x", ""], ["a\x07b", "", ""], ["c", "", "d\ne"], ["=1", "", ""]]
    preview = parse_roster(csv_bytes(rows), "r.csv")
    keys = {p.key for p in preview.problems}
    assert keys == {
        "roster.name_missing",
        "roster.unknown_role",
        "roster.name_bad_chars",
        "roster.note_bad_chars",
        "roster.formula",
    }
    for loc in ("zh", "en"):
        assert keys <= set(catalog(loc))


def test_a_formula_in_an_xlsx_is_refused_not_evaluated() -> None:
    preview = parse_roster(xlsx([["姓名"], ['=CONCAT("张","三")']]), "r.xlsx")
    assert [p.key for p in preview.problems] == ["roster.formula"]


@pytest.mark.parametrize(
    ("data", "filename", "key"),
    [
        (b"", "r.csv", "roster.empty"),
        (b"  \n\n", "r.csv", "roster.empty"),
        (b"PK\x03\x04 this is no zip", "r.xlsx", "roster.broken_xlsx"),
        (b"just text", "r.xlsx", "roster.broken_xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1old excel", "r.xls", "roster.wrong_type"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1old excel", "r.csv", "roster.wrong_type"),
        (b"%PDF-1.7", "r.pdf", "roster.wrong_type"),
        (b"name\x00\x01", "r.csv", "roster.wrong_type"),
        ("备注\n无\n".encode(), "r.csv", "roster.no_name_column"),
        ("姓名\n".encode(), "r.csv", "roster.no_rows"),
        (b"name\n\x80abc\n", "r.csv", "roster.bad_encoding"),
        (b"\xff\xfe\x00\xd8", "r.txt", "roster.bad_encoding"),
    ],
)
def test_bad_files_are_refused_whole(data: bytes, filename: str, key: str) -> None:
    with pytest.raises(Refused) as e:
        parse_roster(data, filename)
    assert e.value.key == key


def test_a_damaged_xlsx_is_refused() -> None:
    good = xlsx(GOOD)
    damaged = good[: len(good) // 2]  # a truncated download
    with pytest.raises(Refused) as e:
        parse_roster(damaged, "r.xlsx")
    assert e.value.key == "roster.broken_xlsx"


def test_a_zip_that_is_not_a_workbook_is_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(Refused) as e:
        parse_roster(buf.getvalue(), "r.xlsx")
    assert e.value.key == "roster.broken_xlsx"


def test_a_file_over_the_size_limit_is_refused_before_reading() -> None:
    data = b"\xef\xbb\xbf" + "姓名\n".encode() + b"a\n" * (MAX_BYTES // 2)
    assert len(data) > MAX_BYTES
    with pytest.raises(Refused) as e:
        parse_roster(data, "r.csv")
    assert (e.value.key, e.value.params) == ("roster.too_big", {"mb": 5})


def test_too_many_rows_are_refused() -> None:
    rows = [["姓名"]] + [[f"人{i}"] for i in range(MAX_ROWS + 1)]
    with pytest.raises(Refused) as e:
        parse_roster(csv_bytes(rows), "r.csv")
    assert e.value.key == "roster.too_many_rows"


def test_invite_sheet_has_a_row_and_a_qr_code_per_person() -> None:
    rows = [
        SheetRow("张三", "党员", "", "https://t.me/b?start=abc"),
        SheetRow("=x", "党员", "", "https://t.me/b?start=d"),
    ]
    data = write_invite_sheet(rows, ("姓名", "角色", "备注", "链接", "二维码"))
    ws = load_workbook(io.BytesIO(data)).active
    assert ws is not None
    assert [c.value for c in ws[1]] == ["姓名", "角色", "备注", "链接", "二维码"]
    assert ws["A2"].value == "张三" and ws["D2"].value == "https://t.me/b?start=abc"
    assert ws["A3"].value == "'=x"  # written as text, never as a formula
    assert len(ws._images) == 2
    assert ws.freeze_panes == "A2"


# ---- properties -----------------------------------------------------------------------------

names = st.text(min_size=0, max_size=120)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(name=names)
def test_any_name_in_a_csv_is_accepted_and_round_trips_or_refused_with_a_key(name: str) -> None:
    data = csv_bytes([["姓名", "角色"], [name, "党员"]])
    try:
        preview = parse_roster(data, "r.csv")
    except Refused as e:
        # A NUL byte makes it a binary file; a private-use or unassigned character, a file in
        # some other encoding: either is refused whole.
        assert e.key in catalog("zh")
        assert "\x00" in name or any(unicodedata.category(c) in ("Co", "Cn") for c in name)
        return
    if preview.ok:
        assert [r.name for r in preview.rows] == [name.strip()]
        assert 1 <= len(name.strip()) <= NAME_MAX
        assert not name.strip().startswith(("=", "+", "-", "@"))
    else:
        assert len(preview.problems) >= 1
        assert all(p.line == 2 and p.key in catalog("zh") for p in preview.problems)
        assert not preview.rows


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(name=names.filter(lambda n: not ILLEGAL_CHARACTERS_RE.search(n) and "_x" not in n))
def test_any_name_in_an_xlsx_is_accepted_and_round_trips_or_refused_with_a_key(name: str) -> None:
    data = xlsx([["姓名", "角色"], [name, "党员"]])
    preview = parse_roster(data, "r.xlsx")
    if preview.ok:
        assert [r.name for r in preview.rows] == [name.strip()]
    else:
        assert all(p.key in catalog("zh") for p in preview.problems)


@given(st.lists(st.text(alphabet="张李王赵钱ab ", min_size=1, max_size=4), min_size=1, max_size=30))
def test_accepted_rows_never_repeat_a_name_and_note(names_: list[str]) -> None:
    rows = [["姓名"]] + [[n] for n in names_]
    try:
        preview = parse_roster(csv_bytes(rows), "r.csv")
    except Refused as e:  # every name blank: only the header has text
        assert e.key == "roster.no_rows"
        return
    seen = [(r.name, r.note) for r in preview.rows]
    assert len(seen) == len(set(seen))
    assert len(preview.rows) + len(preview.problems) == sum(1 for n in names_ if n.strip())
