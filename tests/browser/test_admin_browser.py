"""The admin web in a real browser: sign in, approve entries in bulk, compose and send a notice,
download a report and open it. Screenshots of the dashboard and the notice page are saved under
test-artifacts/screenshots/ for people to look at."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from pathlib import Path

from argon2 import PasswordHasher
from openpyxl import load_workbook
from sqlalchemy import func, select

from content.pack import get_pack
from storage import outbox, web_auth
from storage.access import load_actor
from storage.audit import system_actor
from storage.models import Delivery, EntryStatus, Notice, ServiceEntry
from tests.browser.conftest import NOW, screenshot_path

PASSWORD = "correct horse battery staple"
PACK = get_pack()  # the store takes the pack as a parameter; the fronts pass CONTENT_PACK


async def _value(site, stmt):
    async with site.sessionmaker() as s:
        return await s.scalar(stmt)


async def _sign_in_with_link(site, page, person) -> None:
    """What a secretary does after sending /web to the bot."""
    async with site.sessionmaker() as s:
        token = await web_auth.create_sign_in_link(s, await load_actor(s, person.id), NOW)
        await s.commit()
    await page.goto(site.at(f"/login/link/{token}"))
    await page.get_by_role("button", name="确认登录").click()
    await page.wait_for_url(site.at("/"))


async def _bytes(download) -> bytes:
    return await asyncio.to_thread(Path(await download.path()).read_bytes)


async def _charts_drawn(page) -> list[str]:
    return await page.eval_on_selector_all(
        "figure.chart img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )


async def test_sign_in_with_a_password_and_see_the_dashboard(site, page, monkeypatch) -> None:
    monkeypatch.setattr(web_auth, "HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    staff = site.lived.world.staff
    async with site.sessionmaker() as s:
        await web_auth.set_password(s, system_actor(), staff.id, "wang", PASSWORD)
        await s.commit()
    await page.goto(site.at("/"))
    assert page.url.startswith(site.at("/login"))
    await page.get_by_label("用户名").fill("wang")
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url(site.at("/"))
    await page.wait_for_load_state("networkidle")
    assert await page.locator("h1").inner_text() == "工作概览"
    assert await page.locator(".kpi").count() == 5
    assert await _charts_drawn(page) == []
    assert "王干事" in await page.locator(".me").inner_text()
    await page.screenshot(path=screenshot_path("dashboard"), full_page=True)
    assert page.problems == []  # no script errors, no Content-Security-Policy violations


async def test_approve_entries_in_bulk(site, page) -> None:
    w = site.lived.world
    pending = site.lived.pending_ids
    await _sign_in_with_link(site, page, w.secretary_a)
    await page.get_by_role("link", name="服务记录").click()
    await page.wait_for_load_state("networkidle")
    rows = page.locator("input[name=ids]")
    assert await rows.count() == len(pending)
    await page.get_by_label("全选").check()
    assert await page.locator("[data-selected-count]").inner_text() == str(len(pending))
    await page.get_by_role("button", name="通过所选").click()
    await page.wait_for_load_state("networkidle")
    assert f"已通过 {len(pending)} 条记录" in await page.locator(".flash.ok").inner_text()
    statuses = await _value(
        site,
        select(func.count())
        .select_from(ServiceEntry)
        .where(ServiceEntry.id.in_(pending), ServiceEntry.status == EntryStatus.APPROVED),
    )
    assert statuses == len(pending)
    queued = await _value(
        site, select(func.count()).select_from(Delivery).where(Delivery.dedupe_key.like("review:%"))
    )
    assert queued == len(pending)
    await page.screenshot(path=screenshot_path("entries"), full_page=True)
    assert page.problems == []


async def test_compose_and_send_a_notice(site, page) -> None:
    w = site.lived.world
    await _sign_in_with_link(site, page, w.staff)
    await page.get_by_role("link", name="通知", exact=True).click()
    await page.get_by_label("西宁市社会组织党工委下属各支部全体党员").check()
    text = "各支部：12 月 5 日上午 9 点召开年度述职评议会，请书记准时参加并提前报送材料。"
    await page.get_by_label("通知内容").fill(text)
    await page.get_by_role("button", name="发送通知").click()
    await page.wait_for_url("**/notices/*")
    notice_id = int(page.url.rsplit("/", 1)[1])
    assert await _value(site, select(Notice.text).where(Notice.id == notice_id)) == text
    recipients = await _value(
        site, select(func.count()).select_from(Delivery).where(Delivery.notice_id == notice_id)
    )
    assert recipients > 10
    assert await page.locator("table tbody tr").count() == recipients
    # The delivery worker sends, and people press "已阅": the page follows the store.
    async with site.sessionmaker() as s:
        rows = list(
            await s.scalars(select(Delivery).where(Delivery.notice_id == notice_id).order_by(Delivery.id))
        )
        for i, d in enumerate(rows):
            if i == 3:
                await outbox.mark_blocked(s, d.id, NOW)
                continue
            await outbox.mark_sent(s, d.id, 5000 + d.id, NOW + timedelta(seconds=i))
            if i % 3 != 2:
                d.acknowledged_at = NOW + timedelta(minutes=7 * i + 3)
        await s.commit()
    await page.reload()
    acked = sum(1 for i in range(len(rows)) if i != 3 and i % 3 != 2)
    assert (await page.locator(".kpi").nth(2).locator(".kpi-value").inner_text()).startswith(str(acked))
    await page.screenshot(path=screenshot_path("notice"), full_page=True)
    await page.get_by_role("button", name="提醒未阅读的人").click()
    await page.wait_for_load_state("networkidle")
    assert "已向" in await page.locator(".flash.ok").inner_text()
    assert page.problems == []


async def test_download_a_report_and_open_it(site, page) -> None:
    w = site.lived.world
    await _sign_in_with_link(site, page, w.staff)
    await page.goto(site.at(f"/reports?org={w.committee.id}"))
    await page.get_by_role("link", name="本年").click()
    await page.wait_for_load_state("networkidle")
    async with page.expect_download() as info:
        await page.locator("#download-xlsx").click()
    download = await info.value
    assert download.suggested_filename.endswith(".xlsx")
    wb = load_workbook(io.BytesIO(await _bytes(download)))
    assert [ws.title for ws in wb.worksheets] == ["汇总", "各支部"]
    branches = [row[0] for row in wb.worksheets[1].iter_rows(min_row=2, values_only=True)]
    assert branches == [b.name for b in site.lived.branches]
    hours = sum(row[3] for row in wb.worksheets[1].iter_rows(min_row=2, values_only=True))
    assert hours > 0
    await page.goto(site.at(f"/reports?org={w.branch_a.id}"))
    async with page.expect_download() as info:
        await page.locator("#download-xlsx").click()
    branch_book = load_workbook(io.BytesIO(await _bytes(await info.value)))
    assert len(branch_book.worksheets) == 3
    await page.screenshot(path=screenshot_path("report"), full_page=True)
    assert page.problems == []


async def test_the_notice_page_in_english(site, page) -> None:
    w = site.lived.world
    await _sign_in_with_link(site, page, w.staff)
    await page.get_by_role("button", name="EN").click()
    await page.goto(site.at(f"/notices/{site.lived.notice_id}"))
    assert await page.locator("h1").inner_text() == "Notice"
    await page.screenshot(path=screenshot_path("notice-en"), full_page=True)
    await page.goto(site.at("/"))
    assert await page.locator("h1").inner_text() == "Dashboard"
    assert await _charts_drawn(page) == []
    await page.screenshot(path=screenshot_path("dashboard-en"), full_page=True)


async def test_a_submitted_report_and_the_audit_trail(site, page) -> None:
    """A submitted period opens as sent with what changed since; the audit page lists the
    submission and the changes made in the bot, filtered by channel."""
    from datetime import date

    from storage import sent_reports

    w = site.lived.world
    async with site.sessionmaker() as s:
        actor = await load_actor(s, w.secretary_a.id)
        await sent_reports.submit(
            s, actor, w.branch_a.id, date(2026, 11, 1), date(2026, 11, 27), None, NOW, pack=PACK
        )
        s.add(  # the data moves after the submission
            ServiceEntry(
                person_id=w.member_a.id,
                org_id=w.branch_a.id,
                day=date(2026, 11, 20),
                minutes=90,
                action="volunteer",
                description="补登",
                status=EntryStatus.APPROVED,
            )
        )
        await s.commit()
    await _sign_in_with_link(site, page, w.staff)
    await page.goto(site.at(f"/reports?org={w.branch_a.id}&from=2026-11-01&to=2026-11-27"))
    frozen = await page.locator("#frozen").inner_text()
    assert "报送的报表" in frozen and "服务时长合计（小时）" in frozen
    assert "党员志愿服务行动（小时）：0 → 1.5" in frozen  # an action without service is 0, not —
    await page.screenshot(path=screenshot_path("report-submitted"), full_page=True)
    await page.goto(site.at("/audit?via=bot"))
    assert "报送支部报表" in await page.locator("table").inner_text()
    await page.screenshot(path=screenshot_path("audit-bot"), full_page=True)
    assert page.problems == []
