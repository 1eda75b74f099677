"""Claiming due outbox rows (with a lease, so several workers take disjoint rows), finding when
the next one is due, and giving back what was claimed but not sent."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import case, func, select, update

from bot.delivery.jobs import Outcome, SendJob
from bot.delivery.sending import BadPayload, build_method
from storage import notices as notices_store
from storage import outbox
from storage.models import Delivery, DeliveryStatus

log = logging.getLogger("branchbot.delivery")


class Claiming:
    """The worker's claiming seam (a mixin of DeliveryWorker)."""

    async def _claim(self) -> int:
        now = self.clock.now()
        async with self.sm() as s:
            rows = await outbox.claim_due(s, self.worker_id, now, self.batch, self.lease_seconds)
            # Only a notice's own rows count towards its status (a nudge about it does not).
            claimed = [
                (
                    r.id,
                    r.chat_id,
                    dict(r.payload or {}),
                    r.claimed_until,
                    r.notice_id if r.kind == notices_store.KIND_NOTICE else None,
                    r.attempts,
                )
                for r in rows
            ]
            await s.commit()
        for rid, chat_id, payload, until, notice_id, attempts in claimed:
            if rid in self._queued_ids:
                continue
            try:
                method = build_method(chat_id, payload)
            except BadPayload as e:
                # Checked before pacing: a payload Telegram would refuse never takes a send slot.
                log.warning("delivery %s: unusable payload (%s)", rid, e)
                self._record(Outcome(rid, notice_id, "failed", error=f"payload: {e}"))
                continue
            self._queued_ids.add(rid)
            self._sends.append(SendJob(rid, chat_id, method, until, notice_id, attempts))
        if claimed:
            log.debug("worker %s claimed %d deliveries", self.worker_id, len(claimed))
        return len(claimed)

    async def _next_due_in(self, horizon: float) -> float | None:
        """Seconds until the next pending row can be claimed, if that is within `horizon`."""
        if horizon <= 0:
            return None
        now = self.clock.now()
        free_at = case(
            (
                Delivery.claimed_until.is_not(None) & (Delivery.claimed_until > Delivery.not_before),
                Delivery.claimed_until,
            ),
            else_=Delivery.not_before,
        )
        try:
            async with self.sm() as s:
                nxt = await s.scalar(
                    select(func.min(free_at)).where(Delivery.status == DeliveryStatus.PENDING)
                )
        except Exception as e:
            log.warning("looking for pending deliveries failed (%s)", type(e).__name__)
            return 0.5
        if nxt is None:
            return None
        if isinstance(nxt, str):  # in case a backend hands the CASE back untyped
            nxt = datetime.fromisoformat(nxt)
        if nxt.tzinfo is None:
            nxt = nxt.replace(tzinfo=UTC)
        wait = (nxt - now).total_seconds()
        return wait if wait <= horizon else None

    async def _release_unsent(self) -> None:
        """Give back rows claimed but not sent, so a restart or another worker takes them at once."""
        ids = [j.id for j in self._sends]
        self._sends.clear()
        self._queued_ids.difference_update(ids)
        if not ids:
            return
        try:
            async with self.sm() as s:
                await s.execute(
                    update(Delivery)
                    .where(
                        Delivery.id.in_(ids),
                        Delivery.claimed_by == self.worker_id,
                        Delivery.status == DeliveryStatus.PENDING,
                    )
                    .values(claimed_by=None, claimed_until=None)
                    .execution_options(synchronize_session=False)
                )
                await s.commit()
        except Exception as e:
            log.warning("releasing %d unsent deliveries failed (%s)", len(ids), type(e).__name__)
