"""No boxes for Chinese: on every page of the admin web, in Debian's headless Chromium with no
system Chinese font, every text node holding CJK is drawn with a font that has those characters.

The browser itself says which fonts drew each node (the DevTools protocol's
`CSS.getPlatformFontsForNode`): a node's CJK characters must come from the bundled Noto Sans CJK
SC, never from Liberation Sans or DejaVu (which have no CJK glyphs and draw boxes)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.routing import Route

from admin.web import create_app
from config.settings import Settings
from storage import web_auth
from storage.access import load_actor
from tests.browser.conftest import NOW, screenshot_path
from tests.factories import make_certificate

# What the stylesheet's unicode-range gives to the bundled face (ideographs, kana, CJK and
# full-width punctuation).
CJK = re.compile(
    "[\u2e80-\u2fdf\u2ff0-\u303f\u3040-\u30ff\u3100-\u312f\u31a0-\u31ff\u3200-\u33ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe10-\ufe1f\ufe30-\ufe4f\uff00-\uffef]"
)
CJK_FONT = "Noto Sans CJK SC"

# Every GET route of the admin web is either a page checked here or named below as not a page,
# so a new page cannot slip past this test.
NOT_PAGES = {
    "/charts/hours.svg",
    "/charts/participation.svg",
    "/charts/actions.svg",
    "/charts/commitments.svg",
    "/charts/checklists.svg",
    "/entries/export",
    "/members/export",
    "/members/import/template",
    "/members/import/sheet/{token}",
    "/reports/download",
    "/packet/download",
    "/static/fonts/cjk.otf",
    "/evidence/{entry_id:int}",  # a photo, not a page (its scope is tested in tests/admin)
}


@dataclass
class Drawn:
    tag: str
    text: str
    fonts: list[dict[str, Any]]


async def _cjk_nodes(page) -> list[Drawn]:
    """Each text node holding CJK (with its element), and the fonts the browser drew it with."""
    await page.evaluate("document.fonts.ready.then(() => true)")
    cdp = await page.context.new_cdp_session(page)
    try:
        await cdp.send("DOM.enable")
        await cdp.send("CSS.enable")
        doc = await cdp.send("DOM.getDocument", {"depth": -1, "pierce": True})
        found: list[tuple[dict[str, Any], str]] = []

        def walk(node: dict[str, Any], parent: str) -> None:
            if node.get("nodeType") == 3 and CJK.search(node.get("nodeValue", "")):
                found.append((node, parent))
            kids = (*node.get("children", []), *node.get("shadowRoots", []), node.get("contentDocument"))
            for k in kids:
                if k:
                    walk(k, node.get("nodeName", ""))

        walk(doc["root"], "")
        out = []
        for node, parent in found:
            # Asked of a text node, the browser answers for exactly that node's glyphs.
            fonts = (await cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]}))["fonts"]
            out.append(Drawn(parent, node["nodeValue"], fonts))
        return out
    finally:
        await cdp.detach()


def _boxes(drawn: list[Drawn]) -> list[str]:
    """Nodes some of whose CJK characters were drawn by a font without them. A font other than
    the CJK one may draw at most the node's non-CJK characters (digits, Latin, spaces)."""
    bad = []
    for d in drawn:
        if not d.fonts:  # not laid out: <title>, <option>, a closed <details>
            continue
        cjk = len(CJK.findall(d.text))
        latin = len(d.text) - cjk
        by_cjk = sum(f["glyphCount"] for f in d.fonts if f["familyName"].startswith(CJK_FONT))
        by_others = sum(f["glyphCount"] for f in d.fonts if not f["familyName"].startswith(CJK_FONT))
        if by_cjk < cjk or by_others > latin:
            fonts = ", ".join(f"{f['familyName']}×{f['glyphCount']}" for f in d.fonts)
            bad.append(f"<{d.tag.lower()}> {d.text.strip()[:30]!r}: {fonts}")
    return bad


async def _check(page, url: str, name: str, seen: list[int]) -> list[str]:
    await page.goto(url)
    await page.wait_for_load_state("networkidle")
    drawn = await _cjk_nodes(page)
    assert [d for d in drawn if d.fonts], f"{url}: no Chinese text drawn at all"
    seen.append(len(drawn))
    await page.screenshot(path=screenshot_path(f"fonts-{name}"), full_page=True)
    return [f"{url}: {b}" for b in _boxes(drawn)]


def _get_routes() -> set[str]:
    app = create_app(None, Settings(_env_file=None, admin_secret="x" * 40))  # type: ignore[arg-type, call-arg]
    return {r.path for r in app.routes if isinstance(r, Route) and "GET" in (r.methods or ())}


async def test_every_page_draws_chinese_with_a_font_that_has_it(site, page) -> None:
    w = site.lived.world
    seen: list[int] = []
    bad: list[str] = []
    # Signed out: the sign-in page, the sign-in link's confirmation, a page that is not there.
    async with site.sessionmaker() as s:
        token = await web_auth.create_sign_in_link(s, await load_actor(s, w.staff.id), NOW)
        await s.commit()
    bad += await _check(page, site.at("/login"), "login", seen)
    async with site.sessionmaker() as s:
        cert = await make_certificate(s, w.member_a, NOW)
    bad += await _check(page, site.at(f"/verify/{cert.code}"), "verify", seen)
    bad += await _check(page, site.at("/verify/NOSUCHCODE123456"), "verify-unknown", seen)
    bad += await _check(page, site.at(f"/login/link/{token}"), "link", seen)
    await page.get_by_role("button", name="确认登录").click()
    await page.wait_for_url(site.at("/"))
    pages = {
        "/": "dashboard",
        "/orgs": "orgs",
        "/members": "members",
        "/members/{person_id:int}": f"/members/{w.member_a.id}",
        "/members/import": "import",
        "/entries": "entries",
        "/commitments": "commitments",
        "/checklists": "checklists",
        "/notices": "notices",
        "/notices/{notice_id:int}": f"/notices/{site.lived.notice_id}",
        "/reminders": "reminders",
        "/reports": "reports",
        "/audit": "audit",
        "/content": "content",
        "/content/checklists": "content-checklists",
        "/packet": "packet",
    }
    public = {"/login", "/login/link/{token}", "/verify/{code}"}
    unchecked = _get_routes() - set(pages) - public - NOT_PAGES
    assert not unchecked, f"pages this test does not look at: {sorted(unchecked)}"
    for route, target in pages.items():
        path = target if target.startswith("/") else route
        bad += await _check(page, site.at(path), re.sub(r"\W+", "-", path.strip("/")) or "dashboard", seen)
    bad += await _check(page, site.at("/no-such-page"), "not-found", seen)
    # In English the names, org names and the 中文 switch are still Chinese.
    await page.get_by_role("button", name="EN").click()
    await page.wait_for_load_state("networkidle")
    for path in ("/", f"/members/{w.member_a.id}", f"/notices/{site.lived.notice_id}", "/audit"):
        bad += await _check(
            page, site.at(path), "en-" + (re.sub(r"\W+", "-", path.strip("/")) or "dashboard"), seen
        )
    assert bad == [], "Chinese drawn with a font that lacks it:\n" + "\n".join(bad)
    assert sum(seen) > 300  # the walk really found the pages' Chinese
    assert [p for p in page.problems if "404" not in p] == []  # the not-found page's own 404
