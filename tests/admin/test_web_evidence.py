"""The admin web's evidence photos (served only within the viewer's scope, as thumbnails in the
entry lists) and its possible-duplicate marks."""

from __future__ import annotations

from datetime import date

import pytest

from config.settings import Settings
from storage import evidence
from storage.evidence import EvidenceStore
from storage.models import EntryStatus, ServiceEntry
from tests.admin.conftest import sign_in

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
DAY = date(2026, 11, 26)


@pytest.fixture
def web_settings(tmp_path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        admin_secret="test-secret-" + "x" * 32,
        bot_username="branchbot_test_bot",
        evidence_dir=str(tmp_path / "evidence"),
    )


def add(session, person, org, **kw) -> ServiceEntry:
    data = {"day": DAY, "minutes": 60, "action": "volunteer", "description": "社区义诊"}
    data.update(kw)
    row = ServiceEntry(person_id=person.id, org_id=org.id, status=EntryStatus.PENDING, **data)
    session.add(row)
    return row


async def with_photo(session, world, web_settings) -> ServiceEntry:
    row = add(session, world.member_a, world.branch_a, evidence_file_id="AgACAgIAAxk-test")
    await session.flush()
    key = EvidenceStore(web_settings.evidence_dir).put(world.member_a.id, PNG)
    await evidence.attach(session, row.id, key)
    await session.commit()
    return row


@pytest.mark.parametrize(("who", "status"), [("secretary_a", 200), ("staff", 200), ("admin", 200)])
async def test_the_photo_is_served_inside_the_scope(
    client, sessionmaker, session, world, web_settings, who, status
) -> None:
    row = await with_photo(session, world, web_settings)
    await sign_in(client, sessionmaker, getattr(world, who))
    r = await client.get(f"/evidence/{row.id}")
    assert r.status_code == status
    assert r.content == PNG and r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "no-store"  # personal data: not kept by the browser


@pytest.mark.parametrize("who", ["secretary_c", "other_staff"])
async def test_the_photo_is_not_found_outside_the_scope(
    client, sessionmaker, session, world, web_settings, who
) -> None:
    row = await with_photo(session, world, web_settings)
    await sign_in(client, sessionmaker, getattr(world, who))
    r = await client.get(f"/evidence/{row.id}")
    assert r.status_code == 404 and PNG not in r.content


@pytest.mark.parametrize("entry_id", ["65595271700", "9" * 23])
async def test_an_id_beyond_the_column_is_not_found(client, sessionmaker, world, entry_id) -> None:
    """Regression: the photo route passed the path's digits straight to the query, and PostgreSQL
    refused an id beyond int32 with a 500."""
    await sign_in(client, sessionmaker, world.admin)
    r = await client.get(f"/evidence/{entry_id}")
    assert r.status_code == 404


async def test_signed_out_visitors_get_no_photo(client, session, world, web_settings) -> None:
    row = await with_photo(session, world, web_settings)
    r = await client.get(f"/evidence/{row.id}")
    assert r.status_code in (302, 303) and PNG not in r.content


async def test_entry_lists_show_thumbnails_and_possible_duplicates(
    client, sessionmaker, session, world, web_settings
) -> None:
    row = await with_photo(session, world, web_settings)
    twin = add(session, world.member_a, world.branch_a, description="社区 义诊。", minutes=90)
    lone = add(session, world.member_a2, world.branch_a, description="敬老院探访")
    await session.commit()
    await sign_in(client, sessionmaker, world.secretary_a)

    page = (await client.get(f"/entries?org={world.branch_a.id}")).text
    assert f'<img src="/evidence/{row.id}"' in page
    assert f"可能重复：见 #{twin.id}" in page and f"可能重复：见 #{row.id}" in page
    assert page.count("可能重复") == 2  # not the other member's entry
    assert f'id="entry-{lone.id}"' in page
    assert f"#entry-{twin.id}" in page  # the mark links to the other entry

    person = (await client.get(f"/members/{world.member_a.id}")).text
    assert f'<img src="/evidence/{row.id}"' in person and f"可能重复：见 #{row.id}" in person
