"""Small files that are expensive to read: hand-built .xlsx zips (openpyxl would take minutes to
write a million rows) for the roster's limits."""

from __future__ import annotations

import io
import zipfile

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    'Target="sharedStrings.xml"/></Relationships>'
)
_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def xlsx(rows_xml: bytes, shared: list[str] | bytes = (), dimension: str | None = None) -> bytes:
    """A workbook whose only sheet holds `rows_xml` (the <row> elements) and whose shared
    strings are `shared` (or a ready-made sharedStrings part)."""
    if isinstance(shared, bytes):
        sst = shared
    else:
        items = "".join(f'<si><t xml:space="preserve">{s}</t></si>' for s in shared)
        sst = f'<?xml version="1.0" encoding="UTF-8"?><sst {_NS}>{items}</sst>'.encode()
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8"?><worksheet {_NS}>{dim}<sheetData>'.encode()
        + rows_xml
        + b"</sheetData></worksheet>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", _CONTENT_TYPES)
        z.writestr("_rels/.rels", _RELS)
        z.writestr("xl/workbook.xml", _WORKBOOK)
        z.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        z.writestr("xl/worksheets/sheet1.xml", sheet)
        z.writestr("xl/sharedStrings.xml", sst)
    return buf.getvalue()


def million_spaces() -> bytes:
    """A header, then a million rows of one space (a shared string): about 80 KB zipped."""
    header = b'<row><c t="s"><v>0</v></c></row>'
    return xlsx(header + b'<row><c t="s"><v>1</v></c></row>' * 1_000_000, ["姓名", " "])


def huge_shared_strings(mb: int = 30) -> bytes:
    """A normal little sheet whose shared strings unpack to `mb` megabytes."""
    item = b"<si><t>" + b"x" * 1000 + b"</t></si>"
    body = item * (mb * 1024)
    sst = (
        b'<?xml version="1.0" encoding="UTF-8"?><sst '
        + _NS.encode()
        + b"><si><t>\xe5\xa7\x93\xe5\x90\x8d</t></si>"
        + body
        + b"</sst>"
    )
    return xlsx(b'<row><c t="s"><v>0</v></c></row><row><c t="s"><v>1</v></c></row>', sst)


def wide_roster(rows: int, cols: int = 50) -> bytes:
    """A legal but heavy roster: `rows` people, `cols` columns of text each (inline strings)."""
    cells = "".join(f'<c t="inlineStr"><is><t>备注{i}</t></is></c>' for i in range(cols - 1))
    header = f'<row><c t="inlineStr"><is><t>姓名</t></is></c>{cells}</row>'
    body = "".join(f'<row><c t="inlineStr"><is><t>党员{n}</t></is></c>{cells}</row>' for n in range(rows))
    return xlsx((header + body).encode())
