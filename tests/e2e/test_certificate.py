"""/certificate in chat: the member asks with a period (typed or a button) and gets the PDF, in
their language, with the code that /verify/<code> knows; the menu and /help offer it."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from sqlalchemy import select

from handlers.certificate import certificate_period
from handlers.kit.commands import bot_commands
from handlers.reports import PeriodError
from storage.models import Certificate, EntryStatus, ServiceEntry
from tests.e2e.harness import NOW

TODAY = NOW.date()


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("2026", (date(2026, 1, 1), TODAY)),  # this year ends today
        ("2025", (date(2025, 1, 1), date(2025, 12, 31))),
        ("2026-01 2026-06", (date(2026, 1, 1), date(2026, 6, 30))),
        ("2026年1月至2026年6月", (date(2026, 1, 1), date(2026, 6, 30))),
        ("2026-03", (date(2026, 3, 1), date(2026, 3, 31))),
        ("2026-Q1", (date(2026, 1, 1), date(2026, 3, 31))),
    ],
)
def test_certificate_periods(text: str, period: tuple[date, date]) -> None:
    assert certificate_period(text, TODAY) == period


@pytest.mark.parametrize("text", ["明年", "2026-06 2026-01", "2026-13 2026-14"])
def test_bad_certificate_periods(text: str) -> None:
    with pytest.raises(PeriodError):
        certificate_period(text, TODAY)


async def _service(session, world) -> None:
    for day, minutes in ((date(2026, 3, 5), 150), (date(2026, 6, 1), 90)):
        session.add(
            ServiceEntry(
                person_id=world.member_a.id,
                org_id=world.branch_a.id,
                day=day,
                minutes=minutes,
                action="volunteer",
                place="城东区八一路社区",
                description="为社区老人义务测量血压",
                status=EntryStatus.APPROVED,
                reviewer_id=world.secretary_a.id,
            )
        )
    await session.commit()


async def test_a_member_gets_the_certificate_pdf_and_its_code_is_stored(chat, db, world, session) -> None:
    await _service(session, world)
    reply = await chat.send(world.member_a, "/certificate 2026-01 2026-06")
    doc = reply.sent[-1].document
    assert doc is not None and doc.file_name == "志愿服务证明-2026-01-01至2026-06-30.pdf"
    assert doc.data.startswith(b"%PDF")
    async with db.sessionmaker() as s:
        cert = await s.scalar(select(Certificate))
    assert cert is not None and cert.person_id == world.member_a.id and cert.minutes == 240
    assert cert.sha256 == hashlib.sha256(doc.data).hexdigest()
    assert f"验证码 {cert.code}" in reply.text and f"/verify/{cert.code}" in reply.text
    assert "共 4.0 小时" in reply.text


async def test_buttons_when_no_period_is_given_and_a_clear_answer_when_nothing_is_approved(
    chat, db, world, session
) -> None:
    await _service(session, world)
    menu = await chat.send(world.member_a, "/certificate")
    assert menu.buttons == ["今年（2026）", "去年（2025）"]
    got = await chat.press(world.member_a, menu, "今年")
    assert got.sent[-1].document is not None
    none = await chat.press(world.member_a, menu, "去年")
    assert none.sent[-1].document is None and "没有已审核的服务记录" in none.text
    bad = await chat.send(world.member_a, "/certificate 明年")
    assert "示例：/certificate 2026" in bad.text


def test_the_member_menu_and_help_offer_it() -> None:
    from content.i18n import texts

    for locale in ("zh", "en"):
        assert "certificate" in [c.command for c in bot_commands(None, locale)]
        assert "/certificate" in texts(locale).plain("help.member")
