"""Volunteer service record exports (志愿服务记录) as .xlsx or .csv, with the columns China's
volunteer service record rules ask for, for an org's subtree and a date range.

Every text cell is neutralized: a spreadsheet would run a cell starting with =, +, -, @ (or a
tab / carriage return that some programs strip first), so such a cell gets a leading quote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from content.i18n import texts
from content.pack import Pack
from storage import audit
from storage.access import Actor, require_manager
from storage.errors import Refused
from storage.models import EntryStatus, Org, Person, ServiceEntry
from storage.xlsx_print import page_setup, period_text

DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r")
FORMATS = ("xlsx", "csv")
COLUMNS = (
    "records.col_volunteer",  # 志愿者姓名
    "records.col_day",  # 服务日期
    "records.col_place",  # 服务地点
    "records.col_content",  # 服务内容
    "records.col_hours",  # 服务时长(小时)
    "records.col_action",  # 活动名称 (the service action)
    "records.col_organizer",  # 组织单位
    "records.col_in_charge",  # 负责人
    "records.col_branch",  # 所属支部
    "records.col_status",  # 状态
)
# Wide enough for each header on one line: the national system reads the header row back.
WIDTHS = (14, 12, 24, 40, 18, 20, 28, 12, 28, 10)
DAY_COL, HOURS_COL = 2, 5  # 1-based, as openpyxl counts


def neutralize(value: str) -> str:
    """Text a spreadsheet will show, never run."""
    return "'" + value if value.startswith(DANGEROUS_START) else value


def safe_text(value: str) -> str:
    """Control characters dropped (openpyxl refuses them; they carry nothing), then neutralized.

    In this order, so a control character cannot hide a formula from `neutralize`."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return neutralize(ILLEGAL_CHARACTERS_RE.sub("", value))


@dataclass(frozen=True, slots=True)
class RecordRow:
    volunteer: str
    day: date
    place: str
    content: str
    hours: float
    action: str
    organizer: str
    in_charge: str
    branch: str
    status: str

    def cells(self) -> list[str | date | float]:
        return [
            safe_text(self.volunteer),
            self.day,
            safe_text(self.place),
            safe_text(self.content),
            self.hours,
            safe_text(self.action),
            safe_text(self.organizer),
            safe_text(self.in_charge),
            safe_text(self.branch),
            safe_text(self.status),
        ]


Track = Callable[[list[RecordRow]], Iterable[RecordRow]]


async def service_record_rows(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    date_from: date,
    date_to: date,
    *,
    include_all: bool = False,
    locale: str = "zh",
    pack: Pack,
) -> tuple[Org, list[RecordRow]]:
    """The rows of the export, for the org's subtree as far as the actor manages it."""
    if date_from > date_to:
        raise Refused("records.bad_range")
    root = await require_manager(s, actor, org_id)
    _ = texts(locale)
    reviewer = aliased(Person)
    q = (
        select(
            Person.name,
            ServiceEntry.day,
            ServiceEntry.place,
            ServiceEntry.description,
            ServiceEntry.minutes,
            ServiceEntry.action,
            ServiceEntry.organizer,
            # The record rules want a person in charge; when the member named none, the one who
            # approved the entry vouches for it.
            func.coalesce(ServiceEntry.person_in_charge, reviewer.name),
            Org.name,
            ServiceEntry.status,
        )
        .join(Org, Org.id == ServiceEntry.org_id)
        .outerjoin(Person, Person.id == ServiceEntry.person_id)
        .outerjoin(reviewer, reviewer.id == ServiceEntry.reviewer_id)
        .where(
            Org.path.like(root.path + "%"),
            actor.scope_filter(Org.path),
            ServiceEntry.day >= date_from,
            ServiceEntry.day <= date_to,
        )
        .order_by(ServiceEntry.day, Org.name, ServiceEntry.id)
    )
    if not include_all:
        q = q.where(ServiceEntry.status == EntryStatus.APPROVED)
    rows: list[RecordRow] = []
    for name, day, place, desc, minutes, action, organizer, in_charge, branch, status in await s.execute(q):
        act = pack.action(action)
        rows.append(
            RecordRow(
                volunteer=name or "",
                day=day,
                place=place or "",
                content=desc or "",
                hours=round(minutes / 60, 2),
                action=act.title.get(locale) if act else action,
                organizer=organizer or branch,
                in_charge=in_charge or "",
                branch=branch,
                status=_.plain(f"records.status_{EntryStatus(status).value}"),
            )
        )
    return root, rows


async def export_service_records(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    date_from: date,
    date_to: date,
    fmt: Literal["xlsx", "csv"] | str = "xlsx",
    *,
    include_all: bool = False,
    locale: str = "zh",
    track: Track | None = None,
    pack: Pack,
) -> bytes:
    """The export file's bytes. Scoped (secretary: branch; staff: subtree; admin: all), audited."""
    if fmt not in FORMATS:
        raise Refused("records.bad_format", formats=", ".join(FORMATS))
    root, rows = await service_record_rows(
        s, actor, org_id, date_from, date_to, include_all=include_all, locale=locale, pack=pack
    )
    t = texts(locale).plain
    headers = [t(k) for k in COLUMNS]
    it = track(rows) if track else rows
    if fmt == "xlsx":
        period = period_text(t, date_from, date_to)
        data = _xlsx(
            headers,
            it,
            t("records.sheet_title"),
            setup=lambda ws: page_setup(ws, t, org=root.name, period=period, break_units=False),
        )
    else:
        data = _csv(headers, it)
    await audit.record(
        s,
        actor,
        "records.export",
        org_id=root.id,
        detail={
            "format": fmt,
            "rows": len(rows),
            "from": date_from.isoformat(),
            "to": date_to.isoformat(),
            "all": include_all,
        },
    )
    return data


def _csv(headers: list[str], rows: Iterable[RecordRow]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(headers)
    for r in rows:
        w.writerow([c.isoformat() if isinstance(c, date) else c for c in r.cells()])
    # The BOM makes Excel read the file as UTF-8 rather than the system's code page.
    return buf.getvalue().encode("utf-8-sig")


def _xlsx(
    headers: list[str], rows: Iterable[RecordRow], title: str, setup: Callable[[Any], None] | None = None
) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = title[:31]  # Excel's limit for sheet names
    ws.append(headers)
    for c in ws[1]:
        c.font = Font(bold=True)
    ws.freeze_panes = "A2"
    for i, width in enumerate(WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    n = 1
    for r in rows:
        ws.append(r.cells())
        n += 1
        ws.cell(n, DAY_COL).number_format = "yyyy-mm-dd"
        ws.cell(n, HOURS_COL).number_format = "0.00"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{n}"
    if setup:
        setup(ws)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
