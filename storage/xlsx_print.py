"""Page setup shared by every workbook the project writes, so each prints as a paper form.

A branch report goes upward on paper too, signed and stamped. Without a page setup a spreadsheet
program prints on its defaults (Letter or A4 portrait at 100 %), which splits the summary's labels
from their values and runs a wide table over several pages. Every sheet therefore gets: A4, fit to
one page wide (landscape when the columns are wide), the header rows repeated on each page, a
header with the organization and the period and a footer with the page number. Checked by
converting each workbook with LibreOffice headless (tests/storage/test_xlsx_print.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING

# openpyxl is imported where a sheet is written: a bot process that never writes a workbook
# should not carry it (it and numpy are tens of MB of memory; see docs/benchmarks.md).
if TYPE_CHECKING:
    from openpyxl import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

# Wider than this (in column-width units, about one digit each) and a sheet prints landscape:
# A4 portrait with these margins holds about 95 units at 100 %.
PORTRAIT_UNITS = 95
DEFAULT_WIDTH = 8.43  # a column openpyxl wrote no width for
# A header's unit in brackets goes on its own line ("服务时长合计\n（小时）"), so a narrow column
# never breaks it mid-word ("（小" / "时）").
_UNIT = re.compile(r"(?<=\S)\s*([（(][^（）()]*[）)])$")


def text_width(text: str) -> int:
    """Display width in column units: a CJK or full-width character takes two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _header_footer_text(text: str) -> str:
    return text.replace("&", "&&")  # & starts a code (&P is the page number) in headers and footers


def break_header_units(ws: Worksheet, row: int = 1) -> None:
    """Header cells wrap only before their unit, and each column is as wide as its longest header
    line, so the printed header never breaks inside a word."""
    from openpyxl.styles import Alignment
    from openpyxl.utils import get_column_letter

    lines = 1
    for cell in ws[row]:
        if not isinstance(cell.value, str) or not cell.value:
            continue
        cell.value = _UNIT.sub(r"\n\1", cell.value)
        parts = cell.value.split("\n")
        lines = max(lines, len(parts))
        cell.alignment = Alignment(wrap_text=True, vertical="center", horizontal="center")
        letter = get_column_letter(cell.column)
        # As wide as the longest header line: a width sized for the unbroken header would only
        # shrink the printed page (fit_columns then widens for the cells below).
        ws.column_dimensions[letter].width = max(text_width(p) for p in parts) + 2
    ws.row_dimensions[row].height = 16 * lines + 4


def fit_columns(ws: Worksheet, first_row: int = 2, most: int = 40) -> None:
    """Widen a column that is narrower than its longest cell (up to `most` units; longer text
    wraps), so a branch's name is not cut off on paper."""
    from openpyxl.utils import get_column_letter

    need: dict[int, int] = {}
    for row in ws.iter_rows(min_row=first_row):
        for cell in row:
            if cell.value is None:
                continue
            if isinstance(cell.value, str):
                width = max(text_width(line) for line in cell.value.split("\n")) + 2
            elif isinstance(cell.value, int | float):
                width = len(f"{cell.value:.2f}") + 2
            else:
                width = 12  # a date or a time
            need[cell.column] = max(need.get(cell.column, 0), min(most, width))
    for col, width in need.items():
        dim = ws.column_dimensions[get_column_letter(col)]
        if (dim.width or DEFAULT_WIDTH) < width:
            dim.width = width


def page_setup(
    ws: Worksheet,
    t: Callable[..., str],
    *,
    org: str,
    period: str,
    title_rows: int = 1,
    landscape: bool | None = None,
    break_units: bool = True,
) -> None:
    """A4, one page wide, header rows on every page, organization and period in the page header,
    "page N of M" in the footer. `t` is the catalog (plain text) of the workbook's language.
    `break_units=False` keeps the header texts as they are, for files other systems read back
    (then the caller's column widths must hold the headers)."""
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.page import PageMargins
    from openpyxl.worksheet.properties import PageSetupProperties

    if title_rows and break_units:
        break_header_units(ws, title_rows)
    fit_columns(ws, first_row=title_rows + 1)
    units = sum(
        ws.column_dimensions[get_column_letter(i)].width or DEFAULT_WIDTH
        for i in range(1, (ws.max_column or 1) + 1)
    )
    if landscape is None:
        landscape = units > PORTRAIT_UNITS
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = ws.ORIENTATION_LANDSCAPE if landscape else ws.ORIENTATION_PORTRAIT
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages down as the rows need
    if title_rows:
        ws.print_title_rows = f"1:{title_rows}"
    ws.page_margins = PageMargins(left=0.5, right=0.5, top=0.85, bottom=0.75, header=0.35, footer=0.3)
    ws.print_options.horizontalCentered = True
    ws.oddHeader.left.text = _header_footer_text(org)
    ws.oddHeader.left.size = 9
    ws.oddHeader.right.text = _header_footer_text(period)
    ws.oddHeader.right.size = 9
    ws.oddFooter.center.text = t("print.page", page="&P", pages="&N")
    ws.oddFooter.center.size = 9


def period_text(t: Callable[..., str], date_from: object, date_to: object) -> str:
    return t("print.period", date_from=str(date_from), date_to=str(date_to))


def sign_off_block(ws: Worksheet, t: Callable[..., str]) -> None:
    """The end of a summary sheet sent upward on paper: who filled it in, who checked it, the date
    it was sent, and room for the seal. Labels in the first column, a ruled blank beside each."""
    from openpyxl.styles import Alignment, Border, Font, Side

    line = Side(style="thin", color="000000")
    row = ws.max_row + 2
    for key in ("print.filled_by", "print.reviewed_by", "print.submitted_on", "print.seal"):
        label = ws.cell(row, 1, t(key))
        label.font = Font(bold=True)
        label.alignment = Alignment(vertical="bottom")
        blank = ws.cell(row, 2)
        blank.border = Border(bottom=line)
        ws.row_dimensions[row].height = 48 if key == "print.seal" else 26
        row += 1


def print_ready(wb: Workbook, t: Callable[..., str], *, org: str, period: str) -> None:
    """`page_setup` for every sheet of a workbook (each with one header row)."""
    for ws in wb.worksheets:
        page_setup(ws, t, org=org, period=period)
