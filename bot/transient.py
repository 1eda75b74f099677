"""Which failures mean "the database is away for a moment" (retry the update later) rather
than "this update cannot be handled" (apologize and move on)."""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class DatabaseUnavailable(Exception):
    """Raised by the update guard so the intake retries the update instead of confirming it."""


def is_transient_db_error(exc: BaseException) -> bool:
    if isinstance(exc, DatabaseUnavailable | PoolTimeout | InterfaceError | ConnectionError):
        return True
    if isinstance(exc, OperationalError):
        return True  # SQLite "database is locked", PostgreSQL connection lost or refused
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # sqlite3 as already loaded: a process on PostgreSQL never imports it (nor can it raise it).
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None and isinstance(exc, sqlite3.OperationalError):
        return True
    if isinstance(exc, OSError | asyncio.TimeoutError):
        # Connection refused / reset while opening or using a database connection.
        return True
    name = type(exc).__module__
    # asyncpg raises its own hierarchy when the server goes away mid-query.
    return name.startswith("asyncpg") and "Connection" in type(exc).__name__
