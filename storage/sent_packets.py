"""The year's packet as submitted upward (报送述职材料): frozen, and what has changed since.

`submit_packet` freezes, through the generic `storage.submissions`, the packet's figures
(`PacketData.summary`) and its files as sent: one .zip holding the 述职报告 draft and the
evidence annex, so the committee receives both and anyone opening the submission later gets the
same bytes (sha256 kept). `open_packet` is what every surface shows for a branch and year: the
fresh packet, the latest submission if any, and the figures a fresh run gives differently
(`submissions.changes`), so a later run that differs says what changed.

It lives apart from storage/packet.py because it needs the document writers, which depend on
storage/packet.py.
"""

from __future__ import annotations

import asyncio
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from io import BytesIO
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import texts
from content.pack import Pack
from storage import submissions
from storage.access import Actor, require_manager
from storage.errors import Refused
from storage.models import OrgKind, Role, Submission
from storage.packet import SUBMISSION_KIND, PacketData, branch_packet, fmt_hours, year_period
from storage.submissions import Change

KIND = SUBMISSION_KIND
_FIXED_TIME = (2000, 1, 1, 0, 0, 0)  # zip entry times: the bundle depends on its files only


def file_name(year: int, org_id: int) -> str:
    return f"packet-{year}-{org_id}.zip"


def bundle(files: list[tuple[str, bytes]]) -> bytes:
    """A .zip of the packet's files, with fixed entry times."""
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return out.getvalue()


def packet_files(data: PacketData, pack: Pack, locale: str) -> list[tuple[str, bytes]]:
    # python-docx and openpyxl are imported here, not by a bot process that never makes a packet.
    from storage.packet_files import annex_xlsx, report_docx

    t = texts(locale).plain
    return [
        (f"{t('packet.file.draft', year=data.year)}.docx", report_docx(data, pack, locale)),
        (f"{t('packet.file.annex', year=data.year)}.xlsx", annex_xlsx(data, pack, locale)),
    ]


async def submit_packet(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    year: int,
    *,
    now: datetime,
    pack: Pack,
    locale: str = "zh",
) -> Submission:
    """The branch secretary sends the year's packet to the committee; it is frozen as sent."""
    org = await require_manager(s, actor, org_id, (Role.SECRETARY,))
    if org.kind is not OrgKind.BRANCH:
        raise Refused("report.not_branch")
    today = now.astimezone(ZoneInfo(org.timezone)).date()
    if year > today.year:
        raise Refused("packet.future_year", year=year)
    data = await branch_packet(s, actor, org_id, year, today, pack)
    start, end = year_period(year)
    return await submissions.freeze(
        s,
        actor,
        kind=KIND,
        org_id=org_id,
        period_start=start,
        period_end=end,
        figures=data.summary(),
        file_name=file_name(year, org_id),
        # Drawing the files takes CPU time: off the event loop.
        data=await asyncio.to_thread(lambda: bundle(packet_files(data, pack, locale))),
        now=now,
        roles=(Role.SECRETARY,),
    )


@dataclass(frozen=True, slots=True)
class OpenedPacket:
    data: PacketData  # the fresh packet
    submission: Submission | None = None  # the latest submission of this year, as sent
    changes: list[Change] = field(default_factory=list)  # frozen → fresh


async def open_packet(
    s: AsyncSession, actor: Actor, org_id: int, year: int, today: date, pack: Pack
) -> OpenedPacket:
    data = await branch_packet(s, actor, org_id, year, today, pack)
    start, end = year_period(year)
    sent = await submissions.latest(s, actor, kind=KIND, org_id=org_id, period_start=start, period_end=end)
    if sent is None:
        return OpenedPacket(data)
    return OpenedPacket(data, sent, submissions.changes(sent.figures, data.summary()))


# Figures a person reads in a change line: the label's catalog key and how to show the value.
_HOURS = ("report.minutes", "report.joint_minutes", "report.pending_minutes")
_LABELS = {
    "report.minutes": "report.xlsx.hours_total",
    "report.joint_minutes": "report.xlsx.hours_joint",
    "report.pending_minutes": "report.xlsx.pending_hours",
    "report.pending_entries": "report.xlsx.pending",
    "report.participants": "report.xlsx.participants",
    "report.members_total": "report.xlsx.members_total",
    "report.commitments.made": "report.xlsx.commitments_made",
    "report.commitments.reported": "report.xlsx.commitments_reported",
    "report.commitments.evaluated": "report.xlsx.commitments_evaluated",
    "report.commitments.overdue": "report.xlsx.commitments_overdue",
    "services": "packet.table.service_list",
    "pairings": "packet.table.pairings",
    "exemplars": "packet.table.exemplars",
    "notices": "packet.table.notices",
    "notice_read": "packet.col.read",
    "notice_recipients": "packet.col.recipients",
    "submissions": "packet.table.submissions",
}


def describe(change: Change, pack: Pack, locale: str) -> tuple[str, str, str]:
    """(label, then, now) of a changed figure, in the reader's language."""
    t = texts(locale).plain
    key = change.key

    def value(v: object) -> str:
        if v is None:
            return "—"
        if (key in _HOURS or key.startswith("report.minutes_by_action.")) and isinstance(v, int):
            return fmt_hours(v)
        return f"{v:g}" if isinstance(v, float) else str(v)

    if key in _LABELS:
        label = t(_LABELS[key])
    elif key.startswith("report.minutes_by_action."):
        action = pack.action(key.rsplit(".", 1)[1])
        label = t("report.xlsx.hours_action", action=action.title.get(locale) if action else key)
    elif key.startswith("scores."):
        checklist = pack.checklist(key.split(".", 1)[1])
        label = t("packet.col.score_of", checklist=checklist.title.get(locale) if checklist else key)
    elif key.startswith("commitments_rated."):
        label = t("packet.rated", rating=t(f"commitment.rating.{key.split('.', 1)[1]}"))
    else:
        label = key
    return label, value(change.then), value(change.now)
