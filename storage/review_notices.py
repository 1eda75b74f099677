"""Telling members the outcome of a review done outside the chat (the admin web): one outbox
message per reviewed entry, in the member's language, sent by the delivery worker.

The dedupe key is per entry and outcome ("review:<entry id>:<status>"), so enqueueing the same
outcome twice sends it once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import texts
from content.pack import Pack
from storage.models import EntryStatus
from storage.outbox import OutMessage, enqueue_many
from storage.service_log import ReviewOutcome

KIND = "text"


def review_payload(outcome: ReviewOutcome, pack: Pack) -> dict[str, Any]:
    e = outcome.entry
    _ = texts(outcome.locale)
    action = pack.action(e.action)
    params = {
        "day": e.day.isoformat(),
        "hours": f"{e.minutes / 60:g}",
        "action": action.title.get(_.locale) if action else e.action,
    }
    if e.status is EntryStatus.APPROVED:
        text = _("log.approved_notice", **params)
    else:
        text = _("log.rejected_notice", reason=e.reason or "", **params)
    return {"method": "sendMessage", "text": text, "parse_mode": "HTML"}


async def enqueue_review_notices(
    s: AsyncSession, outcomes: Iterable[ReviewOutcome], *, now: datetime, pack: Pack
) -> int:
    """Queue a message for every reachable member among `outcomes`; return how many were queued."""
    messages = [
        OutMessage(
            kind=KIND,
            chat_id=o.telegram_id,
            dedupe_key=f"review:{o.entry.id}:{o.entry.status.value}",
            payload=review_payload(o, pack),
            person_id=o.person_id,
            not_before=now,
        )
        for o in outcomes
        if o.reachable and o.telegram_id is not None
    ]
    return len(await enqueue_many(s, messages, now=now)) if messages else 0
