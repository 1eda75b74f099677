"""The packet's documents render: LibreOffice (headless, its own profile) prints each .docx to PDF
with a CJK font embedded and the pages expected; the fpdf2 PDF embeds the shipped font itself.

The .docx files name the fonts of official documents (仿宋, 黑体, 宋体), which a Chinese office
machine has; this machine has no CJK font installed, so the conversion is given the font the
project ships (mplfonts) through a fontconfig file, as such a machine would have one. Without
LibreOffice the tests are skipped with the reason, except under CI (BRANCHBOT_REQUIRE_OFFICE=1,
set by .ci/run, which installs libreoffice-writer-nogui), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from content.pack import get_pack
from storage.fonts import cjk_font_path
from storage.packet import branch_packet, fmt_hours
from storage.packet_files import annex_xlsx, inspection_docx, inspection_pdf, report_docx
from tests.storage.packet_scene import TODAY, YEAR, make_year

PACK = get_pack("qh-2015")
SOFFICE = shutil.which("soffice")
REQUIRED = os.environ.get("BRANCHBOT_REQUIRE_OFFICE") == "1"
needs_office = pytest.mark.skipif(
    SOFFICE is None and not REQUIRED, reason="LibreOffice (soffice) is not installed; .ci/run installs it"
)


def to_pdf(document: bytes, work: Path, suffix: str = "docx") -> Path:
    assert SOFFICE is not None, "soffice missing (apt-get install libreoffice-writer-nogui)"
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"doc.{suffix}"
    src.write_bytes(document)
    conf = work / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        '<include ignore_missing="yes">/etc/fonts/fonts.conf</include>'
        f"<dir>{cjk_font_path().parent}</dir><cachedir>{work / 'fc'}</cachedir></fontconfig>",
        "utf-8",
    )
    env = {**os.environ, "FONTCONFIG_FILE": str(conf), "HOME": str(work)}
    subprocess.run(
        [
            SOFFICE,
            f"-env:UserInstallation={(work / 'profile').as_uri()}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(work),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=240,
        env=env,
    )
    out = work / "doc.pdf"
    assert out.is_file(), "LibreOffice wrote no PDF"
    return out


def pdf_pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def pdf_fonts(pdf: Path) -> list[tuple[str, str]]:
    """(font name, embedded yes/no) for every font of the PDF."""
    lines = subprocess.run(["pdffonts", str(pdf)], check=True, capture_output=True, text=True).stdout
    rows = lines.splitlines()[2:]
    return [(r.split()[0], r.split()[-5]) for r in rows if r.strip()]


def pdf_text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
async def data(session, world):
    await make_year(session, world)
    actor = await world.actor(session, world.secretary_a)
    return await branch_packet(session, actor, world.branch_a.id, YEAR, TODAY, PACK)


def _cjk_embedded(pdf: Path) -> None:
    fonts = pdf_fonts(pdf)
    cjk = [name for name, emb in fonts if "CJK" in name]
    assert cjk, fonts
    assert all(emb == "yes" for _n, emb in fonts), fonts


@needs_office
async def test_draft_prints_with_the_cjk_font_embedded(data, tmp_path) -> None:
    pdf = to_pdf(report_docx(data, PACK), tmp_path / "draft")
    _cjk_embedded(pdf)
    text = pdf_text(pdf)
    assert "述职报告" in text.replace(" ", "").replace("\n", "")
    assert "一、基本情况" in text and "四、下一步打算" in text
    assert f"{fmt_hours(data.report.minutes)}小时" in text.replace(" ", "")
    assert 3 <= pdf_pages(pdf) <= 8


@needs_office
async def test_inspection_summary_is_one_page_in_word_and_in_pdf(data, tmp_path) -> None:
    pdf = to_pdf(inspection_docx(data, PACK, leader_rating="好"), tmp_path / "inspection")
    assert pdf_pages(pdf) == 1
    _cjk_embedded(pdf)
    assert "西宁市餐饮行业协会2026年度党建工作情况" in pdf_text(pdf).replace(" ", "")


@needs_office
async def test_annex_prints_with_its_chinese_sheets(data, tmp_path) -> None:
    pdf = to_pdf(annex_xlsx(data, PACK), tmp_path / "annex", "xlsx")
    _cjk_embedded(pdf)
    text = pdf_text(pdf)
    for words in ("服务时长合计（小时）", "餐饮企业食品安全咨询", "每月参加一次志愿服务"):
        assert words in text.replace(" ", ""), words


async def test_inspection_pdf_embeds_the_shipped_font(data, tmp_path) -> None:
    pdf = tmp_path / "inspection.pdf"
    pdf.write_bytes(inspection_pdf(data, PACK, leader_rating="好"))
    assert pdf_pages(pdf) == 1
    fonts = pdf_fonts(pdf)
    assert [emb for name, emb in fonts if "NotoSansCJK" in name] == ["yes"]
    text = pdf_text(pdf).replace(" ", "")
    assert "党员志愿服务" in text and f"{fmt_hours(data.report.minutes)}小时，2名党员参与" in text
    assert "书记述职评议等次好" in text
    english = tmp_path / "inspection-en.pdf"
    english.write_bytes(inspection_pdf(data, PACK, "en"))
    assert pdf_pages(english) == 1
    assert "Party building in 2026" in pdf_text(english)
