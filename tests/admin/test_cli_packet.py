"""`branchbot packet`: 年检 evidence for a branch, or for every branch of a committee's subtree."""

from __future__ import annotations

import asyncio
import subprocess
from io import BytesIO
from pathlib import Path

from docx import Document
from sqlalchemy import select

from storage.models import AuditEntry
from tests.admin.test_cli import Run, cli, no_traceback  # noqa: F401  (the fixture)
from tests.storage.packet_scene import make_year


def _pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


async def test_one_branch_docx_and_pdf(cli: Run, session, world, capsys, tmp_path: Path) -> None:  # noqa: F811
    await make_year(session, world)
    code = await cli("packet", "--org", str(world.branch_a.id), "--year", "2026", "--out", "files")
    out, err = capsys.readouterr()
    assert code == 0, err
    no_traceback(err)
    assert "已为 1 个支部写出 2 个文件" in out
    docx = tmp_path / "files" / f"inspection-2026-{world.branch_a.id}.docx"
    pdf = tmp_path / "files" / f"inspection-2026-{world.branch_a.id}.pdf"
    cells = [c.text for t in Document(BytesIO(docx.read_bytes())).tables for r in t.rows for c in r.cells]
    assert "西宁市餐饮行业协会" in cells and "7小时，2名党员参与" in cells
    assert _pages(pdf) == 1


async def test_a_committee_writes_every_branch_with_a_progress_bar(
    cli: Run,  # noqa: F811
    session,
    world,
    capsys,
    tmp_path: Path,
    monkeypatch,
) -> None:
    await make_year(session, world)
    # tqdm draws only on a terminal (disable=None); make it draw here to see the bar.
    import tqdm

    real = tqdm.tqdm

    def drawn(*a, **kw):
        kw["disable"] = False
        return real(*a, **kw)

    monkeypatch.setattr(tqdm, "tqdm", drawn)
    code = await cli("packet", "--org", str(world.committee.id), "--year", "2026", "--format", "pdf")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "已为 2 个支部写出 2 个文件" in out
    assert "2026 年检材料" in err and "2/2" in err
    names = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.glob("inspection-*")))
    assert names == sorted(f"inspection-2026-{b.id}.pdf" for b in (world.branch_a, world.branch_b))
    rows = (
        await session.scalars(select(AuditEntry.org_id).where(AuditEntry.action == "packet.export"))
    ).all()
    await session.commit()
    assert sorted(rows) == sorted([world.branch_a.id, world.branch_b.id])


async def test_mistakes_exit_1_with_one_line(cli: Run, session, world, capsys) -> None:  # noqa: F811
    assert await cli("packet", "--org", "99999") == 1
    _out, err = capsys.readouterr()
    no_traceback(err)
    assert err.strip().count("\n") == 0
    assert await cli("packet", "--org", str(world.branch_a.id), "--format", "odt") == 1
    assert "格式有误" in capsys.readouterr()[1]
    assert await cli("packet", "--org", str(world.branch_a.id), "--year", "1900") == 1
    assert "年度有误" in capsys.readouterr()[1]
