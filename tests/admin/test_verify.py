"""The public certificate check, /verify/<code>: no sign-in needed; a genuine code shows the
name, the period and the total and nothing else; an unknown code says so plainly (404, no 500)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from tests.factories import make_certificate

ISSUED = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html.split("<body", 1)[1]).split())


async def test_a_genuine_code_shows_name_period_and_total_only(client, session, world) -> None:
    cert = await make_certificate(session, world.member_a, ISSUED)
    r = await client.get(f"/verify/{cert.code}")
    assert r.status_code == 200
    text = _text(r.text)
    assert "这是一份真实有效的志愿服务证明" in text
    assert world.member_a.name in text and "2026-01-01 至 2026-06-30" in text and "4.5 小时" in text
    # Nothing else about the person: no branch, no entries, no navigation into the admin web.
    assert world.branch_a.name not in text and "/members" not in r.text and "退出" not in text
    lower = await client.get(f"/verify/{cert.code.lower()}")
    assert lower.status_code == 200


@pytest.mark.parametrize("code", ["NOSUCHCODE123456", "x", "%E4%B8%AD" * 30, "<script>alert(1)"])
async def test_an_unknown_code_is_a_clear_not_found(client, session, world, code) -> None:
    await make_certificate(session, world.member_a, ISSUED)
    r = await client.get(f"/verify/{code}")
    assert r.status_code == 404
    assert "未找到验证码为" in r.text and "<script>alert" not in r.text
    assert world.member_a.name not in r.text
