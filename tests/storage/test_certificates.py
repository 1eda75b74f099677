"""Certificates of service hours: what is refused and what the public lookup finds (the PDF
itself: tests/printing/test_certificate_pdf.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from content.pack import get_pack
from storage.certificates import find_certificate, issue_certificate
from storage.errors import Refused
from storage.models import Certificate
from tests.factories import make_certificate, make_certified_service

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
BASE = "https://branchbot.example.org"


async def issue(
    session, world, date_from: date, date_to: date, locale: str = "zh"
) -> tuple[Certificate, bytes]:
    """Member A's certificate for the period, issued at NOW with the content pack (also used by
    tests/printing/test_certificate_pdf.py)."""
    actor = await world.actor(session, world.member_a)
    return await issue_certificate(
        session, actor, date_from, date_to, now=NOW, pack=get_pack(), locale=locale, verify_base=BASE
    )


async def test_no_approved_service_no_certificate(session, world) -> None:
    await make_certified_service(session, world)
    with pytest.raises(Refused) as e:
        await issue(session, world, date(2026, 7, 1), date(2026, 8, 31))
    assert e.value.key == "certificate.none"
    with pytest.raises(Refused):
        await issue(session, world, date(2026, 8, 31), date(2026, 7, 1))
    assert await session.scalar(select(func.count()).select_from(Certificate)) == 0


@pytest.mark.parametrize("code", ["", "nope", "A" * 16, "'; drop table certificates; --", "Ä" * 16])
async def test_unknown_codes_find_nothing(session, code) -> None:
    assert await find_certificate(session, code) is None


async def test_erasing_the_person_erases_their_certificates(session, world) -> None:
    from storage.privacy import erase_person

    cert = await make_certificate(session, world.member_a, NOW)
    assert await find_certificate(session, cert.code) is not None
    actor = await world.actor(session, world.member_a)
    await erase_person(session, actor, world.member_a.id, NOW)
    await session.commit()
    assert await find_certificate(session, cert.code) is None
