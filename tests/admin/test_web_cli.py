"""`branchbot admin`: the command is wired into the command line; passwords and sign-in links
from the command line go through the store (and its rules)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from admin import web_cli
from bot.cli import build_parser
from storage import web_auth
from storage.models import AuditEntry, Person, WebSignIn


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_auth, "HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    monkeypatch.setattr(web_auth, "_dummy", {})


def test_the_admin_command_is_registered() -> None:
    parser = build_parser()
    assert parser.parse_args(["admin"]).func is web_cli._serve
    assert parser.parse_args(["admin", "serve"]).func is web_cli._serve
    args = parser.parse_args(["admin", "user", "add", "wang", "--person", "3"])
    assert args.func is web_cli._user_add and args.username == "wang" and args.person == 3
    assert parser.parse_args(["admin", "link", "--person", "3"]).func is web_cli._link


@pytest.fixture
def cli_settings(web_settings, db_url):
    return web_settings.model_copy(update={"database_url": db_url})


async def test_user_add_sets_a_password(cli_settings, sessionmaker, world, capsys) -> None:
    assert await web_cli._set_password(cli_settings, world.staff.id, "Wang", "long enough password") == 0
    assert "wang" in capsys.readouterr().out
    async with sessionmaker() as s:
        assert (await s.get(Person, world.staff.id)).username == "wang"
        row = await s.scalar(select(AuditEntry).where(AuditEntry.action == "web.password_set"))
        assert row.via == "cli" and row.actor_id is None


async def test_user_add_refuses_a_member_with_one_clear_line(cli_settings, world, capsys) -> None:
    assert await web_cli._set_password(cli_settings, world.member_a.id, "zhang", "long enough password") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "/web" in err


async def test_link_prints_a_one_time_address(cli_settings, sessionmaker, world, capsys) -> None:
    assert await web_cli._print_link(cli_settings, world.secretary_a.id) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("http://127.0.0.1:8080/login/link/")
    async with sessionmaker() as s:
        row = await s.scalar(select(WebSignIn))
        assert row.person_id == world.secretary_a.id and row.token_hash == web_auth.token_hash(
            url.rsplit("/", 1)[1]
        )
    assert await web_cli._print_link(cli_settings, world.member_a.id) == 1
