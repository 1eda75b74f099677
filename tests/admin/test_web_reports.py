"""The web's branch report for a submitted (报送) period: the frozen figures and file, and the
figures that changed since."""

from __future__ import annotations

import hashlib
from datetime import date

from sqlalchemy import select

from content.pack import get_pack
from storage import sent_reports
from storage.models import EntryStatus, ServiceEntry, Submission
from tests.admin.conftest import NOW, read, sign_in

NOV = (date(2026, 11, 1), date(2026, 11, 30))
PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK


def _entry(world, minutes: int) -> ServiceEntry:
    return ServiceEntry(
        person_id=world.member_a.id,
        org_id=world.branch_a.id,
        day=date(2026, 11, 10),
        minutes=minutes,
        action="volunteer",
        description="服务",
        status=EntryStatus.APPROVED,
    )


async def test_a_submitted_period_shows_and_downloads_what_was_sent(
    client, sessionmaker, session, world
) -> None:
    session.add(_entry(world, 120))
    await session.flush()
    actor = await world.actor(session, world.secretary_a)
    await sent_reports.submit(session, actor, world.branch_a.id, *NOV, None, NOW, pack=PACK)
    await session.commit()
    session.add(_entry(world, 60))  # after the submission
    await session.commit()
    sent = await read(sessionmaker, select(Submission))

    await sign_in(client, sessionmaker, world.staff)
    q = f"org={world.branch_a.id}&from={NOV[0]}&to={NOV[1]}"
    page = await client.get(f"/reports?{q}")
    assert page.status_code == 200
    assert "2026-11-28 10:00 报送的报表" in page.text and sent.sha256[:16] in page.text
    assert "服务时长合计（小时）：2 → 3" in page.text
    xlsx = await client.get(f"/reports/download?{q}&fmt=xlsx")
    assert xlsx.status_code == 200 and xlsx.content == sent.file_bytes
    assert hashlib.sha256(xlsx.content).hexdigest() == sent.sha256
    csv = (await client.get(f"/reports/download?{q}&fmt=csv")).content.decode("utf-8-sig")
    assert "2.0" in csv and "3.0" not in csv  # the submitted hours, not today's

    # Another period of the same branch is not submitted: fresh figures, no frozen note.
    page = await client.get(f"/reports?org={world.branch_a.id}&from=2026-11-01&to=2026-11-29")
    assert "报送的报表" not in page.text
