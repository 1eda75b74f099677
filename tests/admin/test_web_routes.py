"""Every route × every role × inside and outside the role's scope.

The rule the web keeps (admin/web/context.py):
- not signed in: 302 to /login;
- a member (or any role a page is not for): 403;
- an object or org outside the actor's scope: 404, exactly like one that does not exist;
- otherwise the page (200) or, after a form, a redirect (303).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select, update
from starlette.routing import Route

from storage.models import AdminSession, Membership, Role
from tests.admin.conftest import csrf, make_objects, sign_in

ALL = ("admin", "staff", "other_staff", "secretary_a")
ABOVE = ("admin", "staff", "other_staff")
# Which side (branch A or branch C) lies inside each role's scope; the admin sees both.
INSIDE = {"admin": "a", "staff": "a", "other_staff": "c", "secretary_a": "a"}
OUTSIDE = {"staff": "c", "other_staff": "a", "secretary_a": "c"}


@dataclass(frozen=True)
class R:
    method: str
    path: str  # {org} {person} {notice} {rule} {commitment} {entry}: filled per side
    roles: tuple[str, ...] = ALL
    data: tuple[tuple[str, str], ...] = ()
    ok: int | None = None  # expected status inside the scope (default: 200 for GET, 303 for POST)
    upload: bool = False  # send a small good roster as the form's file

    @property
    def scoped(self) -> bool:
        return "{" in self.path or any("{" in v for _, v in self.data)

    def expected_ok(self) -> int:
        return self.ok or (200 if self.method == "GET" else 303)


ROUTES = (
    R("GET", "/?org={org}"),
    R("GET", "/charts/hours.svg?org={org}"),
    R("GET", "/charts/participation.svg?org={org}"),
    R("GET", "/charts/actions.svg?org={org}"),
    R("GET", "/charts/commitments.svg?org={org}"),
    R("GET", "/charts/checklists.svg?org={org}"),
    R("GET", "/orgs"),
    R("GET", "/members?org={org}"),
    R("GET", "/members/{person}"),
    R("GET", "/members/export?org={org}&fmt=csv"),
    R("GET", "/members/import?org={org}"),
    R("GET", "/members/import/template"),
    R("GET", "/entries?org={org}"),
    R("GET", "/entries?org={org}&status=all&person={person}"),
    R("GET", "/entries/export?org={org}&fmt=csv"),
    R("GET", "/commitments?org={org}"),
    R("GET", "/checklists?org={org}"),
    R("GET", "/notices?org={org}"),
    R("GET", "/notices/{notice}"),
    R("GET", "/reminders?org={org}"),
    R("GET", "/reports?org={org}"),
    R("GET", "/reports/download?org={org}&fmt=csv"),
    R("GET", "/packet?org={org}"),
    R("GET", "/packet/download?org={org}&kind=annex"),
    R("GET", "/audit", ABOVE),
    R("GET", "/content"),
    R("GET", "/content/checklists"),
    R("POST", "/orgs", ABOVE, (("parent", "{org}"), ("name", "新支部"), ("kind", "committee"))),
    R("POST", "/entries/review", ALL, (("ids", "{entry}"), ("decision", "approve"))),
    R("POST", "/commitments/{commitment}/evaluate", ALL, (("rating", "good"),)),
    R("POST", "/notices?org={org}", ALL, (("audience", "branch_members"), ("text", "明早九点开会"))),
    R("POST", "/notices/{notice}/nudge"),
    R("POST", "/notices/{notice}/cancel"),
    R("POST", "/reminders/{rule}", ALL, (("enabled", "1"), ("cron", "0 8 * * 1"))),
    R("POST", "/members/import?org={org}", ALL, ok=200, upload=True),
    R("POST", "/packet/rate", ABOVE, (("org", "{org}"), ("year", "2026"), ("rating", "good"))),
    R("POST", "/packet/release", ABOVE, (("org", "{org}"), ("year", "2026"))),
    R("POST", "/packet/submit", ("secretary_a",), (("org", "{org}"), ("year", "2026"))),
)


def fill(text: str, objects, side: str) -> str:
    return text.format(
        org=objects.org[side],
        person=objects.person[side],
        notice=objects.notice[side],
        rule=objects.rule[side],
        commitment=objects.commitment[side],
        entry=objects.entry[side],
    )


async def call(client: httpx.AsyncClient, r: R, objects, side: str, token: str) -> httpx.Response:
    url = fill(r.path, objects, side)
    if r.method == "GET":
        return await client.get(url)
    data = {k: fill(v, objects, side) for k, v in r.data}
    files = {"file": ("名册.csv", "姓名,角色\n新同志,党员\n".encode())} if r.upload else None
    return await client.post(url, data={**data, "csrf": token}, files=files)


def test_the_matrix_covers_every_route(app) -> None:
    """A new page must be added to the matrix (public routes are tested on their own)."""
    # /verify/{code} is public on purpose: tests/admin/test_verify.py
    public = {"/login", "/login/link/{token}", "/logout", "/lang", "/static/fonts/cjk.otf", "/verify/{code}"}
    special = {"/members/import/confirm", "/members/import/sheet/{token}"}  # upload tests
    special |= {"/evidence/{entry_id:int}"}  # tests/admin/test_web_evidence.py
    special |= {"/logout/everywhere"}  # it signs the client out: tests/admin/test_web_sessions.py
    served = {
        (m, r.path) for r in app.routes if isinstance(r, Route) for m in (r.methods or ()) if m != "HEAD"
    }
    tested = {(r.method, r.path.split("?")[0].replace("{org}", "").rstrip("/") or "/") for r in ROUTES}
    tested = {
        (
            m,
            p.replace("{person}", "{person_id:int}")
            .replace("{notice}", "{notice_id:int}")
            .replace("{rule}", "{rule_id:int}")
            .replace("{commitment}", "{commitment_id:int}"),
        )
        for m, p in tested
    }
    untested = {(m, p) for m, p in served if p not in public | special and (m, p) not in tested}
    assert not untested


def _matrix_cases() -> list[tuple[str, R]]:
    return [(role, r) for role in ALL for r in ROUTES if r.method == "POST"]


@pytest.mark.parametrize("role", ALL)
async def test_every_page_inside_and_outside_the_scope(client, sessionmaker, session, world, role) -> None:
    objects = await make_objects(session, world)
    await sign_in(client, sessionmaker, getattr(world, role))
    token = await csrf(client)
    wrong: list[str] = []
    for r in ROUTES:
        if r.method != "GET":
            continue
        sides = [("in", INSIDE[role])] + ([("out", OUTSIDE[role])] if role in OUTSIDE and r.scoped else [])
        for where, side in sides:
            got = (await call(client, r, objects, side, token)).status_code
            want = 403 if role not in r.roles else (r.expected_ok() if where == "in" else 404)
            if got != want:
                wrong.append(f"{r.method} {fill(r.path, objects, side)} ({where}): {got}, expected {want}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("role", "route"), _matrix_cases(), ids=lambda v: v if isinstance(v, str) else v.path
)
async def test_every_form_inside_and_outside_the_scope(
    client, sessionmaker, session, world, role, route
) -> None:
    objects = await make_objects(session, world)
    await sign_in(client, sessionmaker, getattr(world, role))
    token = await csrf(client)
    want_in = 403 if role not in route.roles else route.expected_ok()
    if role in OUTSIDE:
        got = (await call(client, route, objects, OUTSIDE[role], token)).status_code
        assert got == (403 if role not in route.roles else 404), "outside the scope"
    got = (await call(client, route, objects, INSIDE[role], token)).status_code
    assert got == want_in, "inside the scope"


async def test_signed_out_visitors_are_sent_to_sign_in(client, session, world) -> None:
    objects = await make_objects(session, world)
    token = await csrf(client, "/login")
    for r in ROUTES:
        res = await call(client, r, objects, "a", token)
        assert res.status_code == 302, (r.path, res.status_code)
        assert res.headers["location"].startswith("/login?next=")


async def test_a_secretary_made_a_member_is_signed_out_of_every_page(
    client, sessionmaker, session, world
) -> None:
    """A secretary signed in, then made a plain member: every request checks the role again, and
    a session whose person holds no web role any more ends (storage.admin_sessions)."""
    objects = await make_objects(session, world)
    await sign_in(client, sessionmaker, world.secretary_a)
    token = await csrf(client)
    await session.execute(
        update(Membership).where(Membership.person_id == world.secretary_a.id).values(role=Role.MEMBER)
    )
    await session.commit()
    for r in ROUTES:
        res = await call(client, r, objects, "a", token)
        assert res.status_code == 302 and res.headers["location"].startswith("/login"), r.path
    assert await session.scalar(select(func.count()).select_from(AdminSession)) == 0
    assert (
        await session.scalar(select(Membership.role).where(Membership.person_id == world.secretary_a.id))
        is Role.MEMBER
    )


async def test_staff_see_their_committee_not_the_other(client, sessionmaker, world) -> None:
    await sign_in(client, sessionmaker, world.staff)
    assert (await client.get(f"/?org={world.committee.id}")).status_code == 200
    assert (await client.get(f"/reports?org={world.committee.id}")).status_code == 200
    assert (await client.get(f"/?org={world.other_committee.id}")).status_code == 404
    assert (await client.get(f"/?org={world.province.id}")).status_code == 404
    # An id that exists nowhere answers exactly like one outside the scope.
    assert (await client.get("/?org=999999")).status_code == 404
    assert (await client.get("/members/999999")).status_code == 404
    assert (await client.get("/notices/999999")).status_code == 404
    assert (await client.get("/?org=abc")).status_code == 404
