"""Frozen submissions: a document sent upward, kept exactly as it was sent.

Whatever goes upward (a branch's 报送, a year's 述职 packet, ...) is stored here at the moment
it is sent: its figures (JSON, shaped by the caller) and its file's bytes with their sha256.
Opening it later returns those, never a fresh computation, so what the committee received and
what anyone opens afterwards are the same figures and the same file. `changes` compares the
frozen figures with a fresh run, so a surface can say what moved since it was sent.

Rows are only ever added: a resubmission of the same kind, org and period is a new row and the
newest one counts (`latest`), so an earlier submission is never rewritten. Each freeze writes
an audit row `<kind>.submit`. The caller checks the rule for who may submit; `freeze` and
`latest` check only that the actor manages the org.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.access import MANAGER_ROLES, Actor, require_manager
from storage.models import Role, Submission


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def freeze(
    s: AsyncSession,
    actor: Actor,
    *,
    kind: str,
    org_id: int,
    period_start: date,
    period_end: date,
    figures: Mapping[str, Any],
    file_name: str,
    data: bytes,
    now: datetime,
    roles: Iterable[Role] = MANAGER_ROLES,
) -> Submission:
    """Store what is being sent, as sent. `figures` must be JSON-ready (it is stored as JSON)."""
    await require_manager(s, actor, org_id, roles)
    row = Submission(
        kind=kind,
        org_id=org_id,
        period_start=period_start,
        period_end=period_end,
        figures=dict(figures),
        file_name=file_name,
        file_bytes=bytes(data),
        sha256=sha256(data),
        submitted_by_id=actor.person_id if actor.person_id != audit.SYSTEM_PERSON_ID else None,
        submitted_at=now,
    )
    s.add(row)
    await s.flush()
    await audit.record(
        s,
        actor,
        f"{kind}.submit",
        org_id=org_id,
        detail={
            "submission_id": row.id,
            "from": period_start.isoformat(),
            "to": period_end.isoformat(),
            "sha256": row.sha256,
        },
        now=now,
    )
    return row


async def latest(
    s: AsyncSession,
    actor: Actor,
    *,
    kind: str,
    org_id: int,
    period_start: date,
    period_end: date,
    roles: Iterable[Role] = MANAGER_ROLES,
) -> Submission | None:
    """The newest submission of this kind for exactly this org and period, or None."""
    await require_manager(s, actor, org_id, roles)
    return await s.scalar(
        select(Submission)
        .where(
            Submission.kind == kind,
            Submission.org_id == org_id,
            Submission.period_start == period_start,
            Submission.period_end == period_end,
        )
        .order_by(Submission.id.desc())
        .limit(1)
    )


def intact(row: Submission) -> bool:
    """The stored bytes still hash to the stored sha256."""
    return sha256(row.file_bytes) == row.sha256


@dataclass(frozen=True, slots=True)
class Change:
    """One figure that differs: its path in the figures ("commitments.made"), then and now.
    A figure present on one side only has None on the other."""

    path: tuple[str, ...]
    then: Any
    now: Any

    @property
    def key(self) -> str:
        return ".".join(self.path)


def _flat(value: Any, prefix: tuple[str, ...], out: dict[tuple[str, ...], Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flat(v, (*prefix, str(k)), out)
    else:
        out[prefix] = value


def changes(then: Mapping[str, Any], now: Mapping[str, Any], *, ignore: Iterable[str] = ()) -> list[Change]:
    """The leaf figures that differ between two figure dicts (nested dicts are walked; lists
    are compared whole), in the order of `then` and then the ones only `now` has. Paths that
    start with a key in `ignore` are skipped."""
    skip = set(ignore)
    a: dict[tuple[str, ...], Any] = {}
    b: dict[tuple[str, ...], Any] = {}
    _flat(then, (), a)
    _flat(now, (), b)
    keys = list(a) + [k for k in b if k not in a]
    return [Change(k, a.get(k), b.get(k)) for k in keys if k and k[0] not in skip and a.get(k) != b.get(k)]
