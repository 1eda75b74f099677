"""The evidence photo store: what it keeps and where, who may see a photo, and erasure."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from storage import evidence, privacy
from storage.errors import NotFound
from storage.evidence import EvidenceStore
from storage.models import ServiceEntry

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 40
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def test_put_keeps_an_image_once_per_person_and_reads_it_back(tmp_path) -> None:
    store = EvidenceStore(tmp_path)
    key = store.put(7, PNG)
    assert key.startswith("7/") and key.endswith(".png")
    assert store.put(7, PNG) == key  # the same photo twice is one file
    assert store.read(key) == (PNG, "image/png")
    other = store.put(7, JPEG)
    assert other.endswith(".jpg") and store.read(other) == (JPEG, "image/jpeg")
    assert sorted(p.name for p in (tmp_path / "7").iterdir()) == sorted([key[2:], other[2:]])


def test_put_refuses_what_is_not_an_image(tmp_path) -> None:
    with pytest.raises(ValueError):
        EvidenceStore(tmp_path).put(1, b"<html>not a photo</html>")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "key", ["../secret.png", "7/../../etc/passwd", "/etc/passwd", "7/abc.png", "7/" + "a" * 64 + ".svg", ""]
)
def test_a_key_not_of_the_stores_shape_reads_nothing(tmp_path, key) -> None:
    store = EvidenceStore(tmp_path)
    assert store.path(key) is None and store.read(key) is None


def test_delete_person_removes_only_their_folder(tmp_path) -> None:
    store = EvidenceStore(tmp_path)
    mine, theirs = store.put(1, PNG), store.put(2, PNG)
    assert store.delete_person(1) == 1
    assert store.read(mine) is None and store.read(theirs) == (PNG, "image/png")
    assert store.delete_person(1) == 0


async def entry_with_photo(session, person, org, store) -> ServiceEntry:
    row = ServiceEntry(
        person_id=person.id,
        org_id=org.id,
        day=date(2026, 11, 19),
        minutes=60,
        action="volunteer",
        description="社区义诊",
        evidence_file_id="AgACAgIAAxk-test",
    )
    session.add(row)
    await session.flush()
    await evidence.attach(session, row.id, store.put(person.id, PNG))
    return row


@pytest.mark.parametrize(
    ("viewer", "sees"),
    [
        ("member_a", True),  # their own
        ("secretary_a", True),
        ("staff", True),
        ("admin", True),
        ("member_a2", False),  # another member of the branch
        ("secretary_b", False),
        ("other_staff", False),
    ],
)
async def test_a_photo_is_for_its_author_and_those_managing_the_branch(
    session, world, tmp_path, viewer, sees
) -> None:
    row = await entry_with_photo(session, world.member_a, world.branch_a, EvidenceStore(tmp_path))
    actor = await world.actor(session, getattr(world, viewer))
    if sees:
        assert (await evidence.photo_for_viewer(session, actor, row.id)).key == row.evidence_path
    else:
        with pytest.raises(NotFound):
            await evidence.photo_for_viewer(session, actor, row.id)


async def test_no_kept_photo_is_not_found(session, world) -> None:
    row = ServiceEntry(
        person_id=world.member_a.id,
        org_id=world.branch_a.id,
        day=date(2026, 11, 19),
        minutes=60,
        action="volunteer",
        description="x",
    )
    session.add(row)
    await session.flush()
    with pytest.raises(NotFound):
        await evidence.photo_for_viewer(session, await world.actor(session, world.secretary_a), row.id)


async def test_erasure_deletes_the_photos_and_the_paths(session, world, tmp_path) -> None:
    store = EvidenceStore(tmp_path)
    mine = await entry_with_photo(session, world.member_a, world.branch_a, store)
    theirs = await entry_with_photo(session, world.member_a2, world.branch_a, store)
    key = mine.evidence_path
    actor = await world.actor(session, world.member_a)
    await privacy.erase_person(session, actor, world.member_a.id, NOW, store)
    await session.refresh(mine)
    assert (mine.evidence_file_id, mine.evidence_path) == (None, None)
    assert store.read(key) is None and not (tmp_path / str(world.member_a.id)).exists()
    assert store.read(theirs.evidence_path) == (PNG, "image/png")
