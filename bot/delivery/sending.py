"""Sending one claimed row and recording its outcome:

- sent                  -> mark_sent with Telegram's message id;
- 403 Forbidden         -> mark_blocked (the person is marked unreachable) and go on;
- 429 retry_after       -> every call of this bot waits until it has passed (the gate sees to
                           that: Telegram's retry_after covers the bot, not one message), and
                           the row is retried;
- 5xx, network errors   -> retried with exponential backoff, given up after outbox.MAX_ATTEMPTS;
- 400 and other refusals of the message itself -> mark_failed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta
from typing import Any

from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import SendDocument, SendMessage, SendPhoto
from aiogram.methods.base import TelegramMethod
from pydantic import ValidationError

from bot.delivery.jobs import Outcome, SendJob
from bot.gate import bulk, not_sent
from bot.gate.pacing import PAUSE_MARGIN, REQUEST_TIMEOUT
from storage import notices as notices_store
from storage import outbox
from storage.errors import NotFound

log = logging.getLogger("branchbot.delivery")


SEND_METHODS: dict[str, type[TelegramMethod[Any]]] = {
    "sendMessage": SendMessage,
    "sendPhoto": SendPhoto,
    "sendDocument": SendDocument,
}


class BadPayload(ValueError):
    pass


def build_method(chat_id: int, payload: dict[str, Any]) -> TelegramMethod[Any]:
    """The aiogram method for an outbox payload (see storage/outbox.py for its shape)."""
    fields = dict(payload)
    name = fields.pop("method", "sendMessage")
    cls = SEND_METHODS.get(name)
    if cls is None:
        raise BadPayload(f"unknown method {name!r}")
    try:
        return cls(chat_id=chat_id, **fields)
    except (ValidationError, TypeError) as e:
        raise BadPayload(type(e).__name__) from None


def _error_text(e: BaseException) -> str:
    msg = getattr(e, "message", None)
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


class Sending:
    """The worker's sending seam (a mixin of DeliveryWorker)."""

    def _backoff(self, attempts: int) -> float:
        base = min(self.retry_max, self.retry_base * 2**attempts)
        return base * random.uniform(0.8, 1.2)

    async def _send(self, job: SendJob) -> None:
        loop = asyncio.get_running_loop()
        out: Outcome
        try:
            with bulk():  # admitted by the dispatcher; the gate counts the answer
                result = await self.bot(job.method, request_timeout=REQUEST_TIMEOUT)
        except TelegramRetryAfter as e:
            # The gate has already paused every call of the bot for retry_after.
            self.stats.rate_limited += 1
            log.info("delivery %s: 429, every send waits %s s", job.id, e.retry_after)
            out = Outcome(
                job.id,
                job.notice_id,
                "retry",
                not_before=self.clock.now() + timedelta(seconds=e.retry_after + PAUSE_MARGIN),
                error="TelegramRetryAfter",
                count_attempt=False,
            )
        except TelegramForbiddenError:
            out = Outcome(job.id, job.notice_id, "blocked")
        except TelegramUnauthorizedError as e:
            # The token itself is refused: hold every send a while rather than burning attempts.
            log.error("delivery %s: the bot token was refused; pausing sends", job.id)
            await self.gate.state.pause(60)
            out = self._retry(job, e, delay=60, count=False)
        except TelegramMigrateToChat as e:
            out = Outcome(job.id, job.notice_id, "failed", error=_error_text(e))
        except (TelegramServerError, TelegramNetworkError, ClientDecodeError, OSError, TimeoutError) as e:
            log.info("delivery %s: %s, will retry", job.id, type(e).__name__)
            # Telegram unreachable (its front end's 502-504, no connection) is not the message's
            # fault: like a 429 it uses up no attempt, so an outage of any length loses nothing.
            out = self._retry(job, e, count=not not_sent(e))
        except TelegramAPIError as e:
            # 400 Bad Request, 404, 413...: the message itself is refused; retrying cannot help.
            log.info("delivery %s: refused (%s)", job.id, type(e).__name__)
            out = Outcome(job.id, job.notice_id, "failed", error=_error_text(e))
        except Exception as e:
            log.warning("delivery %s: unexpected %s, will retry", job.id, type(e).__name__)
            out = self._retry(job, e)
        else:
            now = loop.time()
            if self.stats.first_send is None:
                self.stats.first_send = now
            self.stats.last_send = now
            out = Outcome(job.id, job.notice_id, "sent", message_id=getattr(result, "message_id", None))
        self._finish(job, out)

    def _retry(
        self, job: SendJob, e: BaseException, *, delay: float | None = None, count: bool = True
    ) -> Outcome:
        wait = delay if delay is not None else self._backoff(job.attempts)
        return Outcome(
            job.id,
            job.notice_id,
            "retry",
            not_before=self.clock.now() + timedelta(seconds=wait),
            error=_error_text(e),
            count_attempt=count,
        )

    def _finish(self, job: SendJob, out: Outcome) -> None:
        self._queued_ids.discard(job.id)
        self._record(out)

    def _record(self, out: Outcome) -> None:
        self.stats.outcomes[out.kind] = self.stats.outcomes.get(out.kind, 0) + 1
        if out.kind == "sent":
            self.stats.sent += 1
        elif out.kind == "blocked":
            self.stats.blocked += 1
        elif out.kind == "failed":
            self.stats.failed += 1
        else:
            self.stats.retried += 1
        self._outcomes.append(out)
        self._wake_recorder.set()

    async def _recorder(self, done: asyncio.Event) -> None:
        failures = 0
        while True:
            if not self._outcomes:
                if done.is_set() and not self._in_flight:
                    return
                self._wake_recorder.clear()
                await self._sleep(self._wake_recorder, 1.0)
                continue
            batch, self._outcomes = self._outcomes, []
            self._writing = True
            try:
                finished = await self._write(batch)
                failures = 0
            except Exception as e:
                failures += 1
                self.stats.db_errors += 1
                log.warning("recording %d outcomes failed (%s); retrying", len(batch), type(e).__name__)
                self._outcomes[:0] = batch
                if done.is_set() and failures >= 5:
                    log.error("giving up recording %d outcomes; their rows will be sent again", len(batch))
                    self._outcomes.clear()
                    self._writing = False
                    return
                await asyncio.sleep(min(self.db_backoff * 2 ** (failures - 1), 5.0))
                continue
            finally:
                self._writing = False
            touched = {o.notice_id for o in batch if o.notice_id is not None}
            for n in touched:
                self._dirty[n] = self._dirty.get(n, False) or n in finished
            if finished:
                self._wake_status.set()
            self._wake_feeder.set()

    async def _write(self, batch: list[Outcome]) -> set[int]:
        """Write outcomes in one transaction; return the notices that are now DONE."""
        now = self.clock.now()
        notice_ids: set[int] = set()
        async with self.sm() as s:
            for o in batch:
                try:
                    if o.kind == "sent":
                        await outbox.mark_sent(s, o.delivery_id, o.message_id, now)
                    elif o.kind == "blocked":
                        await outbox.mark_blocked(s, o.delivery_id, now)
                    elif o.kind == "failed":
                        await outbox.mark_failed(s, o.delivery_id, o.error)
                    else:
                        assert o.not_before is not None
                        await outbox.mark_retry(
                            s, o.delivery_id, o.not_before, o.error, count_attempt=o.count_attempt
                        )
                except NotFound:
                    continue  # the row went with its notice or person
                if o.notice_id is not None:
                    notice_ids.add(o.notice_id)
            finished = {n for n in sorted(notice_ids) if await notices_store.finish_if_done(s, n, now)}
            await s.commit()
        return finished

    # -- the sender's status message --
