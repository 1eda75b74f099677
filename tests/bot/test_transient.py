"""Which failures the intake retries (bot/transient.py)."""

from __future__ import annotations

import sqlite3

from bot.transient import is_transient_db_error


def test_sqlites_own_locked_error_is_retried_and_a_bug_is_not() -> None:
    # sqlite3 is looked up only where it is loaded (a PostgreSQL process never imports it).
    assert is_transient_db_error(sqlite3.OperationalError("database is locked"))
    assert not is_transient_db_error(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert not is_transient_db_error(ValueError("a bug"))
