"""The audit page filters by action, channel, organization, person and date, and names the
changes made in the bot (approvals, evaluations, notices...) next to the web's views."""

from __future__ import annotations

import re
from datetime import date

from content.pack import get_pack
from storage import pairings, service_log
from tests.admin.conftest import NOW, sign_in

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK

TODAY = date(2026, 11, 28)


async def test_the_audit_page_filters_by_channel_and_organization(client, sessionmaker, world) -> None:
    async with sessionmaker() as s:
        member = await world.actor(s, world.member_a)
        data = service_log.new_entry(day=TODAY, minutes=60, action="volunteer", description="义诊")
        entry = await service_log.log_service(
            s, member, data, source="t:1", today=TODAY, window_days=30, pack=PACK
        )
        await service_log.review(s, await world.actor(s, world.secretary_a), entry.id, True, None, NOW)
        cli = await world.actor(s, world.admin, via="cli")
        await pairings.record_exemplar(
            s, cli, pairings.new_exemplar(org_id=world.branch_b.id, title="样板", year=2026)
        )
        await s.commit()

    await sign_in(client, sessionmaker, world.admin)

    async def shown(query: str) -> set[str]:
        """The actions of the rows listed (the select's options name every action anyway)."""
        page = await client.get(f"/audit?{query}")
        assert page.status_code == 200
        return set(re.findall(r'<tr data-action="([a-z_.]+)">', page.text))

    assert {"entry.log", "entry.approve", "exemplar.add"} <= await shown("")
    page = (await client.get("/audit")).text
    assert "审核通过服务记录" in page
    # Channels and actions in words, not the codes they are stored as.
    assert "聊天机器人" in page and "命令行" in page
    assert ">bot<" not in page and ">entry.approve<" not in page
    assert await shown("via=bot") == {"entry.log", "entry.approve"}
    assert await shown("via=cli") == {"exemplar.add"}
    assert await shown(f"org={world.branch_b.id}") == {"exemplar.add"}
    assert await shown("action=entry.approve&from=2026-11-28&to=2026-11-28") == {"entry.approve"}
    assert await shown(f"person={world.member_a.id}&via=bot") == {"entry.log", "entry.approve"}
    # A channel that does not exist is ignored, not an error.
    assert "exemplar.add" in await shown("via=fax")
