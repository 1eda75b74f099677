"""Bad input is a clear answer, never a 500: every route of the admin web (enumerated from the
Starlette app, so a new page is covered the day it is added) gets hostile ids, numbers, dates and
texts in its path, query and form, signed in as the admin, and must answer without a 500 and
without changing any data."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData
from starlette.routing import Route

from tests.admin.conftest import csrf, make_objects, sign_in

# Tables that record that something was looked at, not data: a valid search with a silly page
# number is audited, and a session notes when it was last used.
NOT_DATA = {"audit_log", "admin_sessions", "alembic_version"}
# Signing out would end the test's own session; it is tested in test_web_sessions.py.
SKIP = {"/logout", "/logout/everywhere"}
PARAMS = ("org", "person", "status", "from", "to", "q", "page", "fmt", "all", "role", "action", "next")
FIELDS = (
    "ids",
    "decision",
    "reason",
    "text",
    "audience",
    "when",
    "name",
    "kind",
    "parent",
    "rating",
    "enabled",
    "cron",
    "days_before",
    "nonce",
    "token",
    "username",
    "password",
    "lang",
    "back",
)

BAD_NUMBERS = ["²", "٣", "𝟘", "-1", "0", "1" * 23, "9" * 12, "1e9", "0x10", "1_000", " 7", "NaN", "3.5"]
BAD_DATES = [
    "9999-12-31",
    "0001-01-01",
    "2026-02-30",
    "２０２６-０１-０１",
    "9999-12-31T23:59-14:00",
    "2026-13-01",
    "+002026-01-01",
]
CONTROL = ["\x00", "a\x00b", "\x1b[31m", "\u2028", "\x7f", "名\x00字"]


def hostile_text() -> st.SearchStrategy[str]:
    """Free text that no form may accept: it always holds a control character."""
    return st.builds(
        lambda a, c, b: a + c + b, st.text(max_size=30), st.sampled_from(CONTROL), st.text(max_size=30)
    )


hostile_value = st.one_of(
    st.sampled_from(BAD_NUMBERS + BAD_DATES + CONTROL),
    hostile_text(),
    st.integers(min_value=2**31, max_value=10**30).map(str),
)
path_id = st.one_of(
    st.sampled_from(["0", "1" * 23, "9" * 12, "2147483648"]), st.integers(2**31, 10**25).map(str)
)


def _routes(app: Any) -> list[tuple[str, str]]:
    out = []
    for r in app.routes:
        if isinstance(r, Route) and r.path not in SKIP:
            out.extend((m, r.path) for m in sorted(r.methods or ()) if m != "HEAD")
    return out


_TABLES: list[MetaData] = []


async def _snapshot(sessionmaker) -> dict[str, list[str]]:
    """Every row of every table (reflected once from the database, not taken from the models)."""
    async with sessionmaker() as s:
        conn = await s.connection()
        if not _TABLES:
            meta = MetaData()
            await conn.run_sync(lambda c: meta.reflect(bind=c))
            _TABLES.append(meta)
        meta = _TABLES[0]
        out = {}
        for table in meta.sorted_tables:
            if table.name in NOT_DATA:
                continue
            rows = (await conn.execute(table.select())).mappings()
            out[table.name] = sorted(json.dumps(dict(r), default=str, sort_keys=True) for r in rows)
        return out


@pytest.fixture
async def signed_in(client, sessionmaker, session, world):
    await make_objects(session, world)
    await sign_in(client, sessionmaker, world.admin)
    return await csrf(client)


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found, not shrunk for minutes
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_every_route_answers_hostile_input_without_a_500_or_a_change(
    app, client, sessionmaker, signed_in, data
) -> None:
    before = await _snapshot(sessionmaker)
    method, path = data.draw(st.sampled_from(_routes(app)), label="route")
    url = re.sub(r"\{(\w+):int\}", lambda _: data.draw(path_id, label="id"), path)
    if "{token}" in url:
        token = data.draw(st.text(min_size=1, max_size=40), label="token")
        url = url.replace("{token}", quote(token, safe=""))
    query = data.draw(st.dictionaries(st.sampled_from(PARAMS), hostile_value, max_size=4), label="query")
    if method == "GET":
        r = await client.get(url, params=query)
    else:
        form = data.draw(
            st.dictionaries(st.sampled_from(FIELDS), hostile_value, min_size=1, max_size=5), label="form"
        )
        r = await client.post(url, params=query, data={**form, "csrf": signed_in})
    assert r.status_code < 500, (method, url, query, r.status_code)
    assert "出了问题" not in r.text  # the apology of an unexpected failure
    assert await _snapshot(sessionmaker) == before, (method, url, query)
