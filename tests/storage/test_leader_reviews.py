"""述职评议: the committee's sheet of its branches, ratings stored, audited, released, exported."""

from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from content.pack import get_pack
from storage import leader_reviews as lr
from storage.errors import Forbidden, Invalid, Refused
from storage.models import AuditEntry, LeaderReview
from storage.packet import branch_packet
from storage.packet_files import review_sheet_xlsx
from tests.storage.packet_scene import TODAY, YEAR, make_year

PACK = get_pack("qh-2015")
NOW = datetime(2026, 12, 20, 2, 0, tzinfo=UTC)


async def test_sheet_puts_each_branch_beside_its_packet(session, world) -> None:
    await make_year(session, world)
    staff = await world.actor(session, world.staff)
    sheet = await lr.review_sheet(session, staff, world.committee.id, YEAR, TODAY, PACK)
    assert [r.name for r in sheet.rows] == [world.branch_a.name, world.branch_b.name]  # not branch C
    a = sheet.rows[0]
    packet = await branch_packet(
        session, await world.actor(session, world.secretary_a), world.branch_a.id, YEAR, TODAY, PACK
    )
    rep = packet.report
    assert (a.figures.minutes, a.figures.joint_minutes, a.figures.participants, a.figures.members_total) == (
        rep.minutes,
        rep.joint_minutes,
        rep.participants,
        rep.members_total,
    )
    assert a.figures.commitments == rep.commitments
    assert a.services == len(packet.services) == 2
    assert a.scores == {"six_haves": ("2026-Q4", 83.3)}
    assert a.secretaries == ["李书记"] and a.rating is None and a.packet_submitted is None


async def test_rating_is_stored_audited_and_seen_by_the_secretary_only_once_released(session, world) -> None:
    staff = await world.actor(session, world.staff)
    secretary = await world.actor(session, world.secretary_a)
    await lr.rate_leader(session, staff, world.branch_a.id, YEAR, "fairly_good", "  服务记录完整 ", now=NOW)
    await lr.rate_leader(session, staff, world.branch_a.id, YEAR, "good", "服务记录完整，承诺践诺好", now=NOW)
    await session.commit()
    rows = (await session.scalars(select(LeaderReview))).all()
    assert [(r.org_id, r.year, r.rating, r.comment) for r in rows] == [
        (world.branch_a.id, YEAR, "good", "服务记录完整，承诺践诺好")
    ]
    assert await lr.released_review(session, secretary, world.branch_a.id, YEAR) is None

    assert await lr.release_reviews(session, staff, world.committee.id, YEAR, now=NOW) == 1
    await session.commit()
    seen = await lr.released_review(session, secretary, world.branch_a.id, YEAR)
    assert seen is not None and seen.rating == "good"

    audit = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    assert [(a.action, a.org_id, a.detail.get("rating"), a.detail.get("previous")) for a in audit] == [
        ("leader_review.rate", world.branch_a.id, "fairly_good", None),
        ("leader_review.rate", world.branch_a.id, "good", "fairly_good"),
        ("leader_review.release", world.committee.id, None, None),
    ]
    assert all("服务" not in str(a.detail) for a in audit)  # the comment stays out of the log

    sheet = await lr.review_sheet(session, staff, world.committee.id, YEAR, TODAY, PACK)
    wb = load_workbook(BytesIO(review_sheet_xlsx(sheet, PACK)))
    ws = wb["述职评议"]
    header = [c.value for c in ws[1]]
    row = dict(zip(header, [c.value for c in ws[2]], strict=True))
    assert row["党支部"] == world.branch_a.name and row["述职评议等次"] == "好" and row["已发布"] == "是"
    assert row["评语"] == "服务记录完整，承诺践诺好"
    assert "“六有”目标得分" in header


async def test_who_may_rate(session, world) -> None:
    secretary = await world.actor(session, world.secretary_a)
    outsider = await world.actor(session, world.other_staff)
    staff = await world.actor(session, world.staff)
    with pytest.raises(Forbidden):
        await lr.rate_leader(session, secretary, world.branch_a.id, YEAR, "good", None, now=NOW)
    with pytest.raises(Forbidden):
        await lr.rate_leader(session, outsider, world.branch_a.id, YEAR, "good", None, now=NOW)
    with pytest.raises(Forbidden):
        await lr.review_sheet(session, secretary, world.committee.id, YEAR, TODAY, PACK)
    with pytest.raises(Refused):
        await lr.rate_leader(session, staff, world.committee.id, YEAR, "good", None, now=NOW)
    with pytest.raises(Invalid):
        await lr.rate_leader(session, staff, world.branch_a.id, YEAR, "excellent", None, now=NOW)
    with pytest.raises(Invalid):
        await lr.rate_leader(session, staff, world.branch_a.id, YEAR, "good", "长" * 501, now=NOW)
    assert (await session.scalars(select(LeaderReview))).all() == []
