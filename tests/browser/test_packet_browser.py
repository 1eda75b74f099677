"""述职与年检 in a real browser: staff rate a branch leader with a comment and release it; the
secretary sees the rating and downloads the draft."""

from __future__ import annotations

from io import BytesIO

from docx import Document
from sqlalchemy import select

from storage.models import LeaderReview
from tests.browser.conftest import screenshot_path
from tests.browser.test_admin_browser import _bytes, _sign_in_with_link, _value


async def test_rate_release_and_the_secretary_sees_it(site, page, browser) -> None:
    w = site.lived.world
    await _sign_in_with_link(site, page, w.staff)
    await page.get_by_role("link", name="述职与年检").click()
    await page.wait_for_load_state("networkidle")
    assert await page.locator("h1").inner_text() == "2026 年度述职评议"
    row = page.locator("tr", has_text=w.branch_a.name)
    await row.get_by_label("党工委述职评议等次").select_option(label="较好")
    await row.get_by_label("评语").fill("服务台账完整，承诺践诺及时")
    await row.get_by_role("button", name="保存述职评议").click()
    await page.wait_for_load_state("networkidle")
    assert "述职评议已保存" in await page.locator(".flash.ok").inner_text()
    await page.get_by_role("button", name="向支部书记发布述职评议结果").click()
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(screenshot_path("packet-sheet")), full_page=True)
    assert await _value(site, select(LeaderReview.rating)) == "fairly_good"
    assert page.problems == []

    context = await browser.new_context(
        locale="zh-CN", viewport={"width": 1440, "height": 900}, accept_downloads=True
    )
    secretary = await context.new_page()
    await _sign_in_with_link(site, secretary, w.secretary_a)
    await secretary.goto(site.at("/packet"))
    assert "较好" in await secretary.locator(".kpis").inner_text()
    await secretary.screenshot(path=str(screenshot_path("packet-branch")), full_page=False)
    async with secretary.expect_download() as info:
        await secretary.locator("#download-draft").click()
    draft = Document(BytesIO(await _bytes(await info.value)))
    assert draft.paragraphs[0].text.endswith("述职报告")
    await context.close()
