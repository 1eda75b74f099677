"""Evidence photos and possible-duplicate marks on the entries page, in a real browser: the
thumbnail is drawn (the image loaded through the scope-checked route) and the mark links to the
other entry. The screenshot is saved under test-artifacts/screenshots/entries-evidence.png."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw
from sqlalchemy import select

from storage import evidence
from storage.evidence import EvidenceStore
from storage.models import ServiceEntry
from tests.browser.conftest import screenshot_path
from tests.browser.test_admin_browser import _sign_in_with_link


def photo() -> bytes:
    img = Image.new("RGB", (320, 240), (236, 240, 245))
    draw = ImageDraw.Draw(img)
    draw.rectangle((40, 60, 280, 200), fill=(200, 40, 40))
    draw.ellipse((120, 20, 200, 100), fill=(250, 200, 40))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


async def test_thumbnails_and_duplicate_marks_on_the_entries_page(site, page) -> None:
    w = site.lived.world
    async with site.sessionmaker() as s:
        first = await s.get(ServiceEntry, site.lived.pending_ids[0])
        assert first is not None and first.person_id is not None
        first.evidence_file_id = "AgACAgIAAxk-browser"
        key = EvidenceStore(site.settings.evidence_dir).put(first.person_id, photo())
        await evidence.attach(s, first.id, key)
        twin = ServiceEntry(
            person_id=first.person_id,
            org_id=first.org_id,
            day=first.day,
            minutes=first.minutes,
            action=first.action,
            description=first.description + "。",
        )
        s.add(twin)
        await s.commit()
        first_id, twin_id = first.id, twin.id
    await _sign_in_with_link(site, page, w.secretary_a)
    await page.goto(site.at("/entries?status=pending"))
    await page.wait_for_load_state("networkidle")

    img = page.locator(f'img[src="/evidence/{first_id}"]')
    assert await img.count() == 1
    assert await img.evaluate("i => i.complete && i.naturalWidth === 320")  # the photo itself, loaded
    box = await img.bounding_box()
    assert box is not None and 60 <= box["width"] <= 68  # a thumbnail, not the full photo
    mark = page.locator(f'a[href$="#entry-{twin_id}"]')
    assert await mark.count() == 1 and "可能重复" in await mark.inner_text()
    await page.screenshot(path=screenshot_path("entries-evidence"), full_page=True)
    assert page.problems == []
    async with site.sessionmaker() as s:
        assert (await s.scalar(select(ServiceEntry.evidence_path).where(ServiceEntry.id == first_id))) == key
