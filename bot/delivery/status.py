"""The sender's status message: "sent 120 of 300", edited at most every `status_interval`
seconds while a notice goes out, and once more with the final counts."""

from __future__ import annotations

import asyncio
import logging

from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import EditMessageText
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.delivery.jobs import EditJob
from bot.gate import bulk
from bot.gate.pacing import REQUEST_TIMEOUT
from content.i18n import normalize_locale, texts
from storage import notices as notices_store
from storage.models import Delivery, DeliveryStatus, Notice, NoticeStatus, Person

log = logging.getLogger("branchbot.delivery")


NOT_MODIFIED = "message is not modified"


class StatusMessages:
    """The worker's status-message seam (a mixin of DeliveryWorker)."""

    async def _status_loop(self, done: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            self._wake_status.clear()
            now = loop.time()
            due = [
                n
                for n, final in self._dirty.items()
                if final or now - self._last_edit.get(n, -1e9) >= self.status_interval
            ]
            if due:
                flags = {n: self._dirty[n] for n in due}
                try:
                    await self._queue_edits(due)
                except Exception as e:
                    for n, final in flags.items():  # read again next round
                        self._dirty[n] = self._dirty.get(n, False) or final
                    self.stats.db_errors += 1
                    log.warning("reading notice progress failed (%s)", type(e).__name__)
                    await self._sleep(self._wake_status, min(self.db_backoff * 2, 5.0))
                    continue
            waits = [
                self._last_edit.get(n, -1e9) + self.status_interval - now for n in self._dirty if n not in due
            ]
            await self._sleep(self._wake_status, max(0.01, min(waits, default=self.status_interval)))

    async def _queue_edits(self, notice_ids: list[int]) -> None:
        self._reading_status = True
        try:
            await self._read_status(notice_ids)
        finally:
            self._reading_status = False
        self._wake_dispatcher.set()

    async def _read_status(self, notice_ids: list[int]) -> None:
        loop = asyncio.get_running_loop()
        async with self.sm() as s:
            for n in notice_ids:
                final = self._dirty.pop(n, False)
                notice = await s.get(Notice, n)
                if notice is None or notice.status_chat_id is None or notice.status_message_id is None:
                    continue
                counts = await _notice_counts(s, n)
                locale = None
                if notice.sender_id is not None:
                    locale = await s.scalar(select(Person.locale).where(Person.id == notice.sender_id))
                _ = texts(normalize_locale(locale))
                done = notice.status is NoticeStatus.DONE
                text = _("notices.status.done" if done else "notices.status.progress", **counts)
                if text == self._last_text.get(n):
                    continue
                self._last_edit[n] = loop.time()
                # One edit per notice in the queue: a newer count replaces an older one.
                self._edits = [e for e in self._edits if e.notice_id != n]
                self._edits.append(
                    EditJob(n, notice.status_chat_id, notice.status_message_id, text, final or done)
                )

    async def _edit(self, job: EditJob) -> None:
        try:
            with bulk():
                await self.bot(
                    EditMessageText(
                        chat_id=job.chat_id, message_id=job.message_id, text=job.text, parse_mode="HTML"
                    ),
                    request_timeout=REQUEST_TIMEOUT,
                )
        except TelegramRetryAfter:
            self.stats.rate_limited += 1  # the gate has paused every call; the edit comes again
            self._dirty[job.notice_id] = self._dirty.get(job.notice_id, False) or job.final
            return
        except TelegramBadRequest as e:
            if NOT_MODIFIED not in str(e.message):
                log.info("status of notice %s: edit refused (%s)", job.notice_id, type(e).__name__)
                return
        except (TelegramServerError, TelegramNetworkError, ClientDecodeError, OSError, TimeoutError) as e:
            log.info("status of notice %s: %s, will try again", job.notice_id, type(e).__name__)
            self._dirty[job.notice_id] = self._dirty.get(job.notice_id, False) or job.final
            return
        except TelegramAPIError as e:
            log.info("status of notice %s: edit refused (%s)", job.notice_id, type(e).__name__)
            return
        self.stats.edits += 1
        self._last_text[job.notice_id] = job.text
        if job.final:  # nothing more to say about this notice: forget it
            self._last_edit.pop(job.notice_id, None)
            self._last_text.pop(job.notice_id, None)

    # -- stopping --


async def _notice_counts(s: AsyncSession, notice_id: int) -> dict[str, int]:
    rows = await s.execute(
        select(Delivery.status, func.count())
        .where(Delivery.notice_id == notice_id, Delivery.kind == notices_store.KIND_NOTICE)
        .group_by(Delivery.status)
    )
    by = {DeliveryStatus(st): int(n) for st, n in rows}
    return {
        "sent": by.get(DeliveryStatus.SENT, 0),
        "failed": by.get(DeliveryStatus.FAILED, 0),
        "blocked": by.get(DeliveryStatus.BLOCKED, 0),
        "pending": by.get(DeliveryStatus.PENDING, 0),
        "total": sum(by.values()),
    }
