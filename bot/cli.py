"""The `branchbot` command line. Each area adds its subcommands through `register` functions,
so this file stays an index rather than a pile of commands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError

from config.settings import SettingsError, exit_on_bad_settings, get_settings
from content.pack import PackError

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _db(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("db", help="database schema")
    dsub = p.add_subparsers(dest="db_cmd", required=True)
    up = dsub.add_parser("upgrade", help="migrate the database to the newest schema")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=_db_upgrade)
    down = dsub.add_parser("downgrade", help="migrate down to a revision")
    down.add_argument("revision")
    down.set_defaults(func=_db_downgrade)


def _say(key: str, **params: object) -> str:
    from content.i18n import texts

    return texts(get_settings().default_locale).plain(key, **params)


def _db_upgrade(args: argparse.Namespace) -> int:
    from storage.migrate import upgrade

    url = get_settings().database_url
    upgrade(url, args.revision)
    print(_say("cli.db_at", revision=args.revision))
    return 0


def _db_downgrade(args: argparse.Namespace) -> int:
    from storage.migrate import downgrade

    downgrade(get_settings().database_url, args.revision)
    print(_say("cli.db_at", revision=args.revision))
    return 0


# Which module registers each top-level command: a command line that names one imports only
# that module, so `branchbot org list` does not pay for importing the bot (aiogram's models
# take seconds of CPU) as `run` and `demo` must.
OWNERS: dict[str, str | None] = {
    "db": None,  # registered here
    "org": "admin.cli",
    "invite": "admin.cli",
    "member": "admin.cli",
    "export": "admin.cli",
    "packet": "admin.cli",
    "admin": "admin.web_cli",
    "demo": "demo.cli",
    "run": "bot.run_cli",
    "bridge": "bridge.cli",
    "check": "bot.check",
}


def _registrars(command: str | None = None) -> list[Registrar]:
    regs: list[Registrar] = [_db]
    if command in OWNERS:
        owner = OWNERS[command]
        names: tuple[str, ...] = (owner,) if owner else ()
    else:  # --help, a mistake, or nothing: every command, so the usage lists them all
        names = ("admin.cli", "admin.web_cli", "demo.cli", "bot.run_cli", "bridge.cli", "bot.check")
    # Optional areas register themselves when present.
    for mod_name in names:
        try:
            mod = __import__(mod_name, fromlist=["register"])
        except ModuleNotFoundError as e:
            # The area (or its whole package, e.g. `bridge` in an older install) is not there.
            if e.name is None or (mod_name != e.name and not mod_name.startswith(e.name + ".")):
                raise
            continue
        regs.append(mod.register)
    return regs


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the command line, only the commands it names (all of them otherwise)."""
    parser = argparse.ArgumentParser(prog="branchbot", description="branchbot: the Party branch assistant")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for reg in _registrars(argv[0] if argv else None):
        reg(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        get_settings()
        result = args.func(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except SettingsError as e:
        exit_on_bad_settings(e)
    except PackError as e:
        # A broken content pack: one line naming the file, the line and the problem.
        print(f"branchbot: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (DBAPIError, OSError):
        # A database that is missing, unreachable (asyncpg raises plain OSErrors) or not migrated:
        # one line saying what to do, not a traceback. When the database is fine the error was
        # something else, and keeps its traceback.
        problems = _database_problems()
        if not problems:
            raise
        for line in problems:
            print(f"branchbot: {line}", file=sys.stderr)
        return 2
    return int(result or 0)


def _database_problems() -> list[str]:
    from bot.check import database_problems

    return asyncio.run(database_problems(get_settings()))


if __name__ == "__main__":
    sys.exit(main())
