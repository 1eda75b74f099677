"""`branchbot admin`: the command is wired into the command line; passwords and sign-in links
from the command line go through the store (and its rules)."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from admin import web_cli
from bot.cli import build_parser
from storage import web_auth
from storage.models import AuditEntry, Membership, OrgKind, Person, Role, WebSignIn
from tests.admin.conftest import NOW

pytestmark = pytest.mark.usefixtures("cheap_hashing")


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


# ---- the first admin, from the command line alone ----


async def test_user_add_without_a_person_creates_the_first_admin(
    cli_settings, sessionmaker, session, capsys
) -> None:
    from tests.factories import make_org

    province = await make_org(session, "青海省社会组织党工委", OrgKind.PROVINCE)
    await session.commit()
    assert await web_cli._set_password(cli_settings, None, "Admin", "long enough password") == 0
    assert "已创建管理员 admin" in capsys.readouterr().out
    async with sessionmaker() as s:
        person = await s.scalar(select(Person).where(Person.username == "admin"))
        assert person is not None and person.telegram_id is None and person.consent_at is None
        roles = (await s.execute(select(Membership.org_id, Membership.role))).all()
        assert roles == [(province.id, Role.ADMIN)]
        actor = await web_auth.check_password(s, "admin", "long enough password", NOW)
        assert actor is not None and actor.is_admin
        row = await s.scalar(select(AuditEntry).where(AuditEntry.action == "web.admin_created"))
        assert row.via == "cli" and row.subject_person_id == person.id

    # A second time there is an admin already: one line, pointing at --person.
    assert await web_cli._set_password(cli_settings, None, "other", "long enough password") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--person" in err and f"编号 {person.id}" in err


async def test_user_add_without_a_person_before_any_org_is_one_line(cli_settings, clean_db, capsys) -> None:
    assert await web_cli._set_password(cli_settings, None, "admin", "long enough password") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "org add" in err


async def test_user_add_keeps_working_with_a_person(cli_settings, sessionmaker, world, capsys) -> None:
    assert await web_cli._set_password(cli_settings, world.admin.id, "root", "long enough password") == 0
    async with sessionmaker() as s:
        assert (await s.get(Person, world.admin.id)).username == "root"
        assert await s.scalar(select(func.count()).select_from(Person)) == 10  # the world's ten: nobody new


def test_user_add_with_no_terminal_and_no_stdin_flag_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    args = build_parser().parse_args(["admin", "user", "add", "admin"])
    assert args.person is None
    assert web_cli._user_add(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--password-stdin" in err and "Traceback" not in err
