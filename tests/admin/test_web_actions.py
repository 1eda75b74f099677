"""What the pages do: bulk review (and telling the members), notices (send, schedule, cancel,
nudge, per-recipient view), reminders, organizations, evaluation, downloads and the audit trail.
Each check looks at the page and at the rows."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from content.i18n import texts
from content.pack import get_pack
from storage import outbox
from storage.models import (
    Assessment,
    AuditEntry,
    Commitment,
    CommitmentStatus,
    Delivery,
    EntryStatus,
    Notice,
    NoticeStatus,
    Org,
    Person,
    ReminderRule,
    ServiceEntry,
)
from tests.admin.conftest import NOW, csrf, make_objects, read, read_all, sign_in
from tests.factories import make_person

PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK


async def _entries(session, world, n: int = 2, who=None) -> list[int]:
    rows = [
        ServiceEntry(
            person_id=(who or p).id,
            org_id=world.branch_a.id,
            day=date(2026, 11, 20 + i),
            minutes=90,
            action="volunteer",
            place="社区",
            description=f"义诊{i}",
        )
        for i, p in enumerate([world.member_a, world.member_a2][:n])
    ]
    session.add_all(rows)
    await session.commit()
    return [r.id for r in rows]


async def _statuses(sessionmaker, ids: list[int]) -> list[EntryStatus]:
    async with sessionmaker() as s:
        rows = await s.execute(select(ServiceEntry.id, ServiceEntry.status).where(ServiceEntry.id.in_(ids)))
        got = dict(rows.all())
    return [got[i] for i in ids]


async def test_bulk_approval_changes_the_entries_and_tells_the_members(
    client, session, sessionmaker, world, wakes
) -> None:
    ids = await _entries(session, world)
    await sign_in(client, sessionmaker, world.secretary_a)
    page = await client.get("/entries")
    assert all(f'name="ids" value="{i}"' in page.text for i in ids)
    r = await client.post(
        "/entries/review",
        data={
            "csrf": await csrf(client),
            "ids": [str(i) for i in ids],
            "decision": "approve",
            "back": "/entries?status=all",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/entries?status=all"
    assert await _statuses(sessionmaker, ids) == [EntryStatus.APPROVED] * 2
    keys = await read_all(sessionmaker, select(Delivery.dedupe_key))
    assert sorted(keys) == sorted(f"review:{i}:approved" for i in ids)
    assert wakes.count == 1
    assert "已通过 2 条记录" in (await client.get("/entries?status=all")).text


async def test_rejecting_needs_a_reason_and_the_member_hears_it(client, session, sessionmaker, world) -> None:
    ids = await _entries(session, world, 1)
    await sign_in(client, sessionmaker, world.secretary_a)
    token = await csrf(client)
    r = await client.post("/entries/review", data={"csrf": token, "ids": str(ids[0]), "decision": "reject"})
    assert r.status_code == 303
    assert "请" in (await client.get("/entries")).text  # the refusal is shown as a message
    assert await _statuses(sessionmaker, ids) == [EntryStatus.PENDING]
    r = await client.post(
        "/entries/review",
        data={"csrf": token, "ids": str(ids[0]), "decision": "reject", "reason": "缺少服务地点"},
    )
    assert await _statuses(sessionmaker, ids) == [EntryStatus.REJECTED]
    text = await read(sessionmaker, select(Delivery.payload))
    assert "缺少服务地点" in text["text"]


async def test_a_secretary_cannot_approve_their_own_entry(client, session, sessionmaker, world) -> None:
    ids = await _entries(session, world, 1, who=world.secretary_a)
    await sign_in(client, sessionmaker, world.secretary_a)
    assert f'name="ids" value="{ids[0]}"' not in (await client.get("/entries")).text
    r = await client.post(
        "/entries/review", data={"csrf": await csrf(client), "ids": str(ids[0]), "decision": "approve"}
    )
    assert r.status_code == 303
    assert await _statuses(sessionmaker, ids) == [EntryStatus.PENDING]
    # Their staff may.
    await sign_in(client, sessionmaker, world.staff)
    r = await client.post(
        "/entries/review", data={"csrf": await csrf(client), "ids": str(ids[0]), "decision": "approve"}
    )
    assert await _statuses(sessionmaker, ids) == [EntryStatus.APPROVED]


async def test_a_notice_composed_on_the_web_goes_to_the_outbox_once(
    client, sessionmaker, world, wakes
) -> None:
    await sign_in(client, sessionmaker, world.secretary_a)
    form = (await client.get(f"/notices?org={world.branch_a.id}")).text
    nonce = re.search(r'name="nonce" value="([^"]+)"', form).group(1)
    data = {
        "csrf": await csrf(client),
        "nonce": nonce,
        "audience": "branch_members",
        "text": "周五下午三点主题党日",
    }
    r = await client.post(f"/notices?org={world.branch_a.id}", data=data)
    assert r.status_code == 303 and re.fullmatch(r"/notices/\d+", r.headers["location"])
    again = await client.post(f"/notices?org={world.branch_a.id}", data=data)  # a second click
    assert again.headers["location"] == r.headers["location"]
    assert await read(sessionmaker, select(func.count()).select_from(Notice)) == 1
    people = await read(
        sessionmaker, select(func.count()).select_from(Delivery).where(Delivery.kind == "notice")
    )
    assert people == 2 and wakes.count == 1
    page = await client.get(r.headers["location"])
    assert page.status_code == 200 and "张三" in page.text and "李四" in page.text and "待发送" in page.text


async def test_a_scheduled_notice_waits_and_can_be_cancelled(client, sessionmaker, world) -> None:
    await sign_in(client, sessionmaker, world.staff)
    r = await client.post(
        f"/notices?org={world.committee.id}",
        data={
            "csrf": await csrf(client),
            "audience": "subtree_secretaries",
            "text": "请报送本季度材料",
            "when": "2026-12-01T09:00",
        },
    )
    notice_id = int(r.headers["location"].rsplit("/", 1)[1])
    n = await read(sessionmaker, select(Notice).where(Notice.id == notice_id))
    assert n.status is NoticeStatus.SCHEDULED and n.scheduled_at == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    assert await read(sessionmaker, select(func.count()).select_from(Delivery)) == 0
    r = await client.post(f"/notices/{notice_id}/cancel", data={"csrf": await csrf(client)})
    assert r.status_code == 303
    assert (
        await read(sessionmaker, select(Notice.status).where(Notice.id == notice_id))
        is NoticeStatus.CANCELLED
    )


async def test_nudging_reminds_only_those_who_have_not_acknowledged(
    client, session, sessionmaker, world, wakes
) -> None:
    objects = await make_objects(session, world)
    notice_id = objects.notice["a"]
    async with sessionmaker() as s:
        for d in await s.scalars(select(Delivery).where(Delivery.notice_id == notice_id)):
            await outbox.mark_sent(s, d.id, 100 + d.id, NOW)
            if d.person_id == world.member_a.id:
                d.acknowledged_at = NOW
        await s.commit()
    await sign_in(client, sessionmaker, world.secretary_a)
    page = await client.get(f"/notices/{notice_id}")
    assert "1<small>/ 2</small>" in page.text
    r = await client.post(f"/notices/{notice_id}/nudge", data={"csrf": await csrf(client)})
    assert r.status_code == 303 and wakes.count == 1
    nudged = await read_all(sessionmaker, select(Delivery.person_id).where(Delivery.kind == "nudge"))
    assert nudged == [world.member_a2.id]
    assert "已向 1 人发送提醒" in (await client.get(f"/notices/{notice_id}")).text


async def test_reminder_rules_can_be_changed_and_bad_times_are_explained(
    client, session, sessionmaker, world
) -> None:
    objects = await make_objects(session, world)
    rule = objects.rule["a"]
    await sign_in(client, sessionmaker, world.secretary_a)
    token = await csrf(client)
    r = await client.post(
        f"/reminders/{rule}", data={"csrf": token, "cron": "30 8 * * 1", "back": "/reminders"}
    )
    assert r.status_code == 303
    row = await read(sessionmaker, select(ReminderRule).where(ReminderRule.id == rule))
    assert row.cron == "30 8 * * 1" and row.enabled is False
    await client.post(f"/reminders/{rule}", data={"csrf": token, "cron": "every monday", "enabled": "1"})
    assert "提醒时间格式不正确" in (await client.get(f"/reminders?org={world.branch_a.id}")).text
    assert (
        await read(sessionmaker, select(ReminderRule.cron).where(ReminderRule.id == rule))
    ) == "30 8 * * 1"


async def test_staff_add_a_branch_under_their_committee(client, sessionmaker, world) -> None:
    await sign_in(client, sessionmaker, world.staff)
    r = await client.post(
        "/orgs",
        data={
            "csrf": await csrf(client),
            "parent": str(world.committee.id),
            "name": "西宁市书法家协会党支部",
            "kind": "branch",
            "category": "academic",
        },
    )
    assert r.status_code == 303
    org = await read(sessionmaker, select(Org).where(Org.name == "西宁市书法家协会党支部"))
    assert org.parent_id == world.committee.id and org.path.startswith(world.committee.path)
    assert "西宁市书法家协会党支部" in (await client.get("/orgs")).text


async def test_a_reported_commitment_is_evaluated(client, session, sessionmaker, world) -> None:
    objects = await make_objects(session, world)
    cid = objects.commitment["a"]
    await sign_in(client, sessionmaker, world.secretary_a)
    assert "评诺" in (await client.get(f"/commitments?org={world.branch_a.id}")).text
    r = await client.post(
        f"/commitments/{cid}/evaluate",
        data={"csrf": await csrf(client), "rating": "excellent", "comment": "带头作用明显"},
    )
    assert r.status_code == 303
    c = await read(sessionmaker, select(Commitment).where(Commitment.id == cid))
    assert (
        c.status is CommitmentStatus.EVALUATED
        and c.rating == "excellent"
        and c.evaluated_by_id == world.secretary_a.id
    )


@pytest.fixture
async def approved(session, world) -> None:
    session.add_all(
        [
            ServiceEntry(
                person_id=world.member_a.id,
                org_id=world.branch_a.id,
                day=date(2026, 11, 2),
                minutes=120,
                action="volunteer",
                description="义诊",
                status=EntryStatus.APPROVED,
            ),
            ServiceEntry(
                person_id=world.member_b.id,
                org_id=world.branch_b.id,
                day=date(2026, 10, 2),
                minutes=60,
                action="welfare_day",
                description="植树",
                status=EntryStatus.APPROVED,
            ),
        ]
    )
    await session.commit()


async def test_a_branch_report_downloads_as_a_real_workbook(client, sessionmaker, world, approved) -> None:
    await sign_in(client, sessionmaker, world.secretary_a)
    page = await client.get(f"/reports?org={world.branch_a.id}&from=2026-01-01&to=2026-11-28")
    assert page.status_code == 200 and "张三" in page.text
    r = await client.get(f"/reports/download?org={world.branch_a.id}&from=2026-01-01&to=2026-11-28&fmt=xlsx")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    wb = load_workbook(io.BytesIO(r.content))
    summary = {row[0]: row[1] for row in wb.worksheets[0].iter_rows(min_row=2, values_only=True)}
    assert summary["党支部"] == world.branch_a.name and summary["服务时长合计（小时）"] == 2
    assert await read(
        sessionmaker, select(AuditEntry.detail).where(AuditEntry.action == "report.export")
    ) == {"format": "xlsx", "from": "2026-01-01", "to": "2026-11-28"}


async def test_a_committee_report_downloads_per_branch(client, sessionmaker, world, approved) -> None:
    await sign_in(client, sessionmaker, world.staff)
    r = await client.get(f"/reports/download?org={world.committee.id}&from=2026-01-01&to=2026-11-28&fmt=csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    by_branch = {row[0]: row[3] for row in rows[1:]}
    assert by_branch == {world.branch_a.name: "2.0", world.branch_b.name: "1.0"}
    x = await client.get(f"/reports/download?org={world.committee.id}&from=2026-01-01&to=2026-11-28&fmt=xlsx")
    wb = load_workbook(io.BytesIO(x.content))
    assert len(wb.worksheets) == 2 and wb.worksheets[1].max_row == 3
    # The same compiled workbook as the chat's /report: who submitted is part of it.
    headers = [c.value for c in wb.worksheets[1][1]]
    assert texts("zh").plain("reports_chat.xlsx.submitted") in headers


async def test_member_export_neutralizes_formulas_and_is_audited(
    client, session, sessionmaker, world
) -> None:
    await make_person(session, '=HYPERLINK("http://evil","x")', world.branch_a)
    await session.commit()
    await sign_in(client, sessionmaker, world.secretary_a)
    r = await client.get(f"/members/export?org={world.branch_a.id}&fmt=xlsx")
    ws = load_workbook(io.BytesIO(r.content)).active
    names = [c.value for c in ws["A"]][1:]
    assert '\'=HYPERLINK("http://evil","x")' in names and all(not str(n).startswith("=") for n in names)
    c = await client.get(f"/members/export?org={world.branch_a.id}&fmt=csv")
    assert "'=HYPERLINK" in c.content.decode("utf-8-sig")
    details = await read(
        sessionmaker,
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "members.export"),
    )
    assert details == 2


async def test_looking_at_a_member_is_in_the_audit_log(client, sessionmaker, world) -> None:
    await sign_in(client, sessionmaker, world.staff)
    page = await client.get(f"/members/{world.member_a.id}")
    assert page.status_code == 200 and "张三" in page.text
    row = await read(sessionmaker, select(AuditEntry).where(AuditEntry.action == "person.view"))
    assert row.actor_id == world.staff.id and row.subject_person_id == world.member_a.id and row.via == "web"
    audit = await client.get(f"/audit?person={world.member_a.id}")
    assert "查看个人信息" in audit.text and "王干事" in audit.text and "张三" in audit.text


async def test_the_entries_page_shows_hours_per_status_not_their_sum(
    client, session, sessionmaker, world
) -> None:
    for day, minutes, status in (
        (1, 120, EntryStatus.APPROVED),
        (2, 90, EntryStatus.PENDING),
        (3, 30, EntryStatus.REJECTED),
    ):
        session.add(
            ServiceEntry(
                person_id=world.member_a.id,
                org_id=world.branch_a.id,
                day=date(2026, 11, day),
                minutes=minutes,
                action="volunteer",
                place="城东社区",
                description="社区义诊",
                status=status,
            )
        )
    await session.commit()
    await sign_in(client, sessionmaker, world.secretary_a)
    page = (await client.get(f"/entries?org={world.branch_a.id}&status=all")).text
    found = re.findall(r'data-status-total="(\w+)"><strong>([\d.]+)</strong><span>([^<]+)', page)
    totals = {st: (hours, label) for st, hours, label in found}
    assert totals == {
        "approved": ("2", "小时已通过（1 条）"),
        "pending": ("1.5", "小时待审核（1 条）"),
        "rejected": ("0.5", "小时未通过（1 条）"),
    }
    assert "小时合计" not in page


async def test_last_activity_is_the_same_figure_as_the_bot_shows(
    client, session, sessionmaker, world
) -> None:
    """最近活动 on the web is `people.last_activity`, as in the bot's /members: here the latest
    thing the person did is logging an entry, after their last recorded message."""
    from storage import people

    person = await session.get(Person, world.member_a.id)
    person.last_active_at = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
    entry = ServiceEntry(
        person_id=person.id,
        org_id=world.branch_a.id,
        day=date(2026, 11, 20),
        minutes=60,
        action="volunteer",
        place="城东社区",
        description="社区义诊",
        created_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
    )
    session.add(entry)
    await session.commit()
    actor = await world.actor(session, world.secretary_a)
    bot_rows = {
        r.person_id: r.last_activity for r in await people.list_members(session, actor, world.branch_a.id)
    }
    await session.commit()
    assert bot_rows[person.id] == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    await sign_in(client, sessionmaker, world.secretary_a)
    roster = (await client.get(f"/members?org={world.branch_a.id}")).text
    row = next(r for r in roster.split("<tr") if "张三" in r)
    assert "2026-11-20" in row and "2026-11-10" not in row
    profile = (await client.get(f"/members/{person.id}")).text
    assert "2026-11-20 20:00" in profile  # the same moment, in Beijing time


async def test_a_change_in_the_bot_shows_on_the_web_at_once(client, session, sessionmaker, world) -> None:
    """Both surfaces read the same store: an entry logged through the store is on the next page load."""
    from storage import service_log

    await sign_in(client, sessionmaker, world.secretary_a)
    assert "社区义诊（来自机器人）" not in (await client.get("/entries")).text
    async with sessionmaker() as s:
        actor = await world.actor(s, world.member_a)
        entry = service_log.new_entry(
            day=date(2026, 11, 27), minutes=60, action="volunteer", description="社区义诊（来自机器人）"
        )
        await service_log.log_service(
            s, actor, entry, source="chat:1", today=date(2026, 11, 28), window_days=90, pack=PACK
        )
        await s.commit()
    assert "社区义诊（来自机器人）" in (await client.get("/entries")).text


async def test_downloads_of_other_days_use_the_dates_given(client, sessionmaker, world, approved) -> None:
    await sign_in(client, sessionmaker, world.staff)
    r = await client.get(f"/entries/export?org={world.committee.id}&from=2026-11-01&to=2026-11-30&fmt=csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row[0] for row in rows[1:]] == ["张三"]
    bad = await client.get(f"/entries/export?org={world.committee.id}&from=yesterday&fmt=csv")
    assert bad.status_code == 400


async def test_pages_in_english(client, sessionmaker, world) -> None:
    await sign_in(client, sessionmaker, world.staff)
    await client.post("/lang", data={"csrf": await csrf(client), "lang": "en"})
    for path, words in (
        ("/entries", "Service entries"),
        ("/notices", "New notice"),
        ("/reports", "Download"),
    ):
        page = await client.get(path)
        assert words in page.text and 'lang="en"' in page.text


@pytest.mark.parametrize(
    "path",
    ["/charts/hours.svg", "/charts/participation.svg", "/charts/commitments.svg", "/charts/checklists.svg"],
)
async def test_charts_are_svg_images(client, sessionmaker, world, approved, path) -> None:
    await sign_in(client, sessionmaker, world.staff)
    r = await client.get(f"{path}?org={world.committee.id}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert r.text.lstrip().startswith("<?xml") and "<svg" in r.text and "<script" not in r.text


def test_month_labels_carry_the_year_where_it_changes() -> None:
    from admin.web.pages.dashboard import _month_label
    from storage.dashboard import MonthTotal

    class C:
        locale = "zh"

    assert _month_label(C(), MonthTotal(2026, 1, 0, 0), first=False) == "1月\n2026"  # type: ignore[arg-type]
    assert _month_label(C(), MonthTotal(2026, 5, 0, 0), first=False) == "5月"  # type: ignore[arg-type]


async def test_charts_follow_the_language_and_are_not_kept_by_the_browser(
    client, sessionmaker, world
) -> None:
    """Regression: a chart cached by the browser stayed in Chinese after switching to English."""
    await sign_in(client, sessionmaker, world.staff)
    url = f"/charts/commitments.svg?org={world.committee.id}"
    zh = await client.get(url)
    assert zh.headers["cache-control"] == "no-store"
    await client.post("/lang", data={"csrf": await csrf(client), "lang": "en"})
    assert (await client.get(url)).text != zh.text


async def test_checklist_periods_read_as_chinese_dates(client, session, sessionmaker, world) -> None:
    session.add(
        Assessment(
            org_id=world.branch_a.id,
            checklist_id="six_haves",
            period="2026-Q4",
            assessor_id=world.secretary_a.id,
            finished_at=NOW,
            score=80.0,
        )
    )
    await session.commit()
    await sign_in(client, sessionmaker, world.secretary_a)
    page = (await client.get(f"/checklists?org={world.branch_a.id}")).text
    assert "2026年第四季度" in page and "2026-Q4" not in page
