"""Evidence photos: the local copy of each photo a member sends with a service entry.

Telegram keeps the photo and gives the bot a file id, which the chat reuses to show it again
(nothing is uploaded twice). The admin web cannot use a file id, so the bot fetches each photo
once (getFile, then the file download URL) right after the entry is recorded and keeps the
bytes here; the row's `evidence_path` says where.

The store is a folder (its location is a setting the fronts pass in; nothing here reads
settings). Files sit in one folder per person, `<person id>/<sha256>.<ext>`, so erasing a
person removes their folder, and the same photo sent twice is kept once. A path read back from
the database is checked against that shape before it touches the file system.

Who may see a photo is the same rule as who may see the entry: `photo_for_viewer` refuses
(NotFound, as for any record outside one's scope) before any file is read.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.access import Actor
from storage.errors import NotFound
from storage.models import Org, ServiceEntry

MAX_BYTES = 20 * 1024 * 1024  # Telegram's own download limit for bots
_KEY = re.compile(r"^(?P<person>\d{1,12})/[0-9a-f]{64}\.(?P<ext>jpg|png|gif|webp)$")
MIME = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp"}


def image_ext(data: bytes) -> str | None:
    """The extension of a JPEG, PNG, GIF or WebP by its first bytes; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


class EvidenceStore:
    """A folder of evidence photos, one subfolder per person."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def put(self, person_id: int, data: bytes) -> str:
        """Keep `data` for `person_id`; the key to store in the entry. ValueError if it is not an
        image or too large (a file id is not proof that the bytes are a photo)."""
        ext = image_ext(data)
        if ext is None or len(data) > MAX_BYTES:
            raise ValueError("not an image the evidence store keeps")
        key = f"{int(person_id)}/{hashlib.sha256(data).hexdigest()}.{ext}"
        path = self.root / key
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside and renamed: a reader never sees half a file.
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return key

    def path(self, key: str) -> Path | None:
        """The file of a key of the store's own shape; None for anything else."""
        return self.root / key if _KEY.match(key or "") else None

    def read(self, key: str) -> tuple[bytes, str] | None:
        """(bytes, mime type) of a stored photo, or None if the key is malformed or the file gone."""
        path = self.path(key)
        if path is None or not path.is_file():
            return None
        m = _KEY.match(key)
        assert m is not None
        return path.read_bytes(), MIME[m["ext"]]

    def delete_person(self, person_id: int) -> int:
        """Remove every photo kept for a person; how many files went."""
        folder = self.root / str(int(person_id))
        if not folder.is_dir():
            return 0
        n = sum(1 for p in folder.iterdir() if p.is_file())
        shutil.rmtree(folder)
        return n


@dataclass(frozen=True, slots=True)
class Photo:
    entry_id: int
    key: str


async def attach(s: AsyncSession, entry_id: int, key: str) -> None:
    """Record where the entry's photo was kept."""
    entry = await s.get(ServiceEntry, entry_id)
    if entry is None:
        raise NotFound()
    entry.evidence_path = key
    await s.flush()


async def photo_for_viewer(s: AsyncSession, actor: Actor, entry_id: int) -> Photo:
    """The kept photo of an entry the actor may see (its author, or someone managing its org).
    NotFound for anything else: no photo, not kept yet, or outside the actor's scope."""
    row = (
        await s.execute(
            select(ServiceEntry.id, ServiceEntry.evidence_path)
            .join(Org, Org.id == ServiceEntry.org_id)
            .where(
                ServiceEntry.id == entry_id,
                or_(ServiceEntry.person_id == actor.person_id, actor.scope_filter(Org.path)),
            )
        )
    ).one_or_none()
    if row is None or not row.evidence_path:
        raise NotFound()
    return Photo(row.id, row.evidence_path)
