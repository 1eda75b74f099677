"""Roster files: read a member list a secretary uploads (.xlsx or .csv), check every row, and
write the printable sheet of personal invite links. No database here; people.import_roster
adds the checks that need the store and does the import.

Headers may be Chinese (姓名, 角色, 备注) or English (name, role, note); only the name column is
required. CSV comes as UTF-8 (with or without BOM) or GB18030, as Chinese Excel saves it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import time
import unicodedata
import warnings
import zipfile
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from storage.errors import Refused
from storage.exports import safe_text
from storage.models import Role

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 2000
MAX_COLUMNS = 50
# Every row of a sheet or file counts, empty ones too (a million rows of one space is a small
# .xlsx and a long parse): a little room for trailing blank rows Excel likes to keep.
MAX_SHEET_ROWS = MAX_ROWS + 1 + 500
# A workbook is a zip: what it unpacks to (the shared strings above all) is checked from the
# zip's directory before anything is parsed.
MAX_UNPACKED = 25 * 1024 * 1024
MAX_PARTS = 200
# The parse runs in a worker thread; it gives up after this long.
PARSE_SECONDS = 10.0
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


def parse_roster(data: bytes, filename: str | None = None, *, deadline: float | None = None) -> RosterPreview:
    """Read and check a roster file. File-level trouble raises Refused; row trouble is listed.

    CPU-bound (seconds for a big workbook): call it through `parse_roster_off_loop` from async
    code. `deadline` is a time.monotonic() after which reading stops with "roster.too_slow"."""
    return check_rows(read_table(data, filename, deadline=deadline))


async def parse_roster_off_loop(
    data: bytes, filename: str | None = None, *, seconds: float = PARSE_SECONDS
) -> RosterPreview:
    """`parse_roster` in a child process, so that the event loop (the web, the bot) keeps answering:
    a thread would share the GIL with the loop, and every reply would queue behind the parse.
    The child stops itself at `seconds` of parsing and is killed if it has not answered by
    `seconds` + START_SECONDS (its start included)."""
    ctx = _mp_context()
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_parse_in_child, args=(send, data, filename, seconds), daemon=True)
    try:
        # Starting may wait for the fork server (the first time: its start and imports).
        await asyncio.to_thread(child.start)
    finally:
        send.close()
    try:
        ready = await asyncio.to_thread(receive.poll, seconds + START_SECONDS)
        outcome = receive.recv() if ready else None
    except (EOFError, OSError):
        outcome = None  # the child died (out of memory, killed): nothing came back
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        await asyncio.to_thread(child.join, 5)
    if outcome is None:
        raise Refused("roster.too_slow")
    if isinstance(outcome, RosterPreview):
        return outcome
    key, params = outcome
    raise Refused(key, **params)


# The child starts from a fork server that has already imported the parser (and openpyxl): a
# parse starts in milliseconds instead of a fresh interpreter's seconds.
START_SECONDS = 30.0
_MP: list[Any] = []


def _mp_context() -> Any:
    if not _MP:
        import multiprocessing  # only an upload's parse needs it, not every process

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["storage.roster", "openpyxl"])
        _MP.append(ctx)
    return _MP[0]


def _parse_in_child(send: Any, data: bytes, filename: str | None, seconds: float) -> None:
    with suppress(OSError):
        os.nice(10)  # background work: the process answering people comes first
    try:
        outcome: Any = parse_roster(data, filename, deadline=time.monotonic() + seconds)
    except Refused as e:
        outcome = (e.key, e.params)
    except MemoryError:
        outcome = ("roster.unpacks_too_big", {"mb": MAX_UNPACKED // (1024 * 1024)})
    send.send(outcome)
    send.close()


def _in_time(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise Refused("roster.too_slow")


def read_table(data: bytes, filename: str | None = None, *, deadline: float | None = None) -> Table:
    if len(data) > MAX_BYTES:
        raise Refused("roster.too_big", mb=MAX_BYTES // (1024 * 1024))
    if not data.strip():
        raise Refused("roster.empty")
    ext = PurePath(filename).suffix.lower() if filename else ""
    if ext not in ("", ".xlsx", ".csv", ".txt"):
        raise Refused("roster.wrong_type")
    if ext == ".xlsx" or (ext == "" and data.startswith(XLSX_MAGIC)):
        return _read_xlsx(data, deadline)
    if data.startswith(UTF16_BOMS):
        return _read_csv(data, deadline)  # Excel's "Unicode text": UTF-16, tab-separated
    if data.startswith((XLSX_MAGIC, OLE_MAGIC)) or b"\x00" in data:
        raise Refused("roster.wrong_type")  # a binary file under a text name
    return _read_csv(data, deadline)


def _cell_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if hasattr(v, "isoformat"):
        return str(v.isoformat())
    return str(v)


def _check_zip(data: bytes) -> None:
    """Refuse a workbook that would unpack to too much, from the zip's directory alone (the
    sizes it declares are the most zipfile will inflate each part to)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            parts = z.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise Refused("roster.broken_xlsx") from None
    if len(parts) > MAX_PARTS or sum(p.file_size for p in parts) > MAX_UNPACKED:
        raise Refused("roster.unpacks_too_big", mb=MAX_UNPACKED // (1024 * 1024))


def _read_xlsx(data: bytes, deadline: float | None = None) -> Table:
    if not data.startswith(XLSX_MAGIC):
        raise Refused("roster.broken_xlsx")
    _check_zip(data)
    from openpyxl import load_workbook

    out: Table = []
    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and extensions it skips; none matter for a name list.
            warnings.simplefilter("ignore")
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
            try:
                ws = wb.worksheets[0]
                # The sheet's declared dimension, when it has one, refuses a huge sheet unread.
                if (ws.max_row or 0) > MAX_SHEET_ROWS:
                    raise Refused("roster.too_many_rows", max=MAX_ROWS)
                rows = ws.iter_rows(max_col=MAX_COLUMNS, values_only=True)
                for n, row in enumerate(rows, start=1):
                    if n > MAX_SHEET_ROWS:  # every row counts, the empty ones too
                        raise Refused("roster.too_many_rows", max=MAX_ROWS)
                    if n % 256 == 0:
                        _in_time(deadline)
                    cells = [_cell_text(v) for v in row]
                    if any(c.strip() for c in cells):
                        out.append((n, cells))
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
            return _plausible(data.decode("utf-16"))
        except UnicodeDecodeError:
            raise Refused("roster.bad_encoding") from None
    try:
        return _plausible(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        raise Refused("roster.bad_encoding") from None
    return _plausible(text, gb=True)


def _plausible(text: str, *, gb: bool = False) -> str:
    """Refuse text that is another encoding read wrongly. GB18030 decodes nearly any bytes, so a
    Shift-JIS or Big5 file "succeeds" as garbage: Big5 lands in private-use code points, Shift-JIS
    in rare characters. Names in a Chinese roster are overwhelmingly in GB2312's common set; when
    most of the text is outside it, the file was not GB18030."""
    if any(unicodedata.category(ch) in ("Co", "Cn") for ch in text):
        raise Refused("roster.wrong_encoding")
    if gb:
        wide = [ch for ch in text if ord(ch) > 0x7F]
        rare = sum(1 for ch in wide if not _in_gb2312(ch))
        if wide and rare * 2 > len(wide):
            raise Refused("roster.wrong_encoding")
    return text


def _in_gb2312(ch: str) -> bool:
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _delimiter(text: str) -> str:
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    for d in (",", "\t", ";"):
        if d in first:
            return d
    return ","


def _read_csv(data: bytes, deadline: float | None = None) -> Table:
    text = _decode(data)
    out: Table = []
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
        for n, cells in enumerate(reader, start=1):
            if n > MAX_SHEET_ROWS:  # every line counts, the empty ones too
                raise Refused("roster.too_many_rows", max=MAX_ROWS)
            if n % 256 == 0:
                _in_time(deadline)
            cells = cells[:MAX_COLUMNS]
            if any(c.strip() for c in cells):
                out.append((n, cells))
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
