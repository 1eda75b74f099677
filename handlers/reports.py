"""/report: a report for a chosen period, as a short summary in chat and an .xlsx attachment.

A secretary gets the branch's report (storage.reports.branch_report, written by
storage.report_files) and can submit it upward (报送). Staff get the compiled report of their
subtree: each branch's numbers and whether (and when) it submitted for exactly that period, as
text and as a workbook written here from storage.reports.subtree_report and submissions.

Periods are offered as buttons (this month, last month, this quarter, this year, last year) or
typed ("2026-11", "2026-Q4", "2026", "2026-11-01 2026-11-15"); the buttons carry the dates, so
an old button means the period it showed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from sqlalchemy.ext.asyncio import AsyncSession

from content.i18n import Texts, period_label
from content.pack import Pack
from handlers.kit.forms import pack_messages
from handlers.kit.sending import File, send_files, send_texts
from handlers.kit.wizard import Stale
from handlers.manage import hours, local_time, managers, message_of, secretary_branch, staff_root
from storage import reports, sent_reports
from storage.access import Actor, get_org
from storage.report_files import branch_report_xlsx, subtree_report_xlsx
from storage.reports import OTHER, BranchReport, SubmissionRow, SubtreeReport

router = Router(name=__name__)
router.message.filter(managers())
router.callback_query.filter(managers())

BRANCH, SUBTREE = "b", "s"
HOURS_FORMAT, COUNT_FORMAT, DAY_FORMAT, SCORE_FORMAT = "0.00", "0", "yyyy-mm-dd", "0.0"
MESSAGE_MAX = 3800


class ReportPeriod(CallbackData, prefix="srp"):
    kind: str  # BRANCH | SUBTREE
    org_id: int
    start: int  # yyyymmdd
    end: int


class ReportCustom(CallbackData, prefix="src"):
    kind: str
    org_id: int


class ReportSubmit(CallbackData, prefix="srs"):
    org_id: int
    start: int
    end: int


class ReportFlow(StatesGroup):
    period = State()


# ---- periods (pure) ----


class PeriodError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def month_range(year: int, month: int) -> tuple[date, date]:
    first = date(year, month, 1)
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return first, nxt - timedelta(days=1)


def quarter_range(year: int, quarter: int) -> tuple[date, date]:
    first = 3 * (quarter - 1) + 1
    return date(year, first, 1), month_range(year, first + 2)[1]


def presets(today: date) -> list[tuple[str, dict[str, Any], date, date]]:
    """(catalog key, its params, first day, last day) of the periods offered as buttons."""
    last_month = today.replace(day=1) - timedelta(days=1)
    quarter = (today.month - 1) // 3 + 1
    return [
        ("reports_chat.this_month", {"month": today.month}, *month_range(today.year, today.month)),
        (
            "reports_chat.last_month",
            {"month": last_month.month},
            *month_range(last_month.year, last_month.month),
        ),
        ("reports_chat.this_quarter", {"quarter": quarter}, *quarter_range(today.year, quarter)),
        ("reports_chat.this_year", {"year": today.year}, date(today.year, 1, 1), date(today.year, 12, 31)),
        (
            "reports_chat.last_year",
            {"year": today.year - 1},
            date(today.year - 1, 1, 1),
            date(today.year - 1, 12, 31),
        ),
    ]


_DAY = r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"
_RANGE = re.compile(rf"^{_DAY}\s*(?:~|～|-|—|至|到|to|\s)\s*{_DAY}$", re.I)
_MONTH = re.compile(r"^(\d{4})[-/.年](\d{1,2})月?$")
_QUARTER = re.compile(r"^(\d{4})[-\s]?[qQ]([1-4])$|^(\d{4})年?第?([1-4一二三四])季度$")
_YEAR = re.compile(r"^(\d{4})年?$")
_CN = {"一": 1, "二": 2, "三": 3, "四": 4}


def parse_period(text: str) -> tuple[date, date]:
    """A period typed by a person: "2026-11", "2026年11月", "2026-Q4", "2026年第四季度", "2026",
    or two days ("2026-11-01 2026-11-15", "2026-11-01至2026-11-15"). Raises `PeriodError`."""
    t = " ".join((text or "").split())
    try:
        if m := _RANGE.match(t):
            a = date(int(m[1]), int(m[2]), int(m[3]))
            b = date(int(m[4]), int(m[5]), int(m[6]))
            if b < a:
                raise PeriodError("reports_chat.period_order")
            return a, b
        if m := _MONTH.match(t):
            return month_range(int(m[1]), int(m[2]))
        if m := _QUARTER.match(t):
            year, q = (m[1], m[2]) if m[1] else (m[3], m[4])
            return quarter_range(int(year), int(_CN.get(q, q)))
        if m := _YEAR.match(t):
            return date(int(m[1]), 1, 1), date(int(m[1]), 12, 31)
    except ValueError as e:
        if isinstance(e, PeriodError):
            raise
        raise PeriodError("reports_chat.bad_period") from None
    raise PeriodError("reports_chat.bad_period")


def as_int(d: date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


def as_date(n: int) -> date:
    return date(n // 10000, n // 100 % 100, n % 100)


# ---- choosing ----


def _target(actor: Actor) -> tuple[str, int] | None:
    root = staff_root(actor)
    if root is not None:
        return SUBTREE, root
    branch = secretary_branch(actor)
    return (BRANCH, branch) if branch is not None else None


def period_keyboard(_: Texts, kind: str, org_id: int, today: date) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=_(key, **params),
                callback_data=ReportPeriod(kind=kind, org_id=org_id, start=as_int(a), end=as_int(b)).pack(),
            )
        ]
        for key, params, a, b in presets(today)
    ]
    rows.append(
        [
            InlineKeyboardButton(
                text=_("reports_chat.custom"), callback_data=ReportCustom(kind=kind, org_id=org_id).pack()
            )
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


@router.message(Command("report"))
async def cmd_report(
    message: Message, session: AsyncSession, actor: Actor, _: Texts, today: date, state: FSMContext
) -> None:
    await state.clear()
    target = _target(actor)
    if target is None:
        await message.answer(_("manage_chat.no_branches"))
        return
    kind, org_id = target
    org = await get_org(session, org_id)
    key = "reports_chat.pick_period_subtree" if kind == SUBTREE else "reports_chat.pick_period"
    await message.answer(_(key, org=org.name), reply_markup=period_keyboard(_, kind, org_id, today))


@router.callback_query(ReportCustom.filter())
async def on_custom_click(
    query: CallbackQuery, callback_data: ReportCustom, _: Texts, state: FSMContext
) -> None:
    if callback_data.kind not in (BRANCH, SUBTREE):
        raise Stale()
    await state.set_state(ReportFlow.period)
    await state.set_data({"kind": callback_data.kind, "org_id": callback_data.org_id})
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.answer(_("reports_chat.ask_period"))


@router.message(ReportFlow.period, F.text, ~F.text.startswith("/"))
async def on_period_text(
    message: Message,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    today: date,
    tz: tzinfo,
    state: FSMContext,
) -> None:
    try:
        start, end = parse_period(message.text or "")
    except PeriodError as e:
        await message.answer(_(e.key) + "\n" + _("reports_chat.period_example"))
        return
    data = await state.get_data()
    await state.clear()
    await _send_report(
        message, session, actor, str(data["kind"]), int(data["org_id"]), start, end, _, pack, today, tz
    )


@router.message(ReportFlow.period, ~F.text.startswith("/"))
async def on_period_not_text(message: Message, _: Texts) -> None:
    await message.answer(_("reports_chat.ask_period"))


@router.callback_query(ReportPeriod.filter())
async def on_period_click(
    query: CallbackQuery,
    callback_data: ReportPeriod,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    today: date,
    tz: tzinfo,
) -> None:
    cd = callback_data
    msg = message_of(query)
    try:
        start, end = as_date(cd.start), as_date(cd.end)
    except ValueError:
        raise Stale() from None
    if msg is None or cd.kind not in (BRANCH, SUBTREE):
        raise Stale()
    # Build first (the store checks the scope), answer the button, then send.
    made = await _build(session, actor, cd.kind, cd.org_id, start, end, _, pack, today, tz)
    await query.answer()
    await _deliver(msg, made)


# ---- building and sending ----


async def _build(
    s: AsyncSession,
    actor: Actor,
    kind: str,
    org_id: int,
    start: date,
    end: date,
    _: Texts,
    pack: Pack,
    today: date,
    tz: tzinfo,
) -> tuple[list[str], InlineKeyboardMarkup | None, File]:
    if kind == BRANCH:
        # A submitted period opens as it was sent (figures and file), with what moved since.
        opened = await sent_reports.open_branch_report(s, actor, org_id, start, end, today, pack)
        report = opened.report
        chunks = [branch_summary(_, report, pack) + frozen_lines(_, opened, pack, tz)]
        markup = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=_("reports_chat.submit_button"),
                        callback_data=ReportSubmit(
                            org_id=org_id, start=as_int(start), end=as_int(end)
                        ).pack(),
                    )
                ]
            ]
        )
        # A submitted report's bytes are the frozen ones; its name, like every file's, is in the
        # reader's language.
        _stored_name, data = opened.workbook(lambda r: branch_report_xlsx(r, pack, _.locale))
        name = _.plain("files.branch_report", start=start.isoformat(), end=end.isoformat())
        caption = _(
            "reports_chat.file_branch", org=report.org_name, start=start.isoformat(), end=end.isoformat()
        )
    else:
        report_s = await reports.subtree_report(s, actor, org_id, start, end, today, pack)
        subs = await reports.submissions(s, actor, org_id, start, end)
        chunks = subtree_summary(_, report_s, subs, pack, tz)
        markup = None
        data = subtree_report_xlsx(report_s, subs, pack, _.locale, tz)
        name = _.plain("files.subtree_report", start=start.isoformat(), end=end.isoformat())
        caption = _(
            "reports_chat.file_subtree", org=report_s.org_name, start=start.isoformat(), end=end.isoformat()
        )
    return chunks, markup, File(name, data, caption)


async def _deliver(msg: Message, made: tuple[list[str], InlineKeyboardMarkup | None, File]) -> None:
    chunks, markup, file = made
    await send_texts(msg, chunks, markup)
    await send_files(msg, file)


async def _send_report(
    msg: Message,
    s: AsyncSession,
    actor: Actor,
    kind: str,
    org_id: int,
    start: date,
    end: date,
    _: Texts,
    pack: Pack,
    today: date,
    tz: tzinfo,
) -> None:
    await _deliver(msg, await _build(s, actor, kind, org_id, start, end, _, pack, today, tz))


def _action_lines(_: Texts, by_action: dict[str, int], pack: Pack) -> list[str]:
    titles = {a.id: a.title.get(_.locale) for a in pack.actions}
    out = []
    for action_id, minutes in by_action.items():
        title = titles.get(action_id) or (_("report.xlsx.other_action") if action_id == OTHER else action_id)
        out.append(_("reports_chat.action_line", action=title, hours=hours(minutes)))
    return out


def branch_summary(_: Texts, r: BranchReport, pack: Pack) -> str:
    lines = [
        _(
            "reports_chat.branch_title",
            org=r.org_name,
            start=r.date_from.isoformat(),
            end=r.date_to.isoformat(),
        ),
        _("reports_chat.hours", hours=hours(r.minutes), participants=r.participants, members=r.members_total),
        *_action_lines(_, r.minutes_by_action, pack),
    ]
    if r.joint_minutes:
        lines.append(_("reports_chat.joint", hours=hours(r.joint_minutes)))
    if r.pending_entries:
        lines.append(_("reports_chat.pending", count=r.pending_entries, hours=hours(r.pending_minutes)))
    c = r.commitments
    lines.append(
        _(
            "reports_chat.commitments",
            made=c.made,
            fulfilled=c.fulfilled,
            evaluated=c.evaluated,
            overdue=c.overdue,
        )
    )
    titles = {cl.id: cl.title.get(_.locale) for cl in pack.checklists}
    if r.checklists:
        scores = " · ".join(
            _(
                "reports_chat.score",
                title=titles.get(x.checklist_id, x.checklist_id),
                period=period_label(_, x.period),
                score=f"{x.score:g}",
            )
            for x in r.checklists
        )
        lines.append(_("reports_chat.checklists", scores=scores))
    else:
        lines.append(_("reports_chat.no_checklists"))
    lines.append(_("reports_chat.submit_hint"))
    return "\n".join(lines)


def frozen_lines(_: Texts, opened: sent_reports.Opened, pack: Pack, tz: tzinfo) -> str:
    """For a submitted period: when it was sent, the file's hash, and what changed since."""
    sent = opened.submission
    if sent is None:
        return ""
    lines = ["", _("report.frozen", when=local_time(sent.submitted_at, tz), sha=sent.sha256[:16])]
    if opened.changes:
        lines.append(_("report.changed_since"))
        lines += sent_reports.change_lines(_, opened.changes, _.locale, pack)
    else:
        lines.append(_("report.unchanged_since"))
    return "\n".join(lines)


def subtree_summary(
    _: Texts, r: SubtreeReport, subs: Sequence[SubmissionRow], pack: Pack, tz: tzinfo
) -> list[str]:
    c = r.commitments
    head = "\n".join(
        [
            _(
                "reports_chat.subtree_title",
                org=r.org_name,
                start=r.date_from.isoformat(),
                end=r.date_to.isoformat(),
            ),
            _("reports_chat.submitted_count", submitted=r.submitted, branches=len(r.branches)),
            _(
                "reports_chat.hours_once",
                hours=hours(r.minutes),
                participants=r.participants,
                members=r.members_total,
            ),
            *_action_lines(_, r.minutes_by_action, pack),
            _(
                "reports_chat.commitments",
                made=c.made,
                fulfilled=c.fulfilled,
                evaluated=c.evaluated,
                overdue=c.overdue,
            ),
            _("reports_chat.branches_header"),
        ]
    )
    by_id = {x.org_id: x for x in subs}
    titles = {cl.id: cl.title.get(_.locale) for cl in pack.checklists}
    lines: list[str] = []
    for n, b in enumerate(r.branches, start=1):
        sub = by_id.get(b.org_id)
        last = b.last_assessment
        line = _(
            "reports_chat.branch_line",
            n=n,
            name=b.name,
            hours=hours(b.minutes),
            participants=b.participants,
            members=b.members_total,
            made=b.commitments.made,
            overdue=b.commitments.overdue,
            assessment=(
                _(
                    "reports_chat.score",
                    title=titles.get(last.checklist_id, last.checklist_id),
                    period=period_label(_, last.period),
                    score=f"{last.score:g}",
                )
                if last
                else _("reports_chat.not_assessed")
            ),
            submitted=(
                _("reports_chat.submitted_at", when=local_time(sub.submitted_at, tz))
                if sub is not None and sub.submitted_at is not None
                else _("reports_chat.not_submitted")
            ),
        )
        lines.append(line)
    return pack_messages([head, *lines], MESSAGE_MAX, "\n")


# ---- submitting ----


@router.callback_query(ReportSubmit.filter())
async def on_submit_click(
    query: CallbackQuery,
    callback_data: ReportSubmit,
    session: AsyncSession,
    actor: Actor,
    _: Texts,
    pack: Pack,
    now: datetime,
    tz: tzinfo,
) -> None:
    cd = callback_data
    try:
        start, end = as_date(cd.start), as_date(cd.end)
    except ValueError:
        raise Stale() from None
    row, _sent = await sent_reports.submit(
        session, actor, cd.org_id, start, end, None, now, pack=pack, locale=_.locale
    )
    parent = await get_org(session, row.to_org_id) if row.to_org_id is not None else None
    await session.commit()
    await query.answer()
    msg = message_of(query)
    if msg is not None:
        await msg.answer(
            _(
                "reports_chat.submitted",
                to=parent.name if parent else "—",
                start=start.isoformat(),
                end=end.isoformat(),
                when=local_time(row.submitted_at, tz),
            )
        )
