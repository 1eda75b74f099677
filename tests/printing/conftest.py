"""Print tests: workbooks converted to PDF by LibreOffice Calc headless (Debian's
`libreoffice-calc-nogui`) and read back with poppler's `pdftotext -layout` and `pdfinfo`.

When they run (as the browser tests do):
- soffice and poppler present, TEST_DATABASE_URL unset: they run (CI runs them in the SQLite pass);
- TEST_DATABASE_URL set: not collected (the workbooks' data is covered on both databases elsewhere);
- a tool missing and BRANCHBOT_REQUIRE_OFFICE=1 (set by .ci/run): the whole run stops, loudly;
- a tool missing otherwise: not collected, and one plain line at the end of the run says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TOOLS = ("soffice", "pdftotext", "pdfinfo", "pdftoppm")
HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parent.parent / "test-artifacts" / "print"


def why_left_out() -> str | None:
    if os.environ.get("TEST_DATABASE_URL", "").strip():
        return "print tests left out on PostgreSQL: they run once, in the SQLite pass"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        if os.environ.get("BRANCHBOT_REQUIRE_OFFICE") == "1":
            pytest.exit(f"BRANCHBOT_REQUIRE_OFFICE=1 but {', '.join(missing)} missing", returncode=3)
        return (
            f"print tests left out: {', '.join(missing)} not installed "
            "(apt-get install libreoffice-calc-nogui poppler-utils to run them)"
        )
    return None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.suffix == ".py" and collection_path.name.startswith("test_") and why_left_out():
        return True
    return None


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    reason = why_left_out()
    if reason:
        terminalreporter.write_line(reason)


@dataclass
class Pdf:
    path: Path
    pages: list[str]  # `pdftotext -layout`, one string per page
    sizes: list[tuple[float, float]]  # points, width x height, per page


def read_pdf(path: Path) -> Pdf:
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True, timeout=60
    ).stdout
    pages = text.split("\f")
    if pages and not pages[-1].strip():
        pages.pop()
    info = subprocess.run(
        ["pdfinfo", "-f", "1", "-l", "9999", str(path)],
        capture_output=True,
        check=True,
        text=True,
        timeout=60,
    ).stdout
    sizes = []
    for line in info.splitlines():
        if line.startswith("Page") and "size:" in line:
            w, _x, h = line.split("size:")[1].split()[:3]
            sizes.append((float(w), float(h)))
    return Pdf(path, pages, sizes)


def _fonts_conf(where: Path) -> Path:
    """The machine's fonts plus the Noto Sans CJK SC the project ships (mplfonts), for this
    LibreOffice only: a machine without a Chinese font would print boxes, and installing one
    system-wide would hide what the browser tests check (pages drawn with the served font)."""
    from storage.fonts import cjk_font_path

    conf = where / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<fontconfig>\n'
        '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>\n'
        f"  <dir>{cjk_font_path().parent}</dir>\n"
        f"  <cachedir>{where / 'fc-cache'}</cachedir>\n"
        "</fontconfig>\n"
    )
    return conf


def convert(books: dict[str, bytes], where: Path) -> dict[str, Pdf]:
    """Every workbook to PDF in ONE soffice run (its start-up is most of the time), with a profile
    of its own so parallel runs never share LibreOffice's user installation."""
    src = where / "xlsx"
    out = where / "pdf"
    src.mkdir(parents=True, exist_ok=True)
    for name, data in books.items():
        (src / f"{name}.xlsx").write_bytes(data)
    profile = (where / "lo-profile").as_uri()
    subprocess.run(
        [
            "soffice",
            f"-env:UserInstallation={profile}",
            "--headless",
            "--norestore",
            "--nolockcheck",
            "--convert-to",
            "pdf",
            "--outdir",
            str(out),
            *(str(src / f"{n}.xlsx") for n in books),
        ],
        capture_output=True,
        check=True,
        timeout=300,
        env={**os.environ, "FONTCONFIG_FILE": str(_fonts_conf(where))},
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    result = {}
    for name in books:
        pdf = out / f"{name}.pdf"
        assert pdf.exists(), f"LibreOffice made no PDF of {name}"
        shutil.copy(pdf, ARTIFACTS / pdf.name)  # for people to look at (pdftoppm -png)
        result[name] = read_pdf(pdf)
    return result
