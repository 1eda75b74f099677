"""The packet on the web: a branch's documents download and open; staff rate with a comment,
release, export the sheet; the secretary then sees the rating."""

from __future__ import annotations

from datetime import date
from io import BytesIO

from docx import Document
from openpyxl import load_workbook
from sqlalchemy import select

from storage.models import AuditEntry, EntryStatus, LeaderReview, ServiceEntry, Submission
from tests.admin.conftest import csrf, read_all, sign_in
from tests.storage.packet_scene import make_year


async def test_secretary_downloads_the_documents(client, session, sessionmaker, world) -> None:
    await make_year(session, world)
    await sign_in(client, sessionmaker, world.secretary_a)
    page = await client.get("/packet")
    assert page.status_code == 200
    assert "餐饮企业食品安全咨询" in page.text and "尚未发布" in page.text
    draft = await client.get(f"/packet/download?org={world.branch_a.id}&kind=draft")
    assert draft.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.word")
    text = "\n".join(p.text for p in Document(BytesIO(draft.content)).paragraphs)
    assert "述职报告" in text and "一、基本情况" in text
    pdf = await client.get(f"/packet/download?org={world.branch_a.id}&kind=inspection_pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert "filename*=UTF-8''2026" in pdf.headers["content-disposition"]
    word = await client.get(f"/packet/download?org={world.branch_a.id}&kind=inspection")
    assert "西宁市餐饮行业协会" in "\n".join(
        c.text for t in Document(BytesIO(word.content)).tables for row in t.rows for c in row.cells
    )
    # The committee's sheet is not a branch's document.
    assert (await client.get(f"/packet/download?org={world.branch_a.id}&kind=sheet")).status_code == 404
    actions = await read_all(sessionmaker, select(AuditEntry.action).order_by(AuditEntry.id))
    assert actions.count("packet.export") == 3 and "packet.view" in actions


async def test_staff_rate_release_and_export(client, new_client, session, sessionmaker, world) -> None:
    await make_year(session, world)
    await sign_in(client, sessionmaker, world.staff)
    page = await client.get(f"/packet?org={world.committee.id}&year=2026")
    assert world.branch_a.name in page.text and world.branch_c.name not in page.text
    viewed = await read_all(
        sessionmaker, select(AuditEntry.org_id).where(AuditEntry.action == "leader_review.view")
    )
    assert viewed == [world.committee.id]
    token = await csrf(client, f"/packet?org={world.committee.id}")
    r = await client.post(
        "/packet/rate",
        data={
            "csrf": token,
            "org": world.branch_a.id,
            "year": "2026",
            "rating": "average",
            "comment": "清单需补充",
        },
    )
    assert r.status_code == 303
    rows = await read_all(sessionmaker, select(LeaderReview))
    assert [(x.org_id, x.rating, x.comment, x.released_at) for x in rows] == [
        (world.branch_a.id, "average", "清单需补充", None)
    ]
    bad = await client.post(
        "/packet/rate", data={"csrf": token, "org": world.branch_a.id, "year": "2026", "rating": "superb"}
    )
    assert bad.status_code in (303, 400)
    assert [x.rating for x in await read_all(sessionmaker, select(LeaderReview))] == ["average"]

    secretary = new_client()
    await sign_in(secretary, sessionmaker, world.secretary_a)
    assert "尚未发布" in (await secretary.get("/packet")).text
    r = await client.post("/packet/release", data={"csrf": token, "org": world.committee.id, "year": "2026"})
    assert r.status_code == 303
    seen = (await secretary.get("/packet")).text
    assert "一般" in seen and "清单需补充" in seen

    sheet = await client.get(f"/packet/download?org={world.committee.id}&year=2026&kind=sheet")
    ws = load_workbook(BytesIO(sheet.content))["述职评议"]
    header = [c.value for c in ws[1]]
    first = dict(zip(header, [c.value for c in ws[2]], strict=True))
    assert (
        first["党支部"] == world.branch_a.name and first["述职评议等次"] == "一般" and first["已发布"] == "是"
    )


async def test_secretary_submits_and_the_page_shows_what_changed(
    client, session, sessionmaker, world
) -> None:
    await make_year(session, world)
    await sign_in(client, sessionmaker, world.secretary_a)
    token = await csrf(client, "/packet")
    r = await client.post("/packet/submit", data={"csrf": token, "org": world.branch_a.id, "year": "2026"})
    assert r.status_code == 303
    sent = (await read_all(sessionmaker, select(Submission)))[0]
    page = (await client.get("/packet")).text
    assert "报送党工委（校验码" in page and "报送后数字没有变化" in page
    got = await client.get(f"/packet/download?org={world.branch_a.id}&year=2026&kind=submitted")
    assert got.headers["content-type"] == "application/zip" and got.content == bytes(sent.file_bytes)

    session.add(
        ServiceEntry(
            person_id=world.member_a.id,
            org_id=world.branch_a.id,
            day=date(2026, 11, 20),
            minutes=30,
            action="volunteer",
            description="补录",
            status=EntryStatus.APPROVED,
        )
    )
    await session.commit()
    page = (await client.get("/packet")).text
    assert "服务时长合计（小时）：7 → 7.5" in page
    got = await client.get(f"/packet/download?org={world.branch_a.id}&year=2026&kind=submitted")
    assert got.content == bytes(sent.file_bytes)
