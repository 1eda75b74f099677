"""The year's packet as files: the 述职报告 draft (.docx), the evidence annex (.xlsx) and the 年检
one-page summary (.docx and .pdf).

The documents follow the outlines of the content pack (`packet.yaml`): the pack decides the order,
headings and sentences; this module only knows how to draw a paragraph, a named table, a
checklist's items and a blank for the secretary's own words. The tables are built once
(`packet_tables`) and drawn by every format, so the draft and the annex show the same rows;
the text's figures come from `PacketData.figures`, which reads the same `BranchReport`.

Word files are written with python-docx (East Asian font names set on every style, A4, the
margins of official documents, page numbers); the PDF with fpdf2 and the CJK font the project
ships (mplfonts' Noto Sans CJK SC), embedded as a subset so the page prints the same anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from io import BytesIO
from typing import Any
from zoneinfo import ZoneInfo

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor
from openpyxl import Workbook

from content.i18n import period_label, texts
from content.pack import DocBlock, DocOutline, Pack
from storage.fonts import cjk_font_path
from storage.leader_reviews import ReviewSheet
from storage.packet import PacketData, fmt_hours
from storage.report_files import COUNT, DAY, HOURS, SCORE, _sheet, _summary_sheet
from storage.reports import OTHER
from storage.xlsx_print import period_text, print_ready

Text = Callable[..., str]
KEEP_TOGETHER_ROWS = 15  # tables up to this many rows are kept on one page


@dataclass(frozen=True, slots=True)
class Hours:
    """A cell holding hours: "2.5" in the documents, 2.5 (number) in the workbook."""

    minutes: int

    def __str__(self) -> str:
        return fmt_hours(self.minutes)


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    title: str
    headers: list[str]
    rows: list[list[Any]]
    formats: list[str | None]
    widths: list[int]


def _day(at: datetime, tz: str) -> date:
    return at.astimezone(ZoneInfo(tz)).date()


def packet_tables(data: PacketData, pack: Pack, locale: str) -> dict[str, Table]:
    """Every named table of the packet, in the reader's language."""
    t = texts(locale).plain
    r = data.report
    tz = r.timezone
    titles = {a.id: a.title.get(locale) for a in pack.actions}
    actions = [a.id for a in pack.actions] + sorted(k for k in r.minutes_by_action if k not in titles)

    def action_title(a: str) -> str:
        return titles.get(a) or (t("report.xlsx.other_action") if a == OTHER else a)

    def status(value: str) -> str:
        return t(f"commitment.status.{value}")

    out: dict[str, Table] = {}

    def add(
        name: str, headers: list[str], rows: list[list[Any]], formats: list[str | None], widths: list[int]
    ):
        out[name] = Table(name, t(f"packet.table.{name}"), headers, rows, formats, widths)

    add(
        "hours_by_action",
        [t("packet.col.action"), t("packet.col.hours")],
        [[action_title(a), Hours(r.minutes_by_action.get(a, 0))] for a in actions]
        + [[t("packet.col.total"), Hours(r.minutes)]],
        [None, HOURS],
        [30, 14],
    )
    add(
        "members",
        [
            t("packet.col.name"),
            t("packet.col.role"),
            t("packet.col.hours"),
            t("packet.col.made"),
            t("packet.col.fulfilled"),
        ],
        [
            [
                m.name,
                t(f"report.role.{m.role.value}"),
                Hours(m.minutes),
                m.commitments.made,
                m.commitments.fulfilled,
            ]
            for m in r.members
            if m.minutes
        ],
        [None, None, HOURS, COUNT, COUNT],
        [16, 10, 12, 10, 10],
    )
    add(
        "commitments",
        [
            t("packet.col.owner"),
            t("packet.col.commitment"),
            t("packet.col.deadline"),
            t("packet.col.status"),
            t("packet.col.rating"),
        ],
        [
            [
                c.owner or t("packet.branch_owner"),
                c.text,
                c.deadline,
                status(c.status),
                t(f"commitment.rating.{c.rating}") if c.rating else "—",
            ]
            for c in data.commitments
        ],
        [None, None, DAY, None, None],
        [12, 44, 17, 15, 12],
    )
    add(
        "service_list",
        [
            t("packet.col.service"),
            t("packet.col.audience"),
            t("packet.col.contact"),
            t("packet.col.time_limit"),
        ],
        [[x.title, x.audience, x.contact, x.time_limit] for x in data.services],
        [None, None, None, None],
        [24, 20, 20, 14],
    )
    add(
        "pairings",
        [t("packet.col.partner"), t("packet.col.side"), t("packet.col.started"), t("packet.col.joint_hours")],
        [
            [
                p.partner,
                t("packet.side.strong" if p.strong else "packet.side.weak"),
                p.started_on,
                Hours(p.minutes),
            ]
            for p in data.pairings
        ],
        [None, None, DAY, HOURS],
        [30, 12, 12, 14],
    )
    add("exemplars", [t("packet.col.exemplar")], [[x] for x in data.exemplars], [None], [40])
    add(
        "notices",
        [t("packet.col.sent"), t("packet.col.notice"), t("packet.col.recipients"), t("packet.col.read")],
        [
            [_day(n.sent_at, tz), n.text if len(n.text) <= 40 else n.text[:39] + "…", n.recipients, n.read]
            for n in data.notices
        ],
        [DAY, None, COUNT, COUNT],
        [12, 44, 10, 10],
    )
    add(
        "submissions",
        [t("packet.col.date_from"), t("packet.col.date_to"), t("packet.col.submitted")],
        [[x.date_from, x.date_to, _day(x.submitted_at, tz)] for x in data.submissions],
        [DAY, DAY, DAY],
        [12, 12, 12],
    )
    cl_titles = {cl.id: cl.title.get(locale) for cl in pack.checklists}
    add(
        "scores",
        [
            t("packet.col.checklist"),
            t("packet.col.period"),
            t("packet.col.score"),
            t("packet.col.first_score"),
        ],
        [
            [
                cl_titles.get(a.checklist_id, a.checklist_id),
                period_label(t, a.period),
                a.score,
                a.first_score if a.first_score is not None else "—",
            ]
            for a in data.assessments
        ],
        [None, None, SCORE, SCORE],
        [24, 12, 10, 14],
    )
    return out


def _cell_text(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def _fill(text: str, figures: dict[str, Any]) -> str:
    return text.format_map(figures)


# ---------------------------------------------------------------------------------------------
# Word


def _east_asian(style_or_run: Any, east: str, latin: str) -> None:
    font = style_or_run.font
    font.name = latin
    rpr = style_or_run.element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.append(fonts)
    fonts.set(qn("w:eastAsia"), east)


def _page_number(paragraph: Any) -> None:
    """A PAGE field, so Word and LibreOffice number the pages themselves."""
    run = paragraph.add_run()
    for kind, text in (("begin", None), (None, "PAGE"), ("end", None)):
        if kind:
            el = OxmlElement("w:fldChar")
            el.set(qn("w:fldCharType"), kind)
        else:
            el = OxmlElement("w:instrText")
            el.set(qn("xml:space"), "preserve")
            el.text = text
        run._r.append(el)


class _Word:
    def __init__(self, outline: DocOutline, body_pt: float, table_pt: float) -> None:
        self.doc = Document()
        self.fonts = outline.fonts
        self.table_pt = table_pt
        section = self.doc.sections[0]
        section.orientation = WD_ORIENT.PORTRAIT
        section.page_width, section.page_height = Mm(210), Mm(297)
        # GB/T 9704 margins for official documents.
        section.top_margin, section.bottom_margin = Mm(37) if body_pt >= 14 else Mm(25), Mm(30)
        section.left_margin, section.right_margin = Mm(28), Mm(26)
        styles = self.doc.styles
        normal = styles["Normal"]
        _east_asian(normal, self.fonts.body, self.fonts.latin)
        normal.font.size = Pt(body_pt)
        normal.paragraph_format.space_after = Pt(0)
        normal.paragraph_format.line_spacing = 1.25
        for name, size in (
            ("Title", body_pt + 6),
            ("Heading 1", body_pt),
            ("Heading 2", body_pt),
            ("Heading 3", body_pt),
        ):
            st = styles[name]
            _east_asian(st, self.fonts.title if name == "Title" else self.fonts.heading, self.fonts.latin)
            st.font.size = Pt(size)
            st.font.bold = name != "Heading 3"
            st.font.italic = False
            st.font.color.rgb = RGBColor(0, 0, 0)
            st.paragraph_format.space_before = Pt(6)
            st.paragraph_format.space_after = Pt(3)
        footer = section.footer.paragraphs[0]
        footer.alignment = WD_ALIGN_PARAGRAPH.CENTER
        _page_number(footer)

    def title(self, text: str) -> None:
        p = self.doc.add_paragraph(text, style="Title")
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER

    def subtitle(self, text: str) -> None:
        p = self.doc.add_paragraph(text)
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER

    def heading(self, text: str, level: int) -> None:
        self.doc.add_paragraph(text, style=f"Heading {level}")

    def paragraph(self, text: str, indent: bool = True, keep_with_next: bool = False) -> None:
        p = self.doc.add_paragraph(text)
        p.paragraph_format.keep_with_next = keep_with_next
        if indent:
            p.paragraph_format.first_line_indent = Pt(self.doc.styles["Normal"].font.size.pt * 2)

    def blank(self, text: str) -> None:
        """A marked place for the secretary's own words: highlighted, so it cannot be missed."""
        p = self.doc.add_paragraph()
        run = p.add_run(text)
        run.font.highlight_color = 7  # WD_COLOR_INDEX.YELLOW
        p.paragraph_format.first_line_indent = Pt(self.doc.styles["Normal"].font.size.pt * 2)

    def grid(
        self, headers: Sequence[str] | None, rows: Sequence[Sequence[str]], widths_mm: Sequence[float]
    ) -> None:
        table = self.doc.add_table(rows=0, cols=len(widths_mm))
        table.style = "Table Grid"
        table.autofit = False
        for column, width in zip(table.columns, widths_mm, strict=True):
            column.width = Mm(width)
        all_rows = ([headers] if headers else []) + list(rows)
        # A short table stays on one page with its title (each row kept with the next); a long
        # one breaks between rows, never inside one, and repeats its header row on each page.
        together = len(all_rows) <= KEEP_TOGETHER_ROWS
        for i, row in enumerate(all_rows):
            added = table.add_row()
            tr_pr = added._tr.get_or_add_trPr()
            tr_pr.append(OxmlElement("w:cantSplit"))
            if headers and i == 0:
                tr_pr.append(OxmlElement("w:tblHeader"))
            for cell, value, width in zip(added.cells, row, widths_mm, strict=True):
                cell.width = Mm(width)
                cell.text = ""
                paragraph = cell.paragraphs[0]
                paragraph.paragraph_format.keep_with_next = together and i < len(all_rows) - 1
                run = paragraph.add_run(value)
                run.font.size = Pt(self.table_pt)
                run.bold = bool(headers) and i == 0
        self.doc.add_paragraph()

    def right(self, text: str) -> None:
        p = self.doc.add_paragraph(text)
        p.alignment = WD_ALIGN_PARAGRAPH.RIGHT

    def bytes(self) -> bytes:
        out = BytesIO()
        self.doc.save(out)
        return out.getvalue()


def _widths(table: Table, total_mm: float = 156) -> list[float]:
    whole = sum(table.widths)
    return [total_mm * w / whole for w in table.widths]


def _render_blocks(
    w: _Word,
    blocks: Sequence[DocBlock],
    data: PacketData,
    pack: Pack,
    locale: str,
    figures: dict[str, Any],
    tables: dict[str, Table],
) -> None:
    t = texts(locale).plain
    answers = {a.checklist_id: {i.item_id: i for i in a.items} for a in data.assessments}
    for b in blocks:
        if b.text:
            w.paragraph(_fill(b.text.get(locale), figures))
        elif b.blank:
            w.blank(_fill(b.blank.get(locale), figures))
        elif b.table:
            table = tables[b.table]
            w.paragraph(table.title, indent=False, keep_with_next=True)
            if table.rows:
                w.grid(table.headers, [[_cell_text(v) for v in row] for row in table.rows], _widths(table))
            else:
                w.paragraph(t("packet.no_records"))
        elif b.fields:
            w.grid(
                None,
                [
                    [_fill(f.label.get(locale), figures), _fill(f.value.get(locale), figures)]
                    for f in b.fields
                ],
                [50, 106],
            )
        elif b.checklist:
            checklist = pack.checklist(b.checklist)
            assert checklist is not None  # the pack validated it
            got = answers.get(checklist.id, {})
            for n, item in enumerate(checklist.items, start=1):
                w.heading(t("packet.item_heading", n=n, title=item.title.get(locale)), 3)
                answer = got.get(item.id)
                if answer is None or answer.status is None:
                    w.paragraph(t("packet.item_not_assessed"))
                else:
                    line = t("packet.item_status", status=t(f"checklist.status.{answer.status}"))
                    if answer.note:
                        line += t("packet.item_note", note=answer.note)
                    w.paragraph(line)
                _render_blocks(w, b.items.get(item.id, []), data, pack, locale, figures, tables)


def _word(
    outline: DocOutline,
    data: PacketData,
    pack: Pack,
    locale: str,
    figures: dict[str, Any],
    body_pt: float,
    table_pt: float,
) -> bytes:
    tables = packet_tables(data, pack, locale)
    w = _Word(outline, body_pt, table_pt)
    w.title(_fill(outline.title.get(locale), figures))
    if outline.subtitle:
        w.subtitle(_fill(outline.subtitle.get(locale), figures))
    for section in outline.sections:
        w.heading(_fill(section.heading.get(locale), figures), 1)
        _render_blocks(w, section.blocks, data, pack, locale, figures, tables)
    if outline.closing:
        w.doc.add_paragraph()
        for line in outline.closing:
            w.right(_fill(line.get(locale), figures))
    return w.bytes()


def _outlines(pack: Pack) -> Any:
    if pack.packet is None:
        raise LookupError(f"content pack {pack.id} has no packet.yaml")
    return pack.packet


def report_docx(data: PacketData, pack: Pack, locale: str = "zh", leader_rating: str | None = None) -> bytes:
    """The secretary's 述职报告 draft."""
    figures = data.figures(pack, locale, leader_rating)
    return _word(_outlines(pack).report, data, pack, locale, figures, 14, 10.5)


def inspection_docx(
    data: PacketData, pack: Pack, locale: str = "zh", leader_rating: str | None = None
) -> bytes:
    """The 年检 one-page summary as Word."""
    figures = data.figures(pack, locale, leader_rating)
    return _word(_outlines(pack).inspection, data, pack, locale, figures, 12, 11)


# ---------------------------------------------------------------------------------------------
# The evidence annex


def annex_xlsx(data: PacketData, pack: Pack, locale: str = "zh") -> bytes:
    """The evidence annex: the figures, then one sheet per table of the draft."""
    t = texts(locale).plain
    r = data.report
    c = r.commitments
    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = t("packet.sheet.summary")
    lines: list[tuple[str, Any, str | None]] = [
        (t("report.xlsx.branch"), r.org_name, None),
        (t("report.xlsx.date_from"), r.date_from, DAY),
        (t("report.xlsx.date_to"), r.date_to, DAY),
        (t("report.xlsx.generated"), r.today, DAY),
        (t("report.xlsx.members_total"), r.members_total, COUNT),
        (t("report.xlsx.participants"), r.participants, COUNT),
        (t("report.xlsx.hours_total"), round(r.minutes / 60, 2), HOURS),
        (t("report.xlsx.hours_joint"), round(r.joint_minutes / 60, 2), HOURS),
        (t("report.xlsx.commitments_made"), c.made, COUNT),
        (t("report.xlsx.commitments_fulfilled"), c.fulfilled, COUNT),
        (t("report.xlsx.commitments_evaluated"), c.evaluated, COUNT),
        (t("report.xlsx.commitments_overdue"), c.overdue, COUNT),
        *(
            (t("packet.rated", rating=t(f"commitment.rating.{k}")), data.rated(k), COUNT)
            for k in ("excellent", "good", "fair", "poor")
        ),
        (t("packet.table.service_list"), len(data.services), COUNT),
        (t("packet.table.pairings"), len(data.pairings), COUNT),
        (t("packet.table.exemplars"), len(data.exemplars), COUNT),
        (t("packet.table.notices"), len(data.notices), COUNT),
        (t("packet.table.submissions"), len(data.submissions), COUNT),
    ]
    _summary_sheet(summary, t, lines)
    for table in packet_tables(data, pack, locale).values():
        ws = wb.create_sheet(t(f"packet.sheet.{table.name}"))
        rows = [[round(v.minutes / 60, 2) if isinstance(v, Hours) else v for v in row] for row in table.rows]
        _sheet(ws, table.headers, rows, table.formats, table.widths)
    # Printed and signed like the branch report: A4, one page wide, org and period on each page.
    print_ready(wb, t, org=r.org_name, period=period_text(t, r.date_from, r.date_to))
    out = BytesIO()
    wb.save(out)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# PDF


def inspection_pdf(
    data: PacketData, pack: Pack, locale: str = "zh", leader_rating: str | None = None
) -> bytes:
    """The 年检 one-page summary as PDF, with the shipped CJK font embedded (a subset)."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    outline = _outlines(pack).inspection
    figures = data.figures(pack, locale, leader_rating)
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(25, 25, 25)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_font("cjk", fname=str(cjk_font_path()))
    pdf.set_title(_fill(outline.title.get(locale), figures))
    pdf.add_page()
    width = pdf.epw

    def write(text: str, size: float, align: str = "L", gap: float = 2) -> None:
        pdf.set_font("cjk", size=size)
        pdf.multi_cell(width, size * 0.55, text, align=align, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(gap)

    write(_fill(outline.title.get(locale), figures), 18, "C", 1)
    if outline.subtitle:
        write(_fill(outline.subtitle.get(locale), figures), 11, "C", 4)
    for section in outline.sections:
        write(_fill(section.heading.get(locale), figures), 13, "L", 1)
        for b in section.blocks:
            if b.fields:
                pdf.set_font("cjk", size=10.5)
                with pdf.table(
                    col_widths=(32, 68),
                    text_align="LEFT",
                    first_row_as_headings=False,
                    line_height=6,
                    headings_style=FontFace(),
                ) as table:
                    for f in b.fields:
                        row = table.row()
                        row.cell(_fill(f.label.get(locale), figures))
                        row.cell(_fill(f.value.get(locale), figures))
                pdf.ln(3)
            elif b.text:
                write(_fill(b.text.get(locale), figures), 10.5)
            elif b.blank:
                pdf.set_font("cjk", size=10.5)
                pdf.multi_cell(
                    width, 30, _fill(b.blank.get(locale), figures), border=1, new_x="LMARGIN", new_y="NEXT"
                )
                pdf.ln(4)
    for line in outline.closing:
        write(_fill(line.get(locale), figures), 10.5, "R", 3)
    return bytes(pdf.output())


# ---------------------------------------------------------------------------------------------
# The committee's 述职评议 sheet


def review_sheet_xlsx(sheet: ReviewSheet, pack: Pack, locale: str = "zh", tz: str = "Asia/Shanghai") -> bytes:
    """The 评议 sheet: each branch's packet figures side by side, scores, submission, rating."""
    t = texts(locale).plain
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = t("packet.sheet.review")
    checklists = [(cl.id, cl.title.get(locale)) for cl in pack.checklists]
    headers = [
        t("packet.col.branch"),
        t("packet.col.secretary"),
        t("report.xlsx.members_total"),
        t("report.xlsx.participants"),
        t("report.xlsx.hours_total"),
        t("report.xlsx.hours_joint"),
        t("report.xlsx.commitments_made"),
        t("report.xlsx.commitments_fulfilled"),
        t("report.xlsx.commitments_evaluated"),
        t("report.xlsx.commitments_overdue"),
        t("packet.table.service_list"),
        *(t("packet.col.score_of", checklist=title) for _id, title in checklists),
        t("packet.col.packet_submitted"),
        t("packet.col.leader_rating"),
        t("packet.col.comment"),
        t("packet.col.released"),
    ]
    rows = []
    for r in sheet.rows:
        b = r.figures
        rows.append(
            [
                r.name,
                "、".join(r.secretaries) if locale == "zh" else ", ".join(r.secretaries),
                b.members_total,
                b.participants,
                round(b.minutes / 60, 2),
                round(b.joint_minutes / 60, 2),
                b.commitments.made,
                b.commitments.fulfilled,
                b.commitments.evaluated,
                b.commitments.overdue,
                r.services,
                *(r.scores[cid][1] if cid in r.scores else None for cid, _title in checklists),
                _day(r.packet_submitted, tz) if r.packet_submitted else None,
                t(f"review.rating.{r.rating}") if r.rating else None,
                r.comment,
                t("web.yes") if r.released else t("web.no"),
            ]
        )
    n = len(checklists)
    formats: list[str | None] = [None, None, COUNT, COUNT, HOURS, HOURS, COUNT, COUNT, COUNT, COUNT, COUNT]
    formats += [SCORE] * n + [DAY, None, None, None]
    widths = [30, 12, 8, 10, 12, 12, 8, 10, 10, 10, 10, *([12] * n), 12, 10, 30, 8]
    _sheet(ws, headers, rows, formats, widths)
    print_ready(
        wb, t, org=sheet.org_name, period=period_text(t, date(sheet.year, 1, 1), date(sheet.year, 12, 31))
    )
    out = BytesIO()
    wb.save(out)
    return out.getvalue()
