"""People and joining: invites are resolved and consumed here, rosters imported, members listed.

Nothing about a person is stored before their explicit consent: `resolve_invite` only reads,
and `join` refuses without consent before it writes anything.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, Update, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import LOCALES, normalize_locale, texts
from storage import audit, service_log
from storage.access import Actor, Grant, get_org, require_manager
from storage.direct import Direct, fetch
from storage.errors import Invalid, Refused
from storage.invites import CODE_PATTERN, build_invite, deep_link, may_invite
from storage.models import (
    Commitment,
    ConversationState,
    Invite,
    Membership,
    Org,
    OrgKind,
    Person,
    Role,
    ServiceEntry,
)
from storage.roster import (
    RosterPreview,
    RosterRow,
    RowProblem,
    SheetRow,
    parse_roster_off_loop,
    write_invite_sheet,
)
from storage.validation import parse
from storage.xlsx_print import page_setup

NAME_MAX = 100
ROLE_RANK = {Role.MEMBER: 0, Role.SECRETARY: 1, Role.STAFF: 2, Role.ADMIN: 3}
ACTIVITY_RESOLUTION = timedelta(minutes=10)  # last_active_at need not change on every message


# ---- joining ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InviteOffer:
    """What an invite offers, shown before the person consents."""

    invite_id: int
    org_id: int
    org_name: str
    org_kind: OrgKind
    role: Role
    personal: bool  # made for one roster row by an import
    expires_at: datetime


def clean_name(raw: str) -> str:
    """A display name from Telegram: control characters dropped, spaces collapsed, cut to fit."""
    kept = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") else ch for ch in raw)
    return " ".join(kept.split())[:NAME_MAX].strip()


class NewName(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=NAME_MAX, json_schema_extra={"error_key": "people.bad_name"})


async def _invite(s: AsyncSession, code: str) -> Invite:
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise Refused("invite.unknown")
    inv = await s.scalar(select(Invite).where(Invite.code == code))
    if inv is None:
        raise Refused("invite.unknown")
    return inv


def _check_usable(inv: Invite, now: datetime) -> None:
    if inv.expires_at <= now:
        raise Refused("invite.expired")
    if inv.uses_left <= 0:
        raise Refused("invite.used_up")


async def resolve_invite(s: AsyncSession, code: str, now: datetime) -> InviteOffer:
    """What the invite offers, or Refused("invite.unknown" / "invite.expired" / "invite.used_up").

    Reads only: nothing about the person opening the link is stored.
    """
    inv = await _invite(s, code)
    _check_usable(inv, now)
    org = await get_org(s, inv.org_id)
    return InviteOffer(
        inv.id, org.id, org.name, org.kind, inv.role, inv.person_id is not None, inv.expires_at
    )


@dataclass(frozen=True, slots=True)
class Joined:
    """The outcome of `join`: who, where, in which role, and whether anything changed."""

    person: Person
    org_id: int
    org_name: str
    role: Role  # the role the person now holds there
    changed: bool  # False when they were already in, in that role or higher


async def is_member_of(s: AsyncSession, person_id: int, org_id: int) -> bool:
    return await _membership(s, person_id, org_id) is not None


async def person_by_telegram(s: AsyncSession, telegram_id: int) -> Person | None:
    return await s.scalar(select(Person).where(Person.telegram_id == telegram_id))


async def _membership(s: AsyncSession, person_id: int, org_id: int) -> Membership | None:
    return await s.scalar(
        select(Membership).where(Membership.person_id == person_id, Membership.org_id == org_id)
    )


async def _consume(s: AsyncSession, inv: Invite, now: datetime) -> None:
    """Take one use, atomically: of two people racing for the last use, only one gets it."""
    res = await s.execute(
        update(Invite)
        .where(Invite.id == inv.id, Invite.uses_left > 0, Invite.expires_at > now)
        .values(uses_left=Invite.uses_left - 1)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise Refused("invite.used_up")
    await s.refresh(inv, ["uses_left"])


async def _grant(s: AsyncSession, person: Person, org_id: int, role: Role, invite_id: int, via: str) -> None:
    """Make the person a member of the org in `role`, raising (never lowering) an existing role."""
    m = await _membership(s, person.id, org_id)
    action = None
    if m is None:
        s.add(Membership(person_id=person.id, org_id=org_id, role=role))
        action = "membership.add"
    elif ROLE_RANK[role] > ROLE_RANK[m.role]:
        m.role = role
        action = "membership.role"
    await s.flush()
    if action is not None:
        await audit.record(
            s,
            audit.person_actor(person.id, via),
            action,
            subject_person_id=person.id,
            org_id=org_id,
            detail={"role": role.value, "invite_id": invite_id},
        )
    await s.refresh(person, ["memberships"])


async def join(
    s: AsyncSession,
    code: str,
    telegram_id: int,
    name: str,
    locale: str | None,
    *,
    consent: bool,
    now: datetime,
    via: str = "bot",
) -> Joined:
    """Join through an invite, with explicit consent.

    Idempotent for someone already in the org in that role (no second membership, no use
    consumed). A personal invite (from a roster import) ties the account to its roster row; if
    the account already exists, the roster row is folded into it.
    """
    if not consent:
        raise Refused("privacy.consent_required")
    if not isinstance(telegram_id, int) or telegram_id <= 0:
        raise Invalid("error.invalid", field="telegram_id")
    inv = await _invite(s, code)
    existing = await person_by_telegram(s, telegram_id)
    if existing is not None:
        m = await _membership(s, existing.id, inv.org_id)
        if inv.person_id == existing.id and m is not None:
            return await _joined(s, existing, inv.org_id, changed=False)  # their own link, again
        if inv.person_id is None and m is not None and ROLE_RANK[m.role] >= ROLE_RANK[inv.role]:
            return await _joined(s, existing, inv.org_id, changed=False)
    _check_usable(inv, now)
    roster: Person | None = None
    if inv.person_id is not None:
        roster = await s.get(Person, inv.person_id)
        if roster is None or roster.erased_at is not None or roster.telegram_id is not None:
            raise Refused("invite.used_up")
    # Only someone entirely new is known by the name Telegram gives; a roster row keeps its own.
    display = clean_name(name or "") if existing is None and roster is None else None
    if display is not None:
        parse(NewName, name=display)
    await _consume(s, inv, now)
    lang = normalize_locale(locale)

    if roster is not None and existing is None:
        roster.telegram_id = telegram_id
        roster.consent_at = now
        roster.locale = lang
        roster.last_active_at = now
        await s.flush()
        await _grant(s, roster, inv.org_id, inv.role, inv.id, via)
        return await _joined(s, roster, inv.org_id)
    if existing is not None:
        if existing.consent_at is None:
            existing.consent_at = now
        await _grant(s, existing, inv.org_id, inv.role, inv.id, via)
        if roster is not None:
            await _fold_into(s, roster, existing)
        return await _joined(s, existing, inv.org_id)
    assert display is not None
    person = Person(telegram_id=telegram_id, name=display, locale=lang, consent_at=now, last_active_at=now)
    s.add(person)
    await s.flush()
    await _grant(s, person, inv.org_id, inv.role, inv.id, via)
    return await _joined(s, person, inv.org_id)


async def _joined(s: AsyncSession, person: Person, org_id: int, *, changed: bool = True) -> Joined:
    m = await _membership(s, person.id, org_id)
    assert m is not None
    org = await get_org(s, org_id)
    return Joined(person, org.id, org.name, m.role, changed)


async def _fold_into(s: AsyncSession, roster: Person, person: Person) -> None:
    """An account that already exists opened a roster row's link: one person, not two."""
    for model in (ServiceEntry, Commitment):
        await s.execute(
            update(model)
            .where(model.person_id == roster.id)
            .values(person_id=person.id)
            .execution_options(synchronize_session=False)
        )
    await s.execute(delete(Person).where(Person.id == roster.id).execution_options(synchronize_session=False))
    s.expunge(roster)
    await s.flush()


# ---- the person's own settings and reachability -------------------------------------------------


async def set_locale(s: AsyncSession, person: Person, locale: str, *, via: str = "bot") -> Person:
    if locale not in LOCALES:
        raise Invalid("people.bad_locale", locales=", ".join(LOCALES))
    person.locale = locale
    await s.flush()
    await _audit_settings(s, person, "locale", via)
    return person


async def set_nudges_paused(s: AsyncSession, person: Person, paused: bool, *, via: str = "bot") -> Person:
    person.nudges_paused = bool(paused)
    await s.flush()
    await _audit_settings(s, person, "nudges_paused", via)
    return person


async def _audit_settings(s: AsyncSession, person: Person, field: str, via: str) -> None:
    await audit.record(
        s,
        audit.person_actor(person.id, via),
        "person.settings",
        subject_person_id=person.id,
        detail={"fields": [field]},
    )


async def touch_last_active(s: AsyncSession, person_id: int, now: datetime) -> bool:
    """Record activity, at most once per ACTIVITY_RESOLUTION (a write per message is wasteful)."""
    res = await s.execute(
        update(Person)
        .where(
            Person.id == person_id,
            (Person.last_active_at.is_(None)) | (Person.last_active_at < now - ACTIVITY_RESOLUTION),
        )
        .values(last_active_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def mark_blocked(s: AsyncSession, telegram_id: int, now: datetime) -> bool:
    """The person blocked the bot (Telegram said 403): unreachable until they write again."""
    res = await s.execute(
        update(Person)
        .where(Person.telegram_id == telegram_id, Person.blocked_at.is_(None))
        .values(blocked_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def mark_reachable(s: AsyncSession, telegram_id: int) -> bool:
    res = await s.execute(
        update(Person)
        .where(Person.telegram_id == telegram_id, Person.blocked_at.is_not(None))
        .values(blocked_at=None)
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


# ---- the person behind a chat, on every update ------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonView:
    """What an update needs of the person writing: plain values, not an ORM object (no identity
    map, no change tracking, no flush at commit). A handler that changes the person's record
    loads the row (`s.get(Person, view.id)`)."""

    id: int
    telegram_id: int
    name: str
    locale: str | None
    nudges_paused: bool
    last_active_at: datetime | None
    blocked_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChatPerson:
    person: PersonView
    actor: Actor
    timezone: str | None  # of the home branch (else the first org): "today" is counted there
    # The conversation's stored (state, data), None if it has no row; read only when asked.
    conversation: tuple[str | None, dict[str, Any]] | None = None


_M = Membership.__table__.c
_O = Org.__table__.c
_P = Person.__table__.c
# Built once with a bound parameter, so each update is a hit in the compiled cache. One round
# trip: the person and a row per membership (with its org), or nothing.
_CHAT_PERSON = (
    select(
        _P.id,
        _P.name,
        _P.locale,
        _P.nudges_paused,
        _P.last_active_at,
        _P.blocked_at,
        _P.consent_at,
        _P.erased_at,
        _M.org_id,
        _O.path,
        _O.kind,
        _M.role,
        _O.timezone,
        _M.id.label("membership_id"),
    )
    .select_from(Person.__table__.outerjoin(Membership.__table__, _M.person_id == _P.id))
    .outerjoin(Org.__table__, _O.id == _M.org_id)
    .where(_P.telegram_id == bindparam("telegram_id"))
    .order_by(_M.id)
)
_CS = ConversationState.__table__.c
# The same, with the person's conversation (aiogram's FSM state) joined on its key: one round
# trip instead of two on every update from someone who has joined.
_CHAT_PERSON_AND_CONVERSATION = _CHAT_PERSON.add_columns(_CS.key, _CS.state, _CS.data).outerjoin(
    ConversationState.__table__, _CS.key == bindparam("state_key")
)


def chat_person_select(*, with_conversation: bool, days_on: str | None = None) -> Select[Any]:
    """`chat_person`'s query (bound parameters: telegram_id, and state_key with the conversation),
    for a statement that reads it along with something else. With `days_on`, the dialect whose
    JSON functions to use, also the person's day totals as `day_totals` (bound: days_from and
    days_to; `service_log.day_totals_select`)."""
    query = _CHAT_PERSON_AND_CONVERSATION if with_conversation else _CHAT_PERSON
    if days_on is None:
        return query
    return query.add_columns(service_log.day_totals_select(_P.id, days_on).label("day_totals"))


def chat_person_params(
    telegram_id: int, state_key: str | None, days: tuple[date, date] | None
) -> dict[str, Any]:
    """The bound parameters of `chat_person_select` for these arguments."""
    params: dict[str, Any] = {"telegram_id": telegram_id}
    if state_key is not None:
        params["state_key"] = state_key
    if days is not None:
        params["days_from"], params["days_to"] = days
    return params


def chat_person_read(
    s: AsyncSession,
    rows: Sequence[Any],
    telegram_id: int,
    *,
    state_key: str | None,
    days: tuple[date, date] | None,
) -> ChatPerson | None:
    """`chat_person_of` the rows; with `days`, the day totals they carry are kept for the update's
    first check of a day's room (`service_log.remember_day_totals`)."""
    found = chat_person_of(rows, telegram_id, state_key=state_key)
    if found is not None and days is not None:
        service_log.remember_day_totals(s, found.person.id, days[0], days[1], rows[0].day_totals)
    return found


async def chat_person(
    s: AsyncSession,
    telegram_id: int,
    *,
    state_key: str | None = None,
    days: tuple[date, date] | None = None,
) -> ChatPerson | None:
    """The joined person writing from this Telegram account, with their grants; None for a
    stranger, someone who has not consented, or someone erased. With `state_key`, also the
    conversation stored under that key (`ChatPerson.conversation`). With `days` (first, last),
    their totals of those days too, for the update's first check of a day's room
    (`service_log.remember_day_totals`)."""
    dialect = s.sync_session.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        days = None  # the day totals are read with those two's JSON functions
    # Straight on the driver (`storage.direct`): this runs for every update on SQLite.
    statement = _chat_person_direct(state_key is not None, dialect if days is not None else None)
    rows = await fetch(s, statement, chat_person_params(telegram_id, state_key, days))
    return chat_person_read(s, rows, telegram_id, state_key=state_key, days=days)


@cache
def _chat_person_direct(with_conversation: bool, days_on: str | None) -> Direct:
    return Direct(chat_person_select(with_conversation=with_conversation, days_on=days_on))


def chat_person_of(
    rows: Sequence[Any], telegram_id: int, *, state_key: str | None = None
) -> ChatPerson | None:
    """`chat_person` from the rows of its query (also read along with the update's claim,
    `storage.updates.claim_update_with_person`); rows whose person id is NULL are no person."""
    rows = [r for r in rows if r.id is not None]
    if not rows:
        return None
    first = rows[0]
    if first.consent_at is None or first.erased_at is not None:
        return None
    grants = tuple(Grant(r.org_id, r.path, r.kind, r.role) for r in rows if r.org_id is not None)
    actor = Actor(first.id, grants)
    home = actor.home_branch_id() or (grants[0].org_id if grants else None)
    timezone = next((r.timezone for r in rows if r.org_id == home), None) if home is not None else None
    view = PersonView(
        first.id,
        telegram_id,
        first.name,
        first.locale,
        bool(first.nudges_paused),
        first.last_active_at,
        first.blocked_at,
    )
    conversation = None
    if state_key is not None and first.key is not None:
        conversation = (first.state, first.data or {})
    return ChatPerson(view, actor, timezone, conversation)


_PEOPLE = Person.__table__


@cache
def _seen() -> Update:
    """Built once with bound parameters: a compiled-cache hit whenever it runs."""
    return (
        update(_PEOPLE)
        .where(_P.id == bindparam("person_id"))
        .values(last_active_at=bindparam("now"), blocked_at=None)
    )


async def seen(s: AsyncSession, person: PersonView, now: datetime) -> None:
    """They wrote: active now (kept at most every ACTIVITY_RESOLUTION, a write per message is
    wasteful), and reachable (writing means they unblocked the bot)."""
    stale = person.last_active_at is None or now - person.last_active_at > ACTIVITY_RESOLUTION
    if stale or person.blocked_at is not None:
        # The last activity moves only when stale, as before; the statement is one either way.
        await s.execute(_seen(), {"person_id": person.id, "now": now if stale else person.last_active_at})


# ---- the roster of a branch -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberRow:
    person_id: int
    name: str
    note: str | None
    role: Role
    joined_at: datetime
    last_activity: datetime | None  # see `last_activity`
    on_telegram: bool  # False for a roster row whose link was not opened yet
    reachable: bool
    blocked: bool


async def last_activity(s: AsyncSession, person_ids: Iterable[int]) -> dict[int, datetime]:
    """最近活动: the later of a person's last message to the bot and their last service entry
    (in any branch). The one definition the bot's /members and the web's member pages share;
    people with neither are absent."""
    ids = sorted(set(person_ids))
    if not ids:
        return {}
    out: dict[int, datetime] = {}
    entries = await s.execute(
        select(ServiceEntry.person_id, func.max(ServiceEntry.created_at))
        .where(ServiceEntry.person_id.in_(ids))
        .group_by(ServiceEntry.person_id)
    )
    seen = await s.execute(
        select(Person.id, Person.last_active_at).where(Person.id.in_(ids), Person.last_active_at.is_not(None))
    )
    for pid, at in (*entries, *seen):
        if at is not None and (pid not in out or at > out[pid]):
            out[pid] = at
    return out


async def list_members(s: AsyncSession, actor: Actor, org_id: int) -> list[MemberRow]:
    """The people of an org, for its secretary, staff above it, or an admin."""
    org = await require_manager(s, actor, org_id)
    rows = (
        await s.execute(
            select(Person, Membership.role, Membership.created_at)
            .join(Membership, Membership.person_id == Person.id)
            .where(Membership.org_id == org.id, Person.erased_at.is_(None))
            .order_by(Person.name, Person.id)
        )
    ).all()
    last = await last_activity(s, (p.id for p, _role, _joined in rows))
    out = [
        MemberRow(
            person_id=p.id,
            name=p.name,
            note=p.roster_note,
            role=role,
            joined_at=joined,
            last_activity=last.get(p.id),
            on_telegram=p.telegram_id is not None,
            reachable=p.reachable,
            blocked=p.blocked_at is not None,
        )
        for p, role, joined in rows
    ]
    if audit.on_admin_surface(actor):
        await audit.record(s, actor, "members.view", org_id=org.id, detail={"rows": len(out)})
    return out


# ---- roster import --------------------------------------------------------------------------


class RosterRejected(Refused):
    """Some rows are bad: nothing was imported. `preview` lists every bad row and why."""

    def __init__(self, preview: RosterPreview) -> None:
        super().__init__("roster.rejected", count=len(preview.problems))
        self.preview = preview


@dataclass(frozen=True, slots=True)
class ImportedPerson:
    person_id: int
    name: str
    role: Role
    note: str | None
    code: str
    expires_at: datetime


class ImportOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    days: int = Field(default=30, ge=1, le=365, json_schema_extra={"error_key": "invite.bad_days"})


async def _roster_org(s: AsyncSession, actor: Actor, org_id: int) -> Org:
    org = await require_manager(s, actor, org_id)
    if org.kind is not OrgKind.BRANCH:
        raise Refused("roster.needs_branch")
    return org


async def _check_against_store(
    s: AsyncSession, actor: Actor, org: Org, preview: RosterPreview
) -> RosterPreview:
    """Rows the file alone cannot judge: roles the actor may not hand out, people already listed."""
    listed = {
        (name, note or "")
        for name, note in await s.execute(
            select(Person.name, Person.roster_note)
            .join(Membership, Membership.person_id == Person.id)
            .where(Membership.org_id == org.id, Person.erased_at.is_(None))
        )
    }
    rows: list[RosterRow] = []
    problems = list(preview.problems)
    for r in preview.rows:
        if not may_invite(actor, org, r.role):
            problems.append(RowProblem(r.line, "roster.role_not_allowed"))
        elif (r.name, r.note or "") in listed:
            problems.append(RowProblem(r.line, "roster.already_listed"))
        else:
            rows.append(r)
    return RosterPreview(rows, problems)


async def _parsed(data: bytes | RosterPreview, filename: str | None) -> RosterPreview:
    # A caller that holds a database transaction (on SQLite: the only connection, and the write
    # lock) should parse first, with parse_roster_off_loop, and pass the result: the parse can
    # take seconds, and the store must not wait for it.
    if isinstance(data, RosterPreview):
        return data
    return await parse_roster_off_loop(data, filename)


async def preview_roster(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    data: bytes | RosterPreview,
    filename: str | None = None,
) -> RosterPreview:
    """Every row checked, nothing written: what an import of this file (or of its parse) would do."""
    org = await _roster_org(s, actor, org_id)
    return await _check_against_store(s, actor, org, await _parsed(data, filename))


async def import_roster(
    s: AsyncSession,
    actor: Actor,
    org_id: int,
    data: bytes | RosterPreview,
    filename: str | None = None,
    *,
    now: datetime,
    days: int = 30,
    track: Callable[[list[RosterRow]], Iterable[RosterRow]] | None = None,
) -> list[ImportedPerson]:
    """Import a roster into a branch: a Person (no Telegram yet, no consent), a membership and a
    personal single-use invite per row. All rows or none: any bad row raises RosterRejected."""
    opts = parse(ImportOptions, days=days)
    org = await _roster_org(s, actor, org_id)
    preview = await _check_against_store(s, actor, org, await _parsed(data, filename))
    if not preview.ok:
        raise RosterRejected(preview)
    rows = list(track(preview.rows) if track else preview.rows)
    people = [Person(name=r.name, roster_note=r.note, created_at=now) for r in rows]
    s.add_all(people)
    await s.flush()  # one batched insert; the ids are needed below
    invites = [
        build_invite(actor, org, r.role, 1, opts.days, now=now, person_id=p.id)
        for r, p in zip(rows, people, strict=True)
    ]
    s.add_all(invites)
    s.add_all(
        Membership(person_id=p.id, org_id=org.id, role=r.role, created_at=now)
        for r, p in zip(rows, people, strict=True)
    )
    await s.flush()
    out = [
        ImportedPerson(p.id, r.name, r.role, r.note, inv.code, inv.expires_at)
        for r, p, inv in zip(rows, people, invites, strict=True)
    ]
    await audit.record(s, actor, "roster.import", org_id=org.id, detail={"rows": len(out), "days": opts.days})
    return out


def invite_sheet(
    imported: list[ImportedPerson],
    bot_username: str,
    *,
    locale: str = "zh",
    qr: bool = True,
    org_name: str = "",
) -> bytes:
    """The printable .xlsx of personal links for an import (a QR code per row if `qr`)."""
    _ = texts(locale)
    headers = tuple(
        _.plain(k)
        for k in (
            "roster.sheet_name",
            "roster.sheet_role",
            "roster.sheet_note",
            "roster.sheet_link",
            "roster.sheet_qr",
        )
    )
    rows = [
        SheetRow(
            i.name, _.plain(f"people.role_{i.role.value}"), i.note or "", deep_link(bot_username, i.code)
        )
        for i in imported
    ]
    until = min((i.expires_at.date() for i in imported), default=None)
    period = _.plain("print.valid_until", day=until.isoformat()) if until else ""
    return write_invite_sheet(
        rows, headers, qr=qr, setup=lambda ws: page_setup(ws, _.plain, org=org_name, period=period)
    )
