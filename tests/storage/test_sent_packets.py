"""A submitted packet keeps its bytes and figures; a later run that differs says what changed."""

from __future__ import annotations

import hashlib
import zipfile
from datetime import UTC, date, datetime
from io import BytesIO

import pytest
from docx import Document
from sqlalchemy import select

from content.pack import get_pack
from storage import leader_reviews, sent_packets
from storage.errors import Forbidden, Refused
from storage.models import AuditEntry, EntryStatus, ServiceEntry, Submission
from tests.storage.packet_scene import TODAY, YEAR, make_year

PACK = get_pack("qh-2015")
NOW = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)


async def test_submission_is_frozen_and_later_changes_are_named(session, world) -> None:
    await make_year(session, world)
    secretary = await world.actor(session, world.secretary_a)
    sent = await sent_packets.submit_packet(session, secretary, world.branch_a.id, YEAR, now=NOW, pack=PACK)
    await session.commit()
    frozen_bytes, frozen_figures = bytes(sent.file_bytes), dict(sent.figures)
    assert sent.kind == "duty_packet" and (sent.period_start, sent.period_end) == (
        date(2026, 1, 1),
        date(2026, 12, 31),
    )
    assert sent.sha256 == hashlib.sha256(frozen_bytes).hexdigest()
    with zipfile.ZipFile(BytesIO(frozen_bytes)) as z:
        names = z.namelist()
        draft = Document(BytesIO(z.read(names[0])))
    assert names == ["2026年度述职报告初稿.docx", "2026年度述职佐证材料.xlsx"]
    assert any("全年服务7小时" in p.text for p in draft.paragraphs)
    assert frozen_figures["report"]["minutes"] == 420

    # Nothing changed: a fresh run agrees with what was sent.
    opened = await sent_packets.open_packet(session, secretary, world.branch_a.id, YEAR, TODAY, PACK)
    assert opened.submission is not None and opened.changes == []

    # A late approval of an entry of the year: the submission does not move, the run says so.
    session.add(
        ServiceEntry(
            person_id=world.member_a2.id,
            org_id=world.branch_a.id,
            day=date(2026, 11, 2),
            minutes=60,
            action="volunteer",
            description="补录",
            status=EntryStatus.APPROVED,
        )
    )
    await session.commit()
    opened = await sent_packets.open_packet(session, secretary, world.branch_a.id, YEAR, TODAY, PACK)
    assert opened.submission is not None
    assert bytes(opened.submission.file_bytes) == frozen_bytes and opened.submission.figures == frozen_figures
    described = [sent_packets.describe(c, PACK, "zh") for c in opened.changes]
    assert ("服务时长合计（小时）", "7", "8") in described
    assert ("党员志愿服务行动（小时）", "2.5", "3.5") in described
    assert {c.key for c in opened.changes} == {"report.minutes", "report.minutes_by_action.volunteer"}

    # Submitting again adds a row; the first stays as it was.
    await sent_packets.submit_packet(session, secretary, world.branch_a.id, YEAR, now=NOW, pack=PACK)
    await session.commit()
    rows = (await session.scalars(select(Submission).order_by(Submission.id))).all()
    assert [r.figures["report"]["minutes"] for r in rows] == [420, 480]
    assert bytes(rows[0].file_bytes) == frozen_bytes
    audit = (
        await session.scalars(select(AuditEntry.action).where(AuditEntry.action == "duty_packet.submit"))
    ).all()
    assert len(audit) == 2

    staff = await world.actor(session, world.staff)
    sheet = await leader_reviews.review_sheet(session, staff, world.committee.id, YEAR, TODAY, PACK)
    assert [r.packet_submitted is not None for r in sheet.rows] == [True, False]


async def test_who_may_submit_and_when(session, world) -> None:
    await make_year(session, world)
    staff = await world.actor(session, world.staff)
    member = await world.actor(session, world.member_a)
    secretary_b = await world.actor(session, world.secretary_b)
    secretary = await world.actor(session, world.secretary_a)
    for actor in (staff, member, secretary_b):
        with pytest.raises(Forbidden):
            await sent_packets.submit_packet(session, actor, world.branch_a.id, YEAR, now=NOW, pack=PACK)
    with pytest.raises(Refused, match=r"packet\.future_year"):
        await sent_packets.submit_packet(session, secretary, world.branch_a.id, 2027, now=NOW, pack=PACK)
    assert (await session.scalars(select(Submission))).all() == []
