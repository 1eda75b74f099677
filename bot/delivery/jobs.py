"""What the delivery worker's parts pass around: claimed sends, status edits, outcomes, counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiogram.methods.base import TelegramMethod


@dataclass(slots=True)
class SendJob:
    id: int
    chat_id: int
    method: TelegramMethod[Any]
    claimed_until: datetime | None
    notice_id: int | None
    attempts: int


@dataclass(slots=True)
class EditJob:
    notice_id: int
    chat_id: int
    message_id: int
    text: str
    final: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: int
    notice_id: int | None
    kind: str  # sent | blocked | retry | failed
    message_id: int | None = None
    not_before: datetime | None = None
    error: str = ""
    count_attempt: bool = True


@dataclass
class WorkerStats:
    """What the worker did, for logs and the benchmark (counts only)."""

    sent: int = 0
    blocked: int = 0
    failed: int = 0
    retried: int = 0
    rate_limited: int = 0  # 429 answers
    lease_dropped: int = 0  # claimed rows left unsent because their lease was running out
    edits: int = 0
    db_errors: int = 0
    first_send: float | None = None  # loop time
    last_send: float | None = None
    paused_seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
