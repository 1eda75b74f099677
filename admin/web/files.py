"""Files the admin web hands out: the member list, a roster template, report tables as .xlsx and
.csv. Only formatting here (the rows come from store operations). Every text cell goes through
`storage.exports.safe_text`, so nothing a person typed can run as a spreadsheet formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from storage.exports import safe_text
from storage.xlsx_print import page_setup

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF = "application/pdf"
MEDIA = {"xlsx": XLSX, "csv": CSV, "docx": DOCX, "pdf": PDF, "zip": "application/zip"}

Cell = str | int | float | date | datetime | None


def _cell(v: Cell) -> Any:
    if isinstance(v, str):
        return safe_text(v)
    if isinstance(v, datetime):
        return v.replace(tzinfo=None)  # openpyxl writes naive datetimes; callers pass local time
    return v


def xlsx(
    sheets: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Cell]]]],
    *,
    t: Callable[..., str] | None = None,
    org: str = "",
    period: str = "",
) -> bytes:
    """A workbook of (title, headers, rows) sheets: bold frozen header, filters, sensible widths;
    with the catalog `t`, also the page setup for printing (organization and period in the header)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    first = True
    for title, headers, rows in sheets:
        ws = wb.active if first else wb.create_sheet()
        assert ws is not None
        first = False
        ws.title = safe_text(title)[:31].replace("'", "") or "Sheet"
        ws.append([safe_text(h) for h in headers])
        for c in ws[1]:
            c.font = Font(bold=True)
        widths = [max(8, min(40, len(h) * 2 + 2)) for h in headers]
        for r in rows:
            cells = [_cell(v) for v in r]
            ws.append(cells)
            for i, v in enumerate(cells):
                if isinstance(v, date):
                    ws.cell(ws.max_row, i + 1).number_format = "yyyy-mm-dd"
                n = len(str(v)) if v is not None else 0
                widths[i] = max(widths[i], min(40, n * 2 if isinstance(v, str) else n + 2))
        for i, w in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = w
        ws.freeze_panes = "A2"
        if headers:
            ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{max(1, ws.max_row)}"
        if t is not None:
            page_setup(ws, t, org=org, period=period)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def csv_bytes(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow([safe_text(h) for h in headers])
    for r in rows:
        w.writerow(
            [v.isoformat() if isinstance(v, date | datetime) else ("" if v is None else _cell(v)) for v in r]
        )
    # The BOM makes Excel read the file as UTF-8 rather than the system's code page.
    return buf.getvalue().encode("utf-8-sig")


def download(data: bytes, filename: str, fmt: str) -> Response:
    """A file as an attachment; the name may be Chinese (RFC 5987), with an ASCII fallback."""
    media = MEDIA[fmt]
    ascii_name = filename if filename.isascii() else f"branchbot-export.{fmt}"
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
    return Response(data, media_type=media, headers={"Content-Disposition": disposition})
