"""`branchbot admin`: serve the admin web on its own, give an admin or staff person a password,
or print a one-time sign-in link.

    branchbot admin                                  serve on ADMIN_HOST:ADMIN_PORT
    branchbot admin user add admin                   a fresh install's first admin (asked twice)
    branchbot admin user add wang --person 3         set a username and password (asked twice)
    branchbot admin link --person 3                  a sign-in link valid for 10 minutes

The command line acts as the system operator (an admin everywhere, audited with via="cli").
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from admin.cli import cli_id, cli_text
from config.settings import Settings, get_settings
from content.i18n import texts
from storage.errors import Refused


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("admin", help="the admin web: serve it, set passwords, sign-in links")
    p.set_defaults(func=_serve)
    asub = p.add_subparsers(dest="admin_cmd")
    serve = asub.add_parser("serve", help="serve the admin web on ADMIN_HOST:ADMIN_PORT (the default)")
    serve.set_defaults(func=_serve)
    user = asub.add_parser("user", help="admin web accounts")
    usub = user.add_subparsers(dest="user_cmd", required=True)
    add = usub.add_parser(
        "add",
        help="give an admin or staff person a username and password (without --person: the first admin)",
    )
    add.add_argument("username", type=cli_text)
    add.add_argument(
        "--person", type=cli_id, default=None, help="the person's id (omit it to create the first admin)"
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input (for scripts)"
    )
    add.set_defaults(func=_user_add)
    link = asub.add_parser("link", help="print a one-time sign-in link (valid 10 minutes)")
    link.add_argument("--person", type=cli_id, required=True, help="the person's id")
    link.set_defaults(func=_link)


def _say(key: str, **params: object) -> str:
    return texts(get_settings().default_locale).plain(key, **params)


def _serve(args: argparse.Namespace) -> int:
    from config.logs import setup_logging

    settings = get_settings()
    setup_logging(settings.log_level)
    asyncio.run(serve_alone(settings))
    return 0


async def serve_alone(settings: Settings) -> None:
    from admin.web import create_app, public_base, serve_admin
    from storage.db import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    try:
        app = create_app(make_sessionmaker(engine), settings)
        print(_say("web.cli.serving", url=public_base(settings)), flush=True)
        await serve_admin(app, settings.admin_host, settings.admin_port)
    finally:
        await engine.dispose()


class NoTerminal(Exception):
    """No password can be asked for: no terminal, and --password-stdin was not given."""


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise NoTerminal()
    try:
        first = getpass.getpass(_say("web.cli.password") + " ")
        again = getpass.getpass(_say("web.cli.password_again") + " ")
    except EOFError:  # the terminal closed while asking
        raise NoTerminal() from None
    return first if first == again else None


def _user_add(args: argparse.Namespace) -> int:
    try:
        password = _read_password(args.password_stdin)
    except NoTerminal:
        print(_say("web.cli.no_terminal"), file=sys.stderr)
        return 1
    if password is None:
        print(_say("web.cli.passwords_differ"), file=sys.stderr)
        return 1
    return asyncio.run(_set_password(get_settings(), args.person, args.username, password))


async def _set_password(settings: Settings, person_id: int | None, username: str, password: str) -> int:
    """Set a person's username and password; with no person, create the first admin."""
    from storage import web_auth
    from storage.audit import system_actor
    from storage.db import make_engine, make_sessionmaker, utcnow

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as s:
            try:
                if person_id is None:
                    person = await web_auth.create_first_admin(
                        s, system_actor(), username, password, now=utcnow()
                    )
                    done = _say("web.cli.admin_created", username=person.username, id=person.id)
                else:
                    person = await web_auth.set_password(s, system_actor(), person_id, username, password)
                    done = _say("web.cli.password_set", username=person.username, name=person.name)
            except Refused as e:
                print(_say(e.key, **e.params), file=sys.stderr)
                return 1
            await s.commit()
            print(done)
            return 0
    finally:
        await engine.dispose()


def _link(args: argparse.Namespace) -> int:
    return asyncio.run(_print_link(get_settings(), args.person))


async def _print_link(settings: Settings, person_id: int) -> int:
    from admin.web import sign_in_url
    from storage import web_auth
    from storage.access import load_actor
    from storage.db import make_engine, make_sessionmaker, utcnow

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as s:
            try:
                token = await web_auth.create_sign_in_link(s, await load_actor(s, person_id), utcnow())
            except Refused as e:
                print(_say(e.key, **e.params), file=sys.stderr)
                return 1
            await s.commit()
        print(sign_in_url(settings, token))
        return 0
    finally:
        await engine.dispose()
