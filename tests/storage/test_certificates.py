"""Certificates of service hours: what is refused and what the public lookup finds (the PDF
itself: tests/printing/test_certificate_pdf.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from content.pack import get_pack
from storage.certificates import find_certificate, issue_certificate
from storage.errors import Refused
from storage.models import Certificate, EntryStatus, ServiceEntry

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
BASE = "https://branchbot.example.org"


async def _service(s, w) -> None:
    def entry(day, minutes, status=EntryStatus.APPROVED, **kw):
        return ServiceEntry(
            person_id=w.member_a.id,
            org_id=w.branch_a.id,
            day=day,
            minutes=minutes,
            status=status,
            action=kw.pop("action", "volunteer"),
            place=kw.pop("place", "城东区八一路社区"),
            description=kw.pop("description", "为社区老人义务测量血压"),
            reviewer_id=w.secretary_a.id if status is not EntryStatus.PENDING else None,
            **kw,
        )

    s.add_all(
        [
            entry(date(2026, 3, 5), 150, organizer="西宁市餐饮行业协会"),
            entry(
                date(2026, 6, 1), 90, action="integrity", description="讲解食品安全规范", place="协会会议室"
            ),
            entry(date(2026, 7, 1), 60, status=EntryStatus.PENDING, description="尚未审核的记录"),
            entry(date(2026, 8, 1), 45, status=EntryStatus.REJECTED, description="被退回的记录"),
            entry(date(2025, 12, 31), 60, description="去年的记录"),
        ]
    )
    await s.commit()


async def test_no_approved_service_no_certificate(session, world) -> None:
    await _service(session, world)
    actor = await world.actor(session, world.member_a)
    with pytest.raises(Refused) as e:
        await issue_certificate(
            session,
            actor,
            date(2026, 7, 1),
            date(2026, 8, 31),
            now=NOW,
            pack=get_pack(),
            locale="zh",
            verify_base=BASE,
        )
    assert e.value.key == "certificate.none"
    with pytest.raises(Refused):
        await issue_certificate(
            session,
            actor,
            date(2026, 8, 31),
            date(2026, 7, 1),
            now=NOW,
            pack=get_pack(),
            locale="zh",
            verify_base=BASE,
        )
    assert await session.scalar(select(func.count()).select_from(Certificate)) == 0


@pytest.mark.parametrize("code", ["", "nope", "A" * 16, "'; drop table certificates; --", "Ä" * 16])
async def test_unknown_codes_find_nothing(session, code) -> None:
    assert await find_certificate(session, code) is None


async def test_erasing_the_person_erases_their_certificates(session, world) -> None:
    from storage.privacy import erase_person

    session.add(
        Certificate(
            code="QE4CW3X6RKVURKPK",
            person_id=world.member_a.id,
            name=world.member_a.name,
            date_from=date(2026, 1, 1),
            date_to=date(2026, 6, 30),
            minutes=270,
            entries=3,
            sha256="0" * 64,
            locale="zh",
            issued_at=NOW,
        )
    )
    await session.commit()
    assert await find_certificate(session, "QE4CW3X6RKVURKPK") is not None
    actor = await world.actor(session, world.member_a)
    await erase_person(session, actor, world.member_a.id, NOW)
    await session.commit()
    assert await find_certificate(session, "QE4CW3X6RKVURKPK") is None
