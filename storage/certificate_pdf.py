"""The certificate of service hours as a PDF (fpdf2), with the Noto Sans CJK SC that mplfonts
ships embedded (subset), so it reads the same on every machine and printer."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from storage.fonts import cjk_font_path

FONT = "cjk"


@dataclass(frozen=True, slots=True)
class CertificateLine:
    day: date
    activity: str  # the service action's title
    content: str
    place: str
    minutes: int
    organizer: str
    approver: str


@dataclass(frozen=True, slots=True)
class CertificateData:
    code: str
    name: str
    branch: str
    date_from: date
    date_to: date
    lines: list[CertificateLine]
    minutes: int
    issued_at: datetime
    timezone: str


def local_day(value: datetime, tz: str) -> date:
    return value.astimezone(ZoneInfo(tz)).date()


def _hours(minutes: int) -> str:
    return f"{minutes / 60:.1f}"


def _qr_png(text: str) -> bytes:
    import qrcode

    q = qrcode.QRCode(border=1, box_size=6)
    q.add_data(text)
    q.make(fit=True)
    buf = io.BytesIO()
    q.make_image().save(buf)
    return buf.getvalue()


def render_certificate(data: CertificateData, t: Callable[..., str], verify_url: str) -> bytes:
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    issued = local_day(data.issued_at, data.timezone)
    footer = t("certificate.pdf.footer", code=data.code)

    class Doc(FPDF):
        def footer(self) -> None:  # fpdf2 calls this on every page
            self.set_y(-12)
            self.set_font(FONT, size=8)
            self.set_text_color(110)
            self.cell(0, 6, f"{footer}    {self.page_no()}/{{nb}}", align="C")

    pdf = Doc(format="A4", unit="mm")
    pdf.set_creation_date(data.issued_at)  # the same data gives the same bytes (and hash)
    pdf.set_title(t("certificate.pdf.title"))
    pdf.set_author(data.branch)
    pdf.add_font(FONT, fname=str(cjk_font_path()))
    pdf.set_margins(18, 18, 18)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()

    pdf.set_font(FONT, size=22)
    pdf.cell(0, 14, t("certificate.pdf.title"), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(FONT, size=11)
    pdf.multi_cell(
        0,
        7,
        t(
            "certificate.pdf.body",
            name=data.name,
            branch=data.branch,
            date_from=data.date_from.isoformat(),
            date_to=data.date_to.isoformat(),
            count=len(data.lines),
            hours=_hours(data.minutes),
        ),
        align="L",  # justified, the spaces around dates would stretch
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(3)

    pdf.set_font(FONT, size=8.5)
    heads = [
        t("certificate.pdf.col_day"),
        t("certificate.pdf.col_activity"),
        t("certificate.pdf.col_content"),
        t("certificate.pdf.col_place"),
        t("certificate.pdf.col_hours"),
        t("certificate.pdf.col_organizer"),
        t("certificate.pdf.col_approver"),
    ]
    with pdf.table(
        col_widths=(19, 24, 38, 22, 20, 33, 18),
        text_align=("LEFT", "LEFT", "LEFT", "LEFT", "RIGHT", "LEFT", "LEFT"),
        headings_style=FontFace(fill_color=(238, 238, 238)),
        line_height=5,
        repeat_headings=1,
    ) as table:
        table.row(heads)
        for ln in data.lines:
            table.row(
                [
                    ln.day.isoformat(),
                    ln.activity,
                    ln.content,
                    ln.place,
                    _hours(ln.minutes),
                    ln.organizer,
                    ln.approver,
                ]
            )
        table.row([t("certificate.pdf.total"), "", "", "", _hours(data.minutes), "", ""])

    pdf.ln(6)
    pdf.set_font(FONT, size=11)
    if pdf.will_page_break(48):
        pdf.add_page()
    top = pdf.get_y()
    pdf.cell(0, 7, t("certificate.pdf.issuer", branch=data.branch), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 7, t("certificate.pdf.issued_on", day=issued.isoformat()), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font(FONT, size=10)
    pdf.cell(0, 6, t("certificate.pdf.code", code=data.code), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=8.5)
    pdf.multi_cell(
        128, 5, t("certificate.pdf.verify", url=verify_url), align="L", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.image(io.BytesIO(_qr_png(verify_url)), x=pdf.w - 18 - 34, y=top, w=34, h=34)
    return bytes(pdf.output())
