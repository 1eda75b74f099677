"""Certificates of service hours (志愿服务证明): the PDF's text (extracted with pdftotext), the
stored row and hash, the public lookup, and a rendering to PNG for people to look at (run where
poppler is, see conftest)."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from storage.certificates import find_certificate
from storage.models import AuditEntry
from tests.factories import make_certified_service
from tests.storage.test_certificates import BASE, issue

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts" / "certificates"


def _pdftotext(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "certificate.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True, timeout=60
    ).stdout


def _keep(pdf: bytes, name: str) -> None:
    """For people to look at: the PDF and its pages as PNG (pdftoppm)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "80", str(path), str(ARTIFACTS / name)], check=True, timeout=60)


async def test_the_certificate_states_the_approved_service_and_a_code(session, world, tmp_path) -> None:
    await make_certified_service(session, world)
    row, pdf = await issue(session, world, date(2026, 1, 1), date(2026, 12, 31))
    await session.commit()
    _keep(pdf, "zh")
    text = _pdftotext(pdf, tmp_path)
    flat = "".join(text.split())
    assert "志愿服务证明" in flat
    assert "兹证明张三（" + world.branch_a.name + "）" in flat
    assert "2026-01-01至2026-12-31" in flat and "志愿服务2次" in flat and "累计服务时长4.0小时" in flat
    for header in ("日期", "活动名称", "服务内容", "地点", "时长（小时）", "组织单位", "审核人"):
        assert header in flat
    assert "2026-03-05" in flat and "2.5" in flat and "西宁市餐饮行业协会" in flat
    assert "2026-06-01" in flat and "讲解食品安全规范" in flat and "协会会议室" in flat
    assert world.secretary_a.name in flat  # who approved
    for left_out in ("尚未审核的记录", "被退回的记录", "去年的记录"):
        assert left_out not in flat
    assert f"验证码：{row.code}" in flat and f"{BASE}/verify/{row.code}" in flat
    assert row.sha256 == hashlib.sha256(pdf).hexdigest()
    assert (row.name, row.minutes, row.entries) == ("张三", 240, 2)
    assert b"/FontFile3" in pdf or b"/FontFile2" in pdf  # the CJK font is embedded
    found = await find_certificate(session, row.code.lower())
    assert found is not None and found.id == row.id
    audit = await session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "certificate.issue")
    )
    assert audit == 1


async def test_the_certificate_in_english(session, world, tmp_path) -> None:
    await make_certified_service(session, world)
    row, pdf = await issue(session, world, date(2026, 1, 1), date(2026, 6, 30), locale="en")
    _keep(pdf, "en")
    text = " ".join(_pdftotext(pdf, tmp_path).split())
    assert "Certificate of Volunteer Service" in text
    assert "between 2026-01-01 and 2026-06-30, 4.0 hours in all" in text
    assert "Organized by" in text and "Approved" in text and f"Verification code: {row.code}" in text
