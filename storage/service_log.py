"""The service log: members record volunteer service; the branch's secretary (or staff above) reviews it.

Rules: no future days, nothing older than the log window, at most 24 hours per person per day
(pending and approved entries count, rejected ones do not), only members and secretaries of a
branch may log, and nobody reviews their own entries. A new entry that looks like one the person
already has (same day and action, and the same duration or the same description once spaces and
punctuation are ignored) is a `PossibleDuplicate` unless the caller says the person confirmed it;
reviewers see the same rule's marks (`possible_duplicates`). A secretary's own entries go to the staff
above, so they appear in staff's pending list and not in any secretary's.

The chat's quick form is parsed here too, by pure functions (`parse_duration`, `parse_day`,
`parse_quick_log`) that raise `ParseError` with a catalog key.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import JSON, Date, and_, bindparam, case, exists, extract, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

from content.pack import Pack
from storage import audit
from storage.access import Actor, require_person_access
from storage.db import dialect_insert
from storage.direct import Direct, fetch
from storage.errors import Forbidden, Invalid, NotFound, Refused
from storage.models import EntryStatus, Membership, Org, Pairing, Person, Role, ServiceEntry
from storage.validation import parse

DAY_MINUTES = 24 * 60
MAX_BATCH = 200
REASON_MAX = 300
DESCRIPTION_MAX = 500


class PossibleDuplicate(Refused):
    """The entry matches one the person already has; `other` is that entry. Nothing was written."""

    default_key = "log.possible_duplicate"

    def __init__(self, other: ServiceEntry) -> None:
        super().__init__(other_id=other.id, day=other.day.isoformat(), hours=hours_text(other.minutes))
        self.other = other


def hours_text(minutes: int) -> str:
    """Minutes as hours for a refusal's words ("20", "1.5", "1.33"): the chat and the web speak hours."""
    return f"{minutes / 60:.2f}".rstrip("0").rstrip(".")


class ParseError(Refused):
    """The chat text could not be read as hours, a day or a quick log line."""

    default_key = "log.quick_usage"


# ---------------------------------------------------------------------------------------------
# Input


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(v: Any) -> Any:
    """Drop control characters (keeping newline and tab) and strip as Python does, so text made
    only of invisible characters counts as empty."""
    return _CONTROL.sub("", v).strip() if isinstance(v, str) else v


class NewEntry(BaseModel):
    """What a person may submit; pydantic rejects the rest before any rule runs."""

    model_config = ConfigDict(str_strip_whitespace=True, frozen=True, extra="forbid")

    day: date
    minutes: int = Field(gt=0, le=DAY_MINUTES, json_schema_extra={"error_key": "log.bad_minutes"})
    action: str = Field(min_length=1, max_length=40, json_schema_extra={"error_key": "log.unknown_action"})
    place: str = Field(default="", max_length=100, json_schema_extra={"error_key": "log.bad_place"})
    description: str = Field(
        min_length=1, max_length=DESCRIPTION_MAX, json_schema_extra={"error_key": "log.bad_description"}
    )
    organizer: str | None = Field(default=None, max_length=200)
    person_in_charge: str | None = Field(default=None, max_length=100)
    evidence_file_id: str | None = Field(default=None, max_length=200)
    pairing_id: int | None = None

    _clean = field_validator("place", "description", "organizer", "person_in_charge", mode="before")(
        clean_text
    )


def new_entry(**data: Any) -> NewEntry:
    """Validate submitted fields; `Invalid` with a catalog key on failure."""
    return parse(NewEntry, **data)


# ---------------------------------------------------------------------------------------------
# Logging


async def log_service(
    s: AsyncSession,
    actor: Actor,
    entry: NewEntry,
    *,
    source: str | None,
    today: date,
    window_days: int,
    pack: Pack,
    allow_duplicate: bool = True,
) -> ServiceEntry:
    """Record one pending entry for the actor in their branch.

    With `allow_duplicate=False` an entry matching one the person already has raises
    `PossibleDuplicate` (the chat asks first, then calls again with True once confirmed).

    `source` ("chat_id:message_id") makes redelivery harmless: if an entry with that source
    exists for this person, it is returned unchanged and no rule is re-checked (the day may be
    full by now *because of* that entry). The same source from another person is refused.
    """
    # Serialize one person's logging (a PostgreSQL row lock; SQLite's write lock already does),
    # so two deliveries at once cannot both fit into the same remaining hours, and a redelivery
    # waiting here sees the first delivery's row below.
    await s.execute(select(Person.id).where(Person.id == actor.person_id).with_for_update())
    if source is not None:
        existing = await _by_source(s, source)
        if existing is not None:
            if existing.person_id != actor.person_id:
                raise Refused("log.duplicate_source")
            return existing
    branch_id = actor.home_branch_id()
    if branch_id is None:
        raise Refused("log.not_member")
    if entry.day > today:
        raise Refused("log.future_date")
    if (today - entry.day).days > window_days:
        raise Refused("log.too_old", days=window_days)
    if pack.action(entry.action) is None:
        raise Refused("log.unknown_action")
    if entry.pairing_id is not None:
        await _require_pairing(s, entry.pairing_id, branch_id)

    await check_day_room(s, actor.person_id, entry.day, entry.minutes)
    if not allow_duplicate:
        other = await find_duplicate(
            s, actor.person_id, entry.day, entry.action, entry.minutes, entry.description
        )
        if other is not None:
            raise PossibleDuplicate(other)

    # One INSERT: a second delivery of the same message that got past the lock above (another
    # process, before this one's commit) finds its source taken and leaves no error behind, so
    # no savepoint is needed to keep the transaction usable. RETURNING hands back the row as
    # the ORM object the callers read (no flush, no second SELECT).
    insert = dialect_insert(s.bind.dialect.name)
    stmt = insert(ServiceEntry).values(
        person_id=actor.person_id,
        org_id=branch_id,
        status=EntryStatus.PENDING,
        source=source,
        **entry.model_dump(),
    )
    if source is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=[ServiceEntry.source])
    row = await s.scalar(stmt.returning(ServiceEntry))
    if row is None:
        # A concurrent delivery of the same message won the race: answer with its row.
        existing = await _by_source(s, source) if source is not None else None
        if existing is None or existing.person_id != actor.person_id:
            raise Refused("log.duplicate_source")
        return existing
    await audit.record_now(
        s,
        actor,
        "entry.log",
        subject_person_id=actor.person_id,
        org_id=branch_id,
        detail={"entry_id": row.id},
    )
    return row


# Built once with bound parameters and run straight on the driver (`storage.direct`): it runs
# on every /log line (a quick one reads its days ahead instead: below).
_DAY_DONE = Direct(
    select(func.coalesce(func.sum(ServiceEntry.minutes), 0)).where(
        ServiceEntry.person_id == bindparam("person_id"),
        ServiceEntry.day == bindparam("day"),
        ServiceEntry.status != EntryStatus.REJECTED,
    )
)


# The day totals a quick `/log` line most likely names, read in the statement that reads the
# person writing (with the update's claim on PostgreSQL: `storage.updates.claim_update_with_person`;
# `storage.people.chat_person` on SQLite): the chat's first check of the day's room then makes no
# statement of its own. (person id, first day, last day, {day: minutes}).
_READ_AHEAD = "day_totals_read_ahead"


def day_totals_select(person_id: ColumnElement[Any], dialect: str) -> ScalarSelect[Any]:
    """The person's counted entries from `days_from` to `days_to` (bound parameters) as a JSON
    list of [day, minutes] (NULL or [] for none), for a statement that reads them along with its
    own. PostgreSQL and SQLite each have their own JSON functions."""
    pair, group = (
        (func.json_build_array, func.json_agg)
        if dialect == "postgresql"
        else (func.json_array, func.json_group_array)
    )
    return (
        select(group(pair(ServiceEntry.day, ServiceEntry.minutes), type_=JSON))
        .where(
            ServiceEntry.person_id == person_id,
            ServiceEntry.day >= bindparam("days_from", type_=Date),
            ServiceEntry.day <= bindparam("days_to", type_=Date),
            ServiceEntry.status != EntryStatus.REJECTED,
        )
        .scalar_subquery()
    )


def remember_day_totals(
    s: AsyncSession, person_id: int, first: date, last: date, pairs: list[Any] | None
) -> None:
    """Keep what `day_totals_select` read for the next `day_room(..., read_ahead=True)`."""
    totals: dict[date, int] = {}
    for day, minutes in pairs or ():
        d = date.fromisoformat(day)
        totals[d] = totals.get(d, 0) + int(minutes)
    s.info[_READ_AHEAD] = (person_id, first, last, totals)


async def day_room(s: AsyncSession, person_id: int, day: date, *, read_ahead: bool = False) -> int:
    """Minutes the person may still log on `day` (pending and approved entries count). With
    `read_ahead`, the day's total read along with the update's claim is taken if it covers that
    person and day (`remember_day_totals`)."""
    known = s.info.pop(_READ_AHEAD, None)  # one use: it was read before anything this update wrote
    if read_ahead and known is not None and known[0] == person_id and known[1] <= day <= known[2]:
        return max(0, DAY_MINUTES - known[3].get(day, 0))
    rows = await fetch(s, _DAY_DONE, {"person_id": person_id, "day": day})
    return max(0, DAY_MINUTES - int(rows[0][0] or 0))


async def check_day_room(
    s: AsyncSession, person_id: int, day: date, minutes: int, *, read_ahead: bool = False
) -> None:
    """The 24-hour rule, said as soon as the day and the duration are known (the chat asks it
    before the action is picked, `read_ahead` allowed; `log_service` asks it again when writing,
    under the person's lock, always with a query of its own)."""
    left = await day_room(s, person_id, day, read_ahead=read_ahead)
    if minutes > left:
        if left == 0:
            raise Refused("log.day_no_room", day=day.isoformat())
        raise Refused("log.day_full", left=hours_text(left))


# ---------------------------------------------------------------------------------------------
# Possible duplicates


_NOT_WORDS = re.compile(r"[\s\W_]+")


def same_text_key(text: str) -> str:
    """A description as compared for duplicates: width-folded (NFKC), lower case, with spaces and
    punctuation (Chinese or Latin) removed, so "社区义诊。" and "社区 义诊" match."""
    return _NOT_WORDS.sub("", unicodedata.normalize("NFKC", text or "")).lower()


def is_duplicate(a: ServiceEntry | NewEntry, b: ServiceEntry | NewEntry) -> bool:
    """The rule: same day and service action, and the same duration or the same description."""
    if a.day != b.day or a.action != b.action:
        return False
    return a.minutes == b.minutes or (
        bool(same_text_key(a.description)) and same_text_key(a.description) == same_text_key(b.description)
    )


def _same_day_entries(person_id: int, day: date, action: str) -> Any:
    return select(ServiceEntry).where(
        ServiceEntry.person_id == person_id,
        ServiceEntry.day == day,
        ServiceEntry.action == action,
        ServiceEntry.status != EntryStatus.REJECTED,
    )


async def find_duplicate(
    s: AsyncSession, person_id: int, day: date, action: str, minutes: int, description: str
) -> ServiceEntry | None:
    """The person's earliest non-rejected entry that the new one would duplicate, if any."""
    probe = NewEntry.model_construct(day=day, action=action, minutes=minutes, description=description)
    rows = await s.scalars(_same_day_entries(person_id, day, action).order_by(ServiceEntry.id))
    return next((r for r in rows if is_duplicate(r, probe)), None)


async def possible_duplicates(s: AsyncSession, entries: Sequence[ServiceEntry]) -> dict[int, int]:
    """For each of `entries` that matches another non-rejected entry of the same person, that
    other entry's id (the earliest one). One query for the whole list; reviewers see the mark,
    the person already confirmed it in chat."""
    keys = {(e.person_id, e.day) for e in entries if e.person_id is not None}
    if not keys:
        return {}
    people = {p for p, _ in keys}
    days = {d for _, d in keys}
    rows = list(
        await s.scalars(
            select(ServiceEntry)
            .where(
                ServiceEntry.person_id.in_(people),
                ServiceEntry.day.in_(days),
                ServiceEntry.status != EntryStatus.REJECTED,
            )
            .order_by(ServiceEntry.id)
        )
    )
    out: dict[int, int] = {}
    for e in entries:
        if e.person_id is None or e.status is EntryStatus.REJECTED:
            continue
        other = next(
            (r for r in rows if r.id != e.id and r.person_id == e.person_id and is_duplicate(r, e)), None
        )
        if other is not None:
            out[e.id] = other.id
    return out


async def _by_source(s: AsyncSession, source: str) -> ServiceEntry | None:
    return await s.scalar(select(ServiceEntry).where(ServiceEntry.source == source))


async def _require_pairing(s: AsyncSession, pairing_id: int, branch_id: int) -> None:
    found = await s.scalar(
        select(Pairing.id).where(
            Pairing.id == pairing_id,
            or_(Pairing.strong_org_id == branch_id, Pairing.weak_org_id == branch_id),
        )
    )
    if found is None:
        raise Refused("log.bad_pairing")


# ---------------------------------------------------------------------------------------------
# The member's own view


@dataclass(frozen=True, slots=True)
class RejectedEntry:
    id: int
    day: date
    minutes: int
    action: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Summary:
    """The member's /my: approved minutes this month and year by action, what is still open."""

    month_by_action: dict[str, int]
    year_by_action: dict[str, int]
    pending_count: int
    pending_minutes: int
    rejected_count: int  # this year
    rejected: list[RejectedEntry]  # this year's, latest first (at most `REJECTED_SHOWN`)

    @property
    def month_minutes(self) -> int:
        return sum(self.month_by_action.values())

    @property
    def year_minutes(self) -> int:
        return sum(self.year_by_action.values())


REJECTED_SHOWN = 10


async def my_summary(s: AsyncSession, actor: Actor, today: date) -> Summary:
    E = ServiceEntry
    year_start, year_end = date(today.year, 1, 1), date(today.year, 12, 31)
    month_start = today.replace(day=1)
    mine = E.person_id == actor.person_id
    rows = await s.execute(
        select(
            E.action,
            func.sum(case((E.day >= month_start, E.minutes), else_=0)),
            func.sum(E.minutes),
        )
        .where(mine, E.status == EntryStatus.APPROVED, E.day.between(year_start, year_end))
        .group_by(E.action)
        .order_by(E.action)
    )
    month: dict[str, int] = {}
    year: dict[str, int] = {}
    for action, m, y in rows:
        year[action] = int(y)
        if m:
            month[action] = int(m)
    pending = (
        await s.execute(
            select(func.count(E.id), func.coalesce(func.sum(E.minutes), 0)).where(
                mine, E.status == EntryStatus.PENDING
            )
        )
    ).one()
    rejected_this_year = and_(mine, E.status == EntryStatus.REJECTED, E.day.between(year_start, year_end))
    rejected_count = await s.scalar(select(func.count(E.id)).where(rejected_this_year))
    rejected_rows = await s.execute(
        select(E.id, E.day, E.minutes, E.action, E.reason)
        .where(rejected_this_year)
        .order_by(E.reviewed_at.desc(), E.id.desc())
        .limit(REJECTED_SHOWN)
    )
    return Summary(
        month_by_action=month,
        year_by_action=year,
        pending_count=int(pending[0]),
        pending_minutes=int(pending[1]),
        rejected_count=int(rejected_count or 0),
        rejected=[RejectedEntry(*r) for r in rejected_rows],
    )


async def monthly_minutes(s: AsyncSession, actor: Actor, person_id: int, year: int) -> list[int]:
    """Approved minutes in each month of `year` (12 numbers, January first), for a chart."""
    await require_person_access(s, actor, person_id)
    E = ServiceEntry
    month = extract("month", E.day)
    rows = await s.execute(
        select(month, func.sum(E.minutes))
        .where(
            E.person_id == person_id,
            E.status == EntryStatus.APPROVED,
            E.day.between(date(year, 1, 1), date(year, 12, 31)),
        )
        .group_by(month)
    )
    out = [0] * 12
    for m, total in rows:
        out[int(m) - 1] = int(total)
    return out


# ---------------------------------------------------------------------------------------------
# Review


@dataclass(frozen=True, slots=True)
class PendingItem:
    entry: ServiceEntry
    person_name: str | None
    branch_name: str


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    """What the caller needs to tell the member: who, in which language, and the entry itself."""

    entry: ServiceEntry
    person_id: int | None
    telegram_id: int | None
    locale: str | None
    reachable: bool
    name: str | None = None  # the member's name, for the reviewer's "what changed" line


@dataclass(frozen=True, slots=True)
class ReviewBatch:
    done: int
    skipped: int  # no longer pending (reviewed meanwhile): left as they were
    outcomes: list[ReviewOutcome]


def _author_is_secretary() -> ColumnElement[bool]:
    m = Membership
    return exists().where(
        m.person_id == ServiceEntry.person_id,
        m.org_id == ServiceEntry.org_id,
        m.role == Role.SECRETARY,
    )


def reviewable_by(actor: Actor) -> ColumnElement[bool]:
    """Entries this actor may review, as SQL (needs Org joined on the entry's org).

    The same rule as `_check_reviewer`, which `review_many` applies to the rows it is given; the
    review lists here and the admin web's search (storage.entry_search) mark rows with this one.
    """
    not_own = or_(ServiceEntry.person_id.is_(None), ServiceEntry.person_id != actor.person_id)
    above = actor.scope_filter(Org.path, (Role.STAFF, Role.ADMIN))
    as_secretary = and_(actor.scope_filter(Org.path, (Role.SECRETARY,)), ~_author_is_secretary())
    return and_(not_own, or_(above, as_secretary))


async def pending_for(s: AsyncSession, actor: Actor, limit: int = 20, offset: int = 0) -> list[PendingItem]:
    """Entries awaiting this actor's review, oldest first."""
    rows = await s.execute(
        select(ServiceEntry, Person.name, Org.name)
        .join(Org, Org.id == ServiceEntry.org_id)
        .outerjoin(Person, Person.id == ServiceEntry.person_id)
        .where(ServiceEntry.status == EntryStatus.PENDING, reviewable_by(actor))
        .order_by(ServiceEntry.created_at, ServiceEntry.id)
        .limit(max(0, min(limit, 200)))
        .offset(max(0, offset))
    )
    return [PendingItem(e, pname, oname) for e, pname, oname in rows]


async def count_pending_for(s: AsyncSession, actor: Actor) -> int:
    n = await s.scalar(
        select(func.count(ServiceEntry.id))
        .join(Org, Org.id == ServiceEntry.org_id)
        .where(ServiceEntry.status == EntryStatus.PENDING, reviewable_by(actor))
    )
    return int(n or 0)


async def review_states(s: AsyncSession, actor: Actor, ids: Sequence[int]) -> dict[int, EntryStatus]:
    """The status of each of `ids` this actor may review (pending or not): a list the reviewer
    was shown says what became of its entries, and nothing about anyone else's."""
    if not ids:
        return {}
    rows = await s.execute(
        select(ServiceEntry.id, ServiceEntry.status)
        .join(Org, Org.id == ServiceEntry.org_id)
        .where(ServiceEntry.id.in_(list(ids)), reviewable_by(actor))
    )
    return {i: st for i, st in rows}


def _clean_reason(approve: bool, reason: str | None) -> str | None:
    text = clean_text(reason or "")
    if len(text) > REASON_MAX:
        raise Invalid("log.reason_too_long", max=REASON_MAX)
    if not approve and not text:
        raise Refused("log.reason_required")
    return text or None


async def _check_reviewer(s: AsyncSession, actor: Actor, entries: Sequence[ServiceEntry]) -> None:
    """Forbidden unless the actor may review every one of `entries`."""
    org_ids = {e.org_id for e in entries}
    paths = dict((await s.execute(select(Org.id, Org.path).where(Org.id.in_(org_ids)))).all())
    pairs = {(e.person_id, e.org_id) for e in entries if e.person_id is not None}
    secretaries: set[tuple[int, int]] = set()
    if pairs:
        rows = await s.execute(
            select(Membership.person_id, Membership.org_id).where(
                Membership.role == Role.SECRETARY,
                Membership.person_id.in_({p for p, _ in pairs}),
                Membership.org_id.in_(org_ids),
            )
        )
        secretaries = {(p, o) for p, o in rows}
    for e in entries:
        path = paths[e.org_id]
        if e.person_id == actor.person_id:
            raise Forbidden("log.own_entry")
        if (e.person_id, e.org_id) in secretaries:
            # A secretary's own service is checked by the level above, not by a peer.
            if not actor.manages_path(path, (Role.STAFF, Role.ADMIN)):
                raise Forbidden("log.secretary_entry")
        elif not actor.manages_path(path):
            raise Forbidden()


async def _outcome(s: AsyncSession, entry: ServiceEntry) -> ReviewOutcome:
    person = await s.get(Person, entry.person_id) if entry.person_id is not None else None
    return ReviewOutcome(
        entry=entry,
        person_id=entry.person_id,
        telegram_id=person.telegram_id if person else None,
        locale=person.locale if person else None,
        reachable=bool(person and person.reachable),
        name=person.name if person else None,
    )


def _apply(entry: ServiceEntry, actor: Actor, approve: bool, reason: str | None, now: datetime) -> None:
    entry.status = EntryStatus.APPROVED if approve else EntryStatus.REJECTED
    entry.reviewer_id = actor.person_id
    entry.reviewed_at = now
    entry.reason = reason


async def _audit_review(
    s: AsyncSession, actor: Actor, entries: Sequence[ServiceEntry], approve: bool, now: datetime
) -> None:
    for e in entries:
        await audit.record(
            s,
            actor,
            "entry.approve" if approve else "entry.reject",
            subject_person_id=e.person_id,
            org_id=e.org_id,
            detail={"entry_id": e.id},
            now=now,
            flush=False,
        )


async def review(
    s: AsyncSession, actor: Actor, entry_id: int, approve: bool, reason: str | None, now: datetime
) -> ReviewOutcome:
    """Approve or reject one entry. A stale button (entry already reviewed) is refused."""
    entry = await s.scalar(select(ServiceEntry).where(ServiceEntry.id == entry_id).with_for_update())
    if entry is None:
        raise NotFound()
    await _check_reviewer(s, actor, [entry])
    clean = _clean_reason(approve, reason)
    if entry.status is not EntryStatus.PENDING:
        raise Refused("log.already_reviewed")
    _apply(entry, actor, approve, clean, now)
    await _audit_review(s, actor, [entry], approve, now)
    await s.flush()
    return await _outcome(s, entry)


async def review_many(
    s: AsyncSession,
    actor: Actor,
    ids: Sequence[int],
    approve: bool,
    reason: str | None,
    now: datetime,
) -> ReviewBatch:
    """Review several entries at once: all of them must be within the actor's review scope, or
    nothing changes. Entries reviewed meanwhile (another reviewer, a stale list) are skipped."""
    wanted = sorted(set(ids))
    if not wanted:
        return ReviewBatch(0, 0, [])
    if len(wanted) > MAX_BATCH:
        raise Invalid("log.batch_too_large", max=MAX_BATCH)
    clean = _clean_reason(approve, reason)
    entries = list(
        await s.scalars(
            select(ServiceEntry)
            .where(ServiceEntry.id.in_(wanted))
            .order_by(ServiceEntry.id)
            .with_for_update()
        )
    )
    if len(entries) != len(wanted):
        raise NotFound()
    await _check_reviewer(s, actor, entries)
    todo = [e for e in entries if e.status is EntryStatus.PENDING]
    for e in todo:
        _apply(e, actor, approve, clean, now)
    await _audit_review(s, actor, todo, approve, now)
    await s.flush()
    return ReviewBatch(
        done=len(todo),
        skipped=len(entries) - len(todo),
        outcomes=[await _outcome(s, e) for e in todo],
    )


# ---------------------------------------------------------------------------------------------
# Parsing the chat's quick form (pure functions)


@dataclass(frozen=True, slots=True)
class QuickLog:
    minutes: int
    day: date
    description: str


_NUM = r"\d{1,4}(?:\.\d{1,6})?"
_HOUR_UNITS = r"(?:h|hr|hrs|hour|hours|小时|个小时|钟头|个钟头|时)"
_MIN_UNITS = r"(?:m|min|mins|minute|minutes|分钟|分)"
_HOURS_MINUTES = re.compile(rf"^(?P<h>{_NUM}){_HOUR_UNITS}(?:(?P<m>\d{{1,2}}){_MIN_UNITS}?)?$")
_MINUTES = re.compile(rf"^(?P<m>\d{{1,5}}){_MIN_UNITS}$")
_CLOCK = re.compile(r"^(?P<h>\d{1,2}):(?P<m>[0-5]\d)$")
_BARE = re.compile(rf"^(?P<h>{_NUM})$")
_HALF = re.compile(r"^(?:(?P<h>\d{1,2})个?)?半(?:个)?(?:小时|钟头)$")


def _normalize(text: str) -> str:
    # NFKC turns full-width digits and punctuation (１．５) into ASCII.
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()


def parse_duration(text: str) -> int:
    """Minutes from "2", "1.5", "2h", "90m", "1h30m", "1:30", "1.5小时", "90分钟", "半小时"...

    A bare number is hours. Fractions of a minute round to the nearest minute. Raises
    `ParseError("log.bad_duration")` for unreadable text and `ParseError("log.duration_range")`
    for nothing or more than 24 hours.
    """
    raw = text or ""
    t = _normalize(raw)
    if not t or len(t) > 24:
        raise ParseError("log.bad_duration", text=raw.strip()[:24])
    hours, minutes = Decimal(0), 0
    if m := _BARE.match(t):
        hours = Decimal(m["h"])
    elif m := _CLOCK.match(t):
        hours, minutes = Decimal(m["h"]), int(m["m"])
    elif m := _HALF.match(t):
        hours, minutes = Decimal(m["h"] or 0), 30
    elif (m := _HOURS_MINUTES.match(t)) and int(m["m"] or 0) < 60:  # "1h75" is a typo, not a time
        hours, minutes = Decimal(m["h"]), int(m["m"] or 0)
    elif m := _MINUTES.match(t):
        minutes = int(m["m"])
    else:
        raise ParseError("log.bad_duration", text=raw.strip()[:24])
    try:
        total = int((hours * 60 + minutes).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation:  # pragma: no cover - the patterns keep numbers small
        raise ParseError("log.bad_duration", text=raw.strip()[:24]) from None
    if total <= 0 or total > DAY_MINUTES:
        raise ParseError("log.duration_range", max_hours=DAY_MINUTES // 60)
    return total


_RELATIVE_DAYS = {
    "今天": 0,
    "今日": 0,
    "today": 0,
    "昨天": 1,
    "昨日": 1,
    "yesterday": 1,
    "前天": 2,
}
_FULL_DATE = re.compile(
    r"^(?P<y>\d{4})(?:[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})|年(?P<m2>\d{1,2})月(?P<d2>\d{1,2})[日号]?)$"
)
_MONTH_DAY = re.compile(r"^(?:(?P<m>\d{1,2})[-/.](?P<d>\d{1,2})|(?P<m2>\d{1,2})月(?P<d2>\d{1,2})[日号]?)$")
# Anything shaped like a date: a mistyped date must be an error, not the start of a description.
_DATE_SHAPE = re.compile(r"^\d{1,4}[-/.]\d{1,2}(?:[-/.]\d{1,2})?$|^(?:\d{1,4}年)?\d{1,2}月\d{1,2}[日号]?$")


def looks_like_day(text: str) -> bool:
    t = _normalize(text)
    return t in _RELATIVE_DAYS or bool(_DATE_SHAPE.match(t))


def parse_day(text: str, today: date) -> date:
    """A service day from "2026-11-20", "2026/11/20", "2026年11月20日", "11-20", "11月20日",
    "今天", "昨天", "前天", "today", "yesterday".

    A month and day without a year mean the latest such day not after today (so in early
    January "12-30" is last December). Whether the day is allowed is the store's rule, not
    the parser's: this only reads it. Raises `ParseError("log.bad_day")`.
    """
    raw = text or ""
    t = _normalize(raw)
    if t in _RELATIVE_DAYS:
        return today - timedelta(days=_RELATIVE_DAYS[t])
    if m := _FULL_DATE.match(t):
        got = _date(int(m["y"]), int(m["m"] or m["m2"]), int(m["d"] or m["d2"]))
        if got is not None:
            return got
    elif m := _MONTH_DAY.match(t):
        month, day = int(m["m"] or m["m2"]), int(m["d"] or m["d2"])
        for year in (today.year, today.year - 1):
            got = _date(year, month, day)
            if got is not None and got <= today:
                return got
    raise ParseError("log.bad_day", text=raw.strip()[:20])


def _date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


_TOKEN = re.compile(r"\s*(\S+)(?:\s+(.*))?\Z", re.S)


def parse_quick_log(text: str | None, today: date) -> QuickLog:
    """The one-line form "<hours> [<day>] <description>", e.g. "2.5 2026-11-20 社区义诊".

    The day is optional (today when left out). The service action is picked afterwards.
    """
    m = _TOKEN.match(text or "")
    if m is None or m[2] is None or not m[2].strip():
        raise ParseError("log.quick_usage")
    minutes = parse_duration(m[1])
    rest = m[2]
    day = today
    n = _TOKEN.match(rest)
    if n is not None and looks_like_day(n[1]):
        day = parse_day(n[1], today)
        rest = n[2] or ""
    description = rest.strip()
    if not description:
        raise ParseError("log.quick_usage")
    if len(description) > DESCRIPTION_MAX:
        raise ParseError("log.description_too_long", max=DESCRIPTION_MAX)
    return QuickLog(minutes=minutes, day=day, description=description)
