"""Reminders: rules in our own tables, runs claimed once, messages through the outbox.

A ReminderRule is a crontab line read in the rule's time zone. APScheduler's CronTrigger only
computes fire times here; nothing of APScheduler's job store is used, so several scheduler
processes can share the database: a run is a ReminderRun row, unique per (rule, due time), and on
PostgreSQL the rule row is claimed with FOR UPDATE SKIP LOCKED.

After downtime, of the fire times missed since `next_due_at`, the most recent one still within
`grace_hours` runs once; older ones are recorded as MISSED (never silently dropped, never sent
twice). Each message is enqueued with the dedupe key "rem:<run id>:<person id>".

Kinds:
- monthly_nudge: members of the branch who logged nothing this month (not paused, reachable);
- weekly_digest: the branch's secretaries; what needs their attention, or nothing (run EMPTY);
- commitment_due: owners of commitments still MADE whose deadline is `days_before` days away;
- milestone: the branch's secretaries, when a pack milestone is `remind_days_before` days away.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts, texts
from content.pack import Pack
from storage import audit
from storage.access import Actor, require_manager
from storage.db import dialect_insert, is_sqlite
from storage.errors import Forbidden, Invalid, NotFound, Refused
from storage.models import (
    Commitment,
    CommitmentStatus,
    Delivery,
    DeliveryStatus,
    EntryStatus,
    Membership,
    Notice,
    Org,
    OrgKind,
    Person,
    ReminderKind,
    ReminderRule,
    ReminderRun,
    Role,
    RunStatus,
    ServiceEntry,
)
from storage.outbox import OutMessage, enqueue_many
from storage.validation import parse

# APScheduler (and tzlocal) are imported when a crontab line is first read: a bot process that
# never touches a reminder does not load them (issue 11, memory).
if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger(__name__)

MEMBER_ROLES = (Role.MEMBER, Role.SECRETARY)
# More missed fire times than this (a year of an hourly rule) are counted in the log, not recorded.
MAX_CATCHUP = 10_000
# A digest mentions unacknowledged notices for this long after they went out, then lets them be.
DIGEST_NOTICE_DAYS = 30
PAUSE_CALLBACK = "nudges:pause"


@dataclass(frozen=True, slots=True)
class DefaultRule:
    cron: str
    params: dict[str, Any]
    grace_hours: int


DEFAULT_RULES: dict[ReminderKind, DefaultRule] = {
    # On the 25th there is still time to log the month's service.
    ReminderKind.MONTHLY_NUDGE: DefaultRule("0 10 25 * *", {}, 24),
    ReminderKind.WEEKLY_DIGEST: DefaultRule("0 9 * * 1", {}, 24),
    ReminderKind.COMMITMENT_DUE: DefaultRule("0 9 * * *", {"days_before": 3}, 12),
    # No days_before: each milestone's own remind_days_before from the content pack.
    ReminderKind.MILESTONE: DefaultRule("0 9 * * *", {}, 12),
}


# ---- cron lines ----

_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _dow_to_names(field: str) -> str:
    """Standard crontab weekdays (0 or 7 = Sunday) as names.

    APScheduler 3 numbers weekdays from Monday = 0, so "1" would mean Tuesday there; names mean
    the same to both, so numbers are spelled out before APScheduler reads them.
    """
    out: list[str] = []
    for part in field.split(","):
        body, slash, step = part.partition("/")
        if body == "*" and slash:
            body = "0-6"
        if not re.fullmatch(r"\d+(-\d+)?", body):
            out.append(part)  # "*" and names mean the same in both conventions
            continue
        lo, _, hi = body.partition("-")
        first = int(lo)
        last = int(hi) if hi else (6 if slash else first)
        every = int(step) if slash else 1
        if first > 7 or last > 7 or first > last or every < 1:
            raise ValueError(f"bad day of week {part!r}")
        out.extend(_DOW_NAMES[d] for d in range(first, last + 1, every))
    return ",".join(dict.fromkeys(out))


def make_trigger(cron: str, timezone: str) -> CronTrigger:
    from apscheduler.triggers.cron import CronTrigger

    fields = cron.split()
    if len(fields) != 5:
        raise ValueError("a crontab line has five fields")
    fields[4] = _dow_to_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=ZoneInfo(timezone))


def validate_cron(cron: str, timezone: str = "Asia/Shanghai") -> str:
    """The cron line, tidied; Refused if it is not a crontab line or fires more than hourly."""
    line = " ".join(cron.split())
    try:
        trigger = make_trigger(line, timezone)
        if trigger.get_next_fire_time(None, datetime(2026, 1, 1, tzinfo=UTC)) is None:
            raise ValueError("never fires")
    except (ValueError, KeyError, TypeError):
        raise Refused("reminders.bad_cron", cron=cron) from None
    # One minute only: a reminder is at most hourly, so catching up after downtime stays bounded.
    if not re.fullmatch(r"\d{1,2}", line.split()[0]):
        raise Refused("reminders.too_frequent")
    return line


def _fire_at_or_after(trigger: CronTrigger, t: datetime) -> datetime | None:
    nxt = trigger.get_next_fire_time(None, t)
    return nxt.astimezone(UTC) if nxt is not None else None


def _fire_after(trigger: CronTrigger, t: datetime) -> datetime | None:
    # CronTrigger works in whole seconds and returns times at or after the one given.
    return _fire_at_or_after(trigger, t + timedelta(seconds=1))


def next_due(rule: ReminderRule, after: datetime) -> datetime | None:
    return _fire_after(make_trigger(rule.cron, rule.timezone), after)


# ---- rules ----


class CommitmentDueParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    days_before: int = Field(default=3, ge=0, le=60)


class MilestoneParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    days_before: list[int] | None = Field(default=None, min_length=1, max_length=10)

    def days(self, pack_default: list[int]) -> list[int]:
        return self.days_before if self.days_before is not None else pack_default


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PARAMS: dict[ReminderKind, type[BaseModel]] = {
    ReminderKind.MONTHLY_NUDGE: NoParams,
    ReminderKind.WEEKLY_DIGEST: NoParams,
    ReminderKind.COMMITMENT_DUE: CommitmentDueParams,
    ReminderKind.MILESTONE: MilestoneParams,
}


def validate_params(kind: ReminderKind, params: dict[str, Any]) -> dict[str, Any]:
    try:
        model = parse(PARAMS[kind], **params)
    except Invalid as e:
        raise Invalid("reminders.bad_params", field=str(e.params.get("field", "params"))) from None
    if (
        isinstance(model, MilestoneParams)
        and model.days_before
        and any(not 0 <= d <= 365 for d in model.days_before)
    ):
        raise Invalid("reminders.bad_params", field="days_before")
    return model.model_dump(exclude_none=True)


async def ensure_default_rules(s: AsyncSession, org: Org, *, now: datetime) -> list[ReminderRule]:
    """The branch's rules, creating the default for each kind it does not have yet."""
    have = {r.kind: r for r in await s.scalars(select(ReminderRule).where(ReminderRule.org_id == org.id))}
    for kind, d in DEFAULT_RULES.items():
        if kind in have:
            continue
        rule = ReminderRule(
            kind=kind,
            org_id=org.id,
            cron=d.cron,
            timezone=org.timezone,
            params=dict(d.params),
            enabled=True,
            grace_hours=d.grace_hours,
            created_at=now,
        )
        rule.next_due_at = next_due(rule, now)
        s.add(rule)
        have[kind] = rule
    await s.flush()
    return [have[k] for k in DEFAULT_RULES]


async def _scoped_rule(s: AsyncSession, actor: Actor, rule_id: int) -> ReminderRule:
    rule = await s.get(ReminderRule, rule_id)
    if rule is None:
        raise NotFound()
    if rule.org_id is None:
        if not actor.is_admin:
            raise Forbidden()
    else:
        await require_manager(s, actor, rule.org_id)
    return rule


async def list_rules(s: AsyncSession, actor: Actor, org_id: int) -> list[ReminderRule]:
    await require_manager(s, actor, org_id)
    rows = await s.scalars(
        select(ReminderRule).where(ReminderRule.org_id == org_id).order_by(ReminderRule.id)
    )
    return list(rows)


async def set_rule(
    s: AsyncSession,
    actor: Actor,
    rule_id: int,
    *,
    enabled: bool | None = None,
    cron: str | None = None,
    params: dict[str, Any] | None = None,
    now: datetime,
) -> ReminderRule:
    """Change a rule (secretary: own branch; staff: subtree). Checks everything before changing anything."""
    rule = await _scoped_rule(s, actor, rule_id)
    line = validate_cron(cron, rule.timezone) if cron is not None else None
    clean = validate_params(rule.kind, params) if params is not None else None
    reschedule = False
    if line is not None and line != rule.cron:
        rule.cron = line
        reschedule = True
    if clean is not None:
        rule.params = clean
    if enabled is not None and enabled != rule.enabled:
        rule.enabled = enabled
        # Back on: start from now, rather than recording every time it was off as missed.
        reschedule = reschedule or enabled
    if reschedule:
        rule.next_due_at = next_due(rule, now)
    await s.flush()
    changed = [k for k, v in (("enabled", enabled), ("cron", cron), ("params", params)) if v is not None]
    await audit.record(
        s,
        actor,
        "reminder.set",
        org_id=rule.org_id,
        detail={"rule_id": rule.id, "kind": rule.kind.value, "fields": changed},
        now=now,
    )
    return rule


async def pause_nudges(s: AsyncSession, person: Person, paused: bool, *, via: str = "bot") -> None:
    """A member turns the monthly nudge off (or on again): reminders never become compulsory."""
    person.nudges_paused = paused
    await s.flush()
    await audit.record(
        s,
        audit.person_actor(person.id, via),
        "person.settings",
        subject_person_id=person.id,
        detail={"fields": ["nudges_paused"]},
    )


# ---- claiming runs ----


def _insert_runs(s: AsyncSession) -> Any:
    insert = dialect_insert(s.bind.dialect.name)
    return insert(ReminderRun)


async def claim_due_runs(
    s: AsyncSession, now: datetime, worker_id: str, limit: int = 200
) -> list[ReminderRun]:
    """Create the runs that are due (status CLAIMED) and the MISSED ones; advance the rules.

    Call it, build and enqueue the claimed runs (`execute_run`), and commit, in one transaction
    (`run_due` does all of it): a crash before the commit leaves nothing behind to be lost.
    """
    q = (
        select(ReminderRule)
        .where(
            ReminderRule.enabled.is_(True),
            or_(ReminderRule.next_due_at.is_(None), ReminderRule.next_due_at <= now),
        )
        .order_by(ReminderRule.next_due_at, ReminderRule.id)
        .limit(limit)
    )
    if not is_sqlite(s):
        q = q.with_for_update(skip_locked=True)
    rows: list[dict[str, Any]] = []
    for rule in list(await s.scalars(q)):
        try:
            trigger = make_trigger(rule.cron, rule.timezone)
        except (ValueError, KeyError):
            # Stored before validation existed, or edited by hand: switch it off rather than crash.
            log.warning("reminder rule %s has an unusable cron line; disabled", rule.id)
            rule.enabled = False
            continue
        if rule.next_due_at is None:
            rule.next_due_at = _fire_after(trigger, now)
            continue
        times: deque[datetime] = deque(maxlen=MAX_CATCHUP)
        seen = 0
        t: datetime | None = rule.next_due_at
        while t is not None and t <= now:
            times.append(t)
            seen += 1
            t = _fire_after(trigger, t)
        if seen > len(times):
            log.warning(
                "reminder rule %s: %d missed runs beyond the catch-up window", rule.id, seen - len(times)
            )
        if times:
            latest = times[-1]
            live = now - latest <= timedelta(hours=rule.grace_hours)
            for due in times:
                status = RunStatus.CLAIMED if (live and due == latest) else RunStatus.MISSED
                rows.append(
                    {
                        "rule_id": rule.id,
                        "due_at": due,
                        "status": status,
                        "recipients": 0,
                        "started_at": now,
                        "finished_at": None if status is RunStatus.CLAIMED else now,
                    }
                )
        rule.next_due_at = _fire_after(trigger, now)
    await s.flush()
    claimed: list[int] = []
    for i in range(0, len(rows), 500):
        res = await s.execute(
            _insert_runs(s)
            .values(rows[i : i + 500])
            .on_conflict_do_nothing(index_elements=["rule_id", "due_at"])
            .returning(ReminderRun.id, ReminderRun.status)
        )
        claimed += [rid for rid, st in res if RunStatus(st) is RunStatus.CLAIMED]
    if not claimed:
        return []
    log.debug("worker %s claimed %d reminder runs", worker_id, len(claimed))
    runs = await s.scalars(select(ReminderRun).where(ReminderRun.id.in_(claimed)).order_by(ReminderRun.id))
    return list(runs)


# ---- building messages ----


def _reachable() -> ColumnElement[bool]:
    return and_(
        Person.consent_at.is_not(None),
        Person.telegram_id.is_not(None),
        Person.blocked_at.is_(None),
        Person.erased_at.is_(None),
    )


def _message(text: str, markup: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"method": "sendMessage", "text": text, "parse_mode": "HTML"}
    if markup is not None:
        payload["reply_markup"] = markup
    return payload


async def _secretaries(s: AsyncSession, org_id: int) -> list[Person]:
    rows = await s.scalars(
        select(Person)
        .join(Membership, Membership.person_id == Person.id)
        .where(Membership.org_id == org_id, Membership.role == Role.SECRETARY, _reachable())
        .order_by(Person.id)
    )
    return list(rows)


def _quarter_start(today: date) -> date:
    return date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)


async def _monthly_nudge(s: AsyncSession, org: Org, today: date) -> list[tuple[Person, dict[str, Any]]]:
    logged = exists().where(
        ServiceEntry.person_id == Person.id,
        ServiceEntry.day >= today.replace(day=1),
        ServiceEntry.day <= today,
    )
    people = await s.scalars(
        select(Person)
        .join(Membership, Membership.person_id == Person.id)
        .where(
            Membership.org_id == org.id,
            Membership.role.in_(MEMBER_ROLES),
            _reachable(),
            Person.nudges_paused.is_(False),
            ~logged,
        )
        .distinct()
        .order_by(Person.id)
    )
    out = []
    for p in people:
        _ = texts(p.locale)
        markup = {
            "inline_keyboard": [
                [{"text": _.plain("reminders.pause_button"), "callback_data": PAUSE_CALLBACK}]
            ]
        }
        out.append((p, _message(_("reminders.monthly_nudge", name=p.name), markup)))
    return out


@dataclass(frozen=True, slots=True)
class Digest:
    pending_entries: int
    pending_evaluations: int
    due_soon: int
    overdue: int
    inactive: int
    unacked_notices: int
    unacked_people: int

    def empty(self) -> bool:
        return not any(
            (
                self.pending_entries,
                self.pending_evaluations,
                self.due_soon,
                self.overdue,
                self.inactive,
                self.unacked_notices,
            )
        )


async def digest_for(s: AsyncSession, org: Org, today: date, now: datetime) -> Digest:
    """What a branch secretary should look at this week, counted in SQL."""
    secretary = (
        select(Membership.id)
        .where(Membership.org_id == org.id, Membership.role == Role.SECRETARY)
        .where(Membership.person_id == ServiceEntry.person_id)
    )
    # A secretary's own entries and commitments are reviewed by staff above, not by the secretary.
    pending_entries = (
        select(func.count(ServiceEntry.id))
        .where(ServiceEntry.org_id == org.id, ServiceEntry.status == EntryStatus.PENDING, ~exists(secretary))
        .scalar_subquery()
    )
    sec_owner = select(Membership.id).where(
        Membership.org_id == org.id,
        Membership.role == Role.SECRETARY,
        Membership.person_id == Commitment.person_id,
    )
    pending_evaluations = (
        select(func.count(Commitment.id))
        .where(
            Commitment.org_id == org.id,
            Commitment.status == CommitmentStatus.REPORTED,
            Commitment.is_branch.is_(False),
            ~exists(sec_owner),
        )
        .scalar_subquery()
    )
    made = and_(Commitment.org_id == org.id, Commitment.status == CommitmentStatus.MADE)
    due_soon = (
        select(func.count(Commitment.id))
        .where(made, Commitment.deadline >= today, Commitment.deadline <= today + timedelta(days=7))
        .scalar_subquery()
    )
    overdue = select(func.count(Commitment.id)).where(made, Commitment.deadline < today).scalar_subquery()
    active = exists().where(
        ServiceEntry.person_id == Person.id,
        ServiceEntry.day >= _quarter_start(today),
        ServiceEntry.day <= today,
    )
    inactive = (
        select(func.count(func.distinct(Person.id)))
        .join(Membership, Membership.person_id == Person.id)
        .where(
            Membership.org_id == org.id,
            Membership.role.in_(MEMBER_ROLES),
            Person.consent_at.is_not(None),
            Person.erased_at.is_(None),
            ~active,
        )
        .scalar_subquery()
    )
    unacked = and_(
        Notice.org_id == org.id,
        Notice.sent_at >= now - timedelta(days=DIGEST_NOTICE_DAYS),
        Delivery.notice_id == Notice.id,
        Delivery.kind == "notice",
        Delivery.status == DeliveryStatus.SENT,
        Delivery.acknowledged_at.is_(None),
    )
    unacked_notices = select(func.count(func.distinct(Notice.id))).where(unacked).scalar_subquery()
    unacked_people = select(func.count(Delivery.id)).where(unacked).scalar_subquery()
    row = (
        await s.execute(
            select(
                pending_entries,
                pending_evaluations,
                due_soon,
                overdue,
                inactive,
                unacked_notices,
                unacked_people,
            )
        )
    ).one()
    return Digest(*(int(x or 0) for x in row))


def _digest_text(_: Texts, org: Org, d: Digest) -> str:
    lines = [_("reminders.digest.title", org=org.name)]
    if d.pending_entries:
        lines.append(_("reminders.digest.pending_entries", count=d.pending_entries))
    if d.pending_evaluations:
        lines.append(_("reminders.digest.pending_evaluations", count=d.pending_evaluations))
    if d.due_soon:
        lines.append(_("reminders.digest.due_soon", count=d.due_soon))
    if d.overdue:
        lines.append(_("reminders.digest.overdue", count=d.overdue))
    if d.inactive:
        lines.append(_("reminders.digest.inactive", count=d.inactive))
    if d.unacked_notices:
        lines.append(_("reminders.digest.unacknowledged", notices=d.unacked_notices, people=d.unacked_people))
    return "\n".join(lines)


async def _weekly_digest(
    s: AsyncSession, org: Org, today: date, now: datetime
) -> list[tuple[Person, dict[str, Any]]]:
    d = await digest_for(s, org, today, now)
    if d.empty():
        return []
    return [(p, _message(_digest_text(texts(p.locale), org, d))) for p in await _secretaries(s, org.id)]


async def _commitment_due(
    s: AsyncSession, org: Org, today: date, params: dict[str, Any]
) -> list[tuple[Person, dict[str, Any]]]:
    days = CommitmentDueParams.model_validate(params).days_before
    rows = await s.execute(
        select(Person, Commitment)
        .join(Commitment, Commitment.person_id == Person.id)
        .where(
            Commitment.org_id == org.id,
            Commitment.status == CommitmentStatus.MADE,
            Commitment.deadline == today + timedelta(days=days),
            _reachable(),
        )
        .order_by(Person.id, Commitment.id)
    )
    by_person: dict[int, tuple[Person, list[Commitment]]] = {}
    for person, c in rows:
        by_person.setdefault(person.id, (person, []))[1].append(c)
    out = []
    for person, items in by_person.values():
        _ = texts(person.locale)
        lines = [_("reminders.commitment_due", days=days)]
        lines += [_("reminders.commitment_item", text=c.text, deadline=c.deadline.isoformat()) for c in items]
        lines.append(_("reminders.commitment_footer"))
        out.append((person, _message("\n".join(lines))))
    return out


async def _milestone(
    s: AsyncSession, org: Org, today: date, params: dict[str, Any], pack: Pack
) -> list[tuple[Person, dict[str, Any]]]:
    chosen = MilestoneParams.model_validate(params)
    due = [
        (m, (m.date - today).days)
        for m in pack.milestones
        if (m.date - today).days in chosen.days(m.remind_days_before)
    ]
    if not due:
        return []
    out = []
    for person in await _secretaries(s, org.id):
        _ = texts(person.locale)
        lines = [_("reminders.milestone.title")]
        lines += [
            _("reminders.milestone.item", title=m.title.get(_.locale), date=m.date.isoformat(), days=days)
            for m, days in due
        ]
        out.append((person, _message("\n".join(lines))))
    return out


async def build_run(
    s: AsyncSession, run: ReminderRun, pack: Pack, today: date, now: datetime | None = None
) -> list[tuple[Person, dict[str, Any]]]:
    """The messages of one run: (recipient, outbox payload). `today` is in the rule's time zone."""
    rule = await s.get(ReminderRule, run.rule_id)
    if rule is None or rule.org_id is None:
        return []
    org = await s.get(Org, rule.org_id)
    if org is None or org.kind is not OrgKind.BRANCH:
        return []
    if rule.kind is ReminderKind.MONTHLY_NUDGE:
        return await _monthly_nudge(s, org, today)
    if rule.kind is ReminderKind.WEEKLY_DIGEST:
        return await _weekly_digest(s, org, today, now or run.due_at)
    if rule.kind is ReminderKind.COMMITMENT_DUE:
        return await _commitment_due(s, org, today, rule.params)
    return await _milestone(s, org, today, rule.params, pack)


def local_today(rule: ReminderRule, now: datetime) -> date:
    return now.astimezone(ZoneInfo(rule.timezone)).date()


async def execute_run(s: AsyncSession, run: ReminderRun, pack: Pack, now: datetime) -> int:
    """Build a claimed run, enqueue its messages, record the outcome; return the recipients."""
    rule = await s.get(ReminderRule, run.rule_id)
    assert rule is not None  # runs cascade with their rule
    messages = await build_run(s, run, pack, local_today(rule, now), now)
    kind = "digest" if rule.kind is ReminderKind.WEEKLY_DIGEST else "reminder"
    assert all(p.telegram_id is not None for p, _ in messages)
    await enqueue_many(
        s,
        (
            OutMessage(kind, p.telegram_id or 0, f"rem:{run.id}:{p.id}", payload, p.id, None, now)
            for p, payload in messages
        ),
        now=now,
    )
    run.status = RunStatus.SENT if messages else RunStatus.EMPTY
    run.recipients = len(messages)
    run.finished_at = now
    await s.flush()
    return len(messages)


async def run_due(
    s: AsyncSession, pack: Pack, now: datetime, worker_id: str, limit: int = 200
) -> list[ReminderRun]:
    """Claim what is due (up to `limit` rules) and put its messages in the outbox. The caller commits."""
    runs = await claim_due_runs(s, now, worker_id, limit)
    for run in runs:
        await execute_run(s, run, pack, now)
    return runs
