"""Roster files: read a member list a secretary uploads (.xlsx or .csv), check every row, and
write the printable sheet of personal invite links. No database here; people.import_roster
adds the checks that need the store and does the import.

Headers may be Chinese (姓名, 角色, 备注) or English (name, role, note); only the name column is
required. CSV comes as UTF-8 (with or without BOM) or GB18030, as Chinese Excel saves it.
"""

from __future__ import annotations

import csv
import io
import unicodedata
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from storage.errors import Refused
from storage.exports import safe_text
from storage.models import Role

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 2000
MAX_COLUMNS = 50
NAME_MAX = 100
NOTE_MAX = 200
ROLE_SHOWN_MAX = 20  # how much of an unknown role word is quoted back

XLSX_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls (and .doc) format
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
HEADERS = {"姓名": "name", "name": "name", "角色": "role", "role": "role", "备注": "note", "note": "note"}
ROLE_WORDS = {
    "": Role.MEMBER,
    "党员": Role.MEMBER,
    "member": Role.MEMBER,
    "书记": Role.SECRETARY,
    "secretary": Role.SECRETARY,
}
# A spreadsheet runs a cell that starts with one of these; an uploaded one is refused.
FORMULA_START = ("=", "+", "-", "@")


@dataclass(frozen=True, slots=True)
class RosterRow:
    line: int  # the row number a person sees in their spreadsheet
    name: str
    role: Role
    note: str | None


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    key: str  # catalog key
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RosterPreview:
    rows: list[RosterRow]
    problems: list[RowProblem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def sorted_problems(self) -> list[RowProblem]:
        return sorted(self.problems, key=lambda p: p.line)


Table = list[tuple[int, list[str]]]  # (row number, cells as text)


def parse_roster(data: bytes, filename: str | None = None) -> RosterPreview:
    """Read and check a roster file. File-level trouble raises Refused; row trouble is listed."""
    return check_rows(read_table(data, filename))


def read_table(data: bytes, filename: str | None = None) -> Table:
    if len(data) > MAX_BYTES:
        raise Refused("roster.too_big", mb=MAX_BYTES // (1024 * 1024))
    if not data.strip():
        raise Refused("roster.empty")
    ext = PurePath(filename).suffix.lower() if filename else ""
    if ext not in ("", ".xlsx", ".csv", ".txt"):
        raise Refused("roster.wrong_type")
    if ext == ".xlsx" or (ext == "" and data.startswith(XLSX_MAGIC)):
        return _read_xlsx(data)
    if data.startswith(UTF16_BOMS):
        return _read_csv(data)  # Excel's "Unicode text": UTF-16, tab-separated
    if data.startswith((XLSX_MAGIC, OLE_MAGIC)) or b"\x00" in data:
        raise Refused("roster.wrong_type")  # a binary file under a text name
    return _read_csv(data)


def _cell_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if hasattr(v, "isoformat"):
        return str(v.isoformat())
    return str(v)


def _read_xlsx(data: bytes) -> Table:
    from openpyxl import load_workbook

    if not data.startswith(XLSX_MAGIC):
        raise Refused("roster.broken_xlsx")
    out: Table = []
    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and extensions it skips; none matter for a name list.
            warnings.simplefilter("ignore")
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
            try:
                ws = wb.worksheets[0]
                for n, row in enumerate(ws.iter_rows(max_col=MAX_COLUMNS, values_only=True), start=1):
                    cells = [_cell_text(v) for v in row]
                    if any(c.strip() for c in cells):
                        out.append((n, cells))
                    if len(out) > MAX_ROWS + 1:
                        break
            finally:
                wb.close()
    except Refused:
        raise
    except Exception:  # a damaged or foreign file raises many kinds of errors deep in zip/xml
        raise Refused("roster.broken_xlsx") from None
    return out


def _decode(data: bytes) -> str:
    if data.startswith(UTF16_BOMS):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise Refused("roster.bad_encoding") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise Refused("roster.bad_encoding") from None


def _delimiter(text: str) -> str:
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    for d in (",", "\t", ";"):
        if d in first:
            return d
    return ","


def _read_csv(data: bytes) -> Table:
    text = _decode(data)
    out: Table = []
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
        for n, cells in enumerate(reader, start=1):
            cells = cells[:MAX_COLUMNS]
            if any(c.strip() for c in cells):
                out.append((n, cells))
            if len(out) > MAX_ROWS + 1:
                break
    except csv.Error:
        raise Refused("roster.broken_csv") from None
    return out


def _bad_chars(text: str) -> bool:
    # Control characters (PostgreSQL refuses NUL; the rest break chat and print) and line breaks.
    return any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in text)


def looks_like_formula(text: str) -> bool:
    return text.lstrip().startswith(FORMULA_START)


def _header_key(cell: str) -> str | None:
    return HEADERS.get("".join(cell.split()).lower())


def check_rows(table: Table) -> RosterPreview:
    """Check every row; a row with several faults gets one problem per fault."""
    if not table:
        raise Refused("roster.empty")
    header = table[0][1]
    columns: dict[str, int] = {}
    labels: dict[str, str] = {}
    for i, cell in enumerate(header):
        key = _header_key(cell)
        if key and key not in columns:
            columns[key] = i
            labels[key] = cell.strip()
    if "name" not in columns:
        raise Refused("roster.no_name_column")
    body = table[1:]
    if not body:
        raise Refused("roster.no_rows")
    if len(body) > MAX_ROWS:
        raise Refused("roster.too_many_rows", max=MAX_ROWS)

    rows: list[RosterRow] = []
    problems: list[RowProblem] = []
    first_seen: dict[tuple[str, str], int] = {}
    for line, cells in body:

        def get(col: str, cells: list[str] = cells) -> str:
            i = columns.get(col)
            return cells[i] if i is not None and i < len(cells) else ""

        found: list[RowProblem] = []
        raw = {col: get(col) for col in columns}
        for col, value in raw.items():
            if looks_like_formula(value):
                found.append(RowProblem(line, "roster.formula", {"column": labels[col]}))
        formula_cols = {p.params["column"] for p in found}

        name = raw["name"].strip()
        if labels["name"] not in formula_cols:
            if not name:
                found.append(RowProblem(line, "roster.name_missing"))
            elif len(name) > NAME_MAX:
                found.append(RowProblem(line, "roster.name_too_long", {"max": NAME_MAX}))
            elif _bad_chars(name):
                found.append(RowProblem(line, "roster.name_bad_chars"))

        role_word = raw.get("role", "").strip()
        role = ROLE_WORDS.get(role_word.lower())
        if role is None and labels.get("role") not in formula_cols:
            found.append(RowProblem(line, "roster.unknown_role", {"role": role_word[:ROLE_SHOWN_MAX]}))

        note = raw.get("note", "").strip() or None
        if note is not None and labels.get("note") not in formula_cols:
            if len(note) > NOTE_MAX:
                found.append(RowProblem(line, "roster.note_too_long", {"max": NOTE_MAX}))
            elif _bad_chars(note):
                found.append(RowProblem(line, "roster.note_bad_chars"))

        if found:
            problems.extend(found)
            continue
        assert role is not None
        key = (name, note or "")
        if key in first_seen:
            problems.append(RowProblem(line, "roster.duplicate", {"first": first_seen[key]}))
            continue
        first_seen[key] = line
        rows.append(RosterRow(line, name, role, note))
    return RosterPreview(rows, problems)


@dataclass(frozen=True, slots=True)
class SheetRow:
    name: str
    role: str  # already in words
    note: str
    link: str


def write_invite_sheet(
    rows: list[SheetRow],
    headers: Sequence[str],
    *,
    qr: bool = True,
    setup: Callable[[Any], None] | None = None,
) -> bytes:
    """A printable .xlsx: name, role, note, personal link and (optionally) its QR code per row."""
    from openpyxl import Workbook
    from openpyxl.drawing.image import Image
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(list(headers[:5] if qr else headers[:4]))
    for c in ws[1]:
        c.font = Font(bold=True)
    ws.freeze_panes = "A2"
    for col, width in zip("ABCDE", (16, 8, 20, 48, 18), strict=True):
        ws.column_dimensions[col].width = width
    for i, r in enumerate(rows, start=2):
        ws.append([safe_text(r.name), safe_text(r.role), safe_text(r.note), safe_text(r.link)])
        for col in (1, 2, 3):  # beside the QR code, not at the foot of its tall row
            ws.cell(i, col).alignment = Alignment(vertical="center")
        ws.cell(i, 4).alignment = Alignment(wrap_text=True, vertical="center")
        if qr:
            img = Image(io.BytesIO(_qr_png(r.link)))
            img.width = img.height = 110
            ws.add_image(img, f"E{i}")
            ws.row_dimensions[i].height = 86  # points; the image is 110 px
    if setup:
        setup(ws)  # the page setup for printing (storage.xlsx_print)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _qr_png(text: str) -> bytes:
    import qrcode

    q = qrcode.QRCode(border=2, box_size=4)
    q.add_data(text)
    q.make(fit=True)
    buf = io.BytesIO()
    q.make_image().save(buf)
    return buf.getvalue()
