"""Fetching a member's evidence photo from Telegram into the local evidence store, once.

The chat shows a photo again by its file id; the admin web needs the bytes. So right after an
entry with a photo is recorded (and committed), the bot asks getFile for the download path,
downloads the file and keeps it (storage/evidence.py), and records where. A photo already kept
is not fetched again. A failure (Telegram down, file too large) is logged without personal data
and left for the next chance: /pending fetches what is still missing for the entries it lists.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiohttp import ClientError
from sqlalchemy.ext.asyncio import AsyncSession

from storage import evidence
from storage.evidence import EvidenceStore
from storage.models import ServiceEntry

log = logging.getLogger(__name__)


async def keep_photos(
    bot: Bot, s: AsyncSession, store: EvidenceStore, entries: Iterable[ServiceEntry]
) -> int:
    """Fetch and keep the photos of `entries` not kept yet, committing each; how many were kept."""
    kept = 0
    for entry in entries:
        if not entry.evidence_file_id or entry.evidence_path or entry.person_id is None:
            continue
        try:
            file = await bot.get_file(entry.evidence_file_id)
            if file.file_path is None:
                continue
            data = await bot.download_file(file.file_path)
            assert data is not None  # without a destination aiogram returns the bytes
            key = store.put(entry.person_id, data.read())
        except (TelegramAPIError, ClientError, TimeoutError, ValueError) as e:
            log.warning("evidence photo of entry %s not fetched: %s", entry.id, type(e).__name__)
            continue
        await evidence.attach(s, entry.id, key)
        await s.commit()
        kept += 1
    return kept
